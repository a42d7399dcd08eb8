//! `netgame replay PATH`: a recording made with `gameserver --record`,
//! played through the client.
//!
//! The replay stands in for the network: it writes the very messages the
//! network drain writes (roster snapshots, joins, leaves, position
//! batches), so the players, interpolation, HUD, minimap, labels and
//! indicators work unchanged. The file → world logic
//! is [`shared::recording`], the same `gameserver replay` uses.
//!
//! * [`feed`]: the clock and the system that plays records as those messages.
//! * [`print`]: `--at SECONDS --print`.
//! * [`timeline`]: the window's timeline bar and keys.
//! * [`run`]: the app, headless or with a window.

pub mod feed;
pub mod print;
pub mod run;
pub mod timeline;

pub use feed::{ReplayClock, ReplayFeedPlugin, ReplaySystems};
pub use run::run_replay;
