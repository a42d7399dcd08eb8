//! `netgame replay PATH`: a recording made with `gameserver --record`,
//! played through the client.
//!
//! The replay stands in for the network thread: it feeds the very
//! [`NetEvent`]s the thread would send (snapshots, joins, position batches,
//! leaves) into the same channel, so the players, interpolation, HUD,
//! minimap, labels and indicators work unchanged. The file → world logic
//! is [`shared::recording`], the same `gameserver replay` uses.
//!
//! * [`feed`]: the clock and the system that plays records into the channel.
//! * [`print`]: `--at SECONDS --print`.
//! * [`timeline`]: the window's timeline bar and keys.
//! * [`run`]: the app, headless or with a window.

pub mod feed;
pub mod print;
pub mod run;
pub mod timeline;

pub use feed::{ReplayClock, ReplayFeedPlugin, ReplaySystems};
pub use run::run_replay;
