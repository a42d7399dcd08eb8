//! Every legacy decoder over the same bytes, fed in two pieces split at the
//! first byte's value: none may panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shared::legacy::{MathReplyCodec, MathRequestCodec, PositionCodec, PositionRecordCodec, ProbeCodec};
use tokio_util::codec::Decoder;

fn drain<D: Decoder>(mut decoder: D, data: &[u8]) {
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut buf = BytesMut::from(&data[..cut]);
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    buf.extend_from_slice(&data[cut..]);
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
}

fuzz_target!(|data: &[u8]| {
    drain(MathRequestCodec, data);
    drain(MathReplyCodec, data);
    drain(ProbeCodec, data);
    drain(PositionCodec, data);
    drain(PositionRecordCodec, data);
});
