//! The wire protocol of the game demo, with no runtime and no engine in it.
//!
//! * [`legacy`]: the raw, Python-`struct`-compatible layouts of the three
//!   classic demos ("test packets", "math", "positions"), byte for byte as
//!   fixed by the legacy wire contract.
//! * [`native`]: our own framed protocol (u32 LE length + bincode 2 payload)
//!   spoken by the Bevy client.
//! * [`math`]: the four operations and status codes both protocols share.
//! * [`recording`]: the file format of `gameserver --record` and its replay.
//!
//! Codecs only turn bytes into typed messages and back. They follow the
//! `tokio_util::codec::Decoder` contract: `Ok(None)` means "need more bytes",
//! `Err(_)` means the stream is corrupt and must be closed. No decoder panics
//! on peer bytes.

pub mod legacy;
pub mod math;
pub mod native;
pub mod recording;

/// A client id: an `i32` > 0, unique for the life of a server process and
/// shared by every service.
pub type ClientId = i32;
