//! The native frame decoder (both directions) over arbitrary bytes: no
//! panic, and no allocation beyond what the frame limit allows.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shared::native::{ClientMessage, FrameCodec, ServerMessage};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut codec = FrameCodec::<ClientMessage>::new(64 * 1024);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
    let mut buf = BytesMut::from(data);
    let mut codec = FrameCodec::<ServerMessage>::new(64 * 1024);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
