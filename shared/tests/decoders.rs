//! Every decoder under arbitrary input: no panic and the same verdict,
//! whatever the bytes and however they are split; valid messages round-trip through any split.

use bytes::BytesMut;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use shared::legacy::{
    IdGreetingCodec, MathReply, MathReplyCodec, MathRequest, MathRequestCodec, Position,
    PositionCodec, PositionRecord, PositionRecordCodec, Probe, ProbeCodec,
};
use shared::math::{MathOutcome, MathStatus};
use shared::native::{ClientMessage, FrameCodec, ServerMessage, encode_frame};
use tokio_util::codec::Decoder;

/// Feeds `bytes` to `decoder` in pieces cut at `cuts`, collecting items until
/// the end or the first error. Never panics unless the decoder does.
fn feed<D: Decoder>(decoder: &mut D, bytes: &[u8], cuts: &[usize]) -> (Vec<D::Item>, bool) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut start = 0;
    for end in points {
        buf.extend_from_slice(&bytes[start..end.max(start)]);
        start = end.max(start);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => return (items, true),
            }
        }
    }
    (items, false)
}

/// The verdict of `decoder` on `bytes` in one piece: the items decoded and
/// whether it stopped on an error, items compared by their `Debug` text (a
/// NaN reply value is equal to itself there).
fn verdict<D: Decoder>(mut decoder: D, bytes: &[u8], cuts: &[usize]) -> (Vec<String>, bool)
where
    D::Item: std::fmt::Debug,
{
    let (items, failed) = feed(&mut decoder, bytes, cuts);
    (items.iter().map(|i| format!("{i:?}")).collect(), failed)
}

/// Checks every decoder over the same input: however the bytes are split,
/// each decoder reaches the verdict it reaches on them in one piece; the
/// fixed-size decoders, which accept any bytes, decode exactly one item per
/// whole record and never fail.
fn decode_everything(bytes: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    macro_rules! same_verdict {
        ($codec:expr) => {{
            let split = verdict($codec, bytes, cuts);
            let whole = verdict($codec, bytes, &[]);
            prop_assert_eq!(&split, &whole, "{} split at {:?}", stringify!($codec), cuts);
            whole
        }};
    }
    macro_rules! fixed_size {
        ($codec:expr, $size:expr) => {{
            let (items, failed) = same_verdict!($codec);
            prop_assert!(
                !failed,
                "{} refused bytes it must accept",
                stringify!($codec)
            );
            prop_assert_eq!(items.len(), bytes.len() / $size);
        }};
    }
    fixed_size!(IdGreetingCodec, 4);
    fixed_size!(ProbeCodec, Probe::SIZE);
    fixed_size!(PositionCodec, Position::SIZE);
    fixed_size!(PositionRecordCodec, PositionRecord::SIZE);
    let (replies, failed) = same_verdict!(MathReplyCodec);
    // A reply fails only on an unknown status, and stops there.
    let statuses_ok = bytes
        .chunks_exact(MathReply::SIZE)
        .take_while(|c| (0..4).contains(&i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .count();
    prop_assert_eq!(replies.len(), statuses_ok);
    prop_assert_eq!(failed, statuses_ok < bytes.len() / MathReply::SIZE);
    same_verdict!(MathRequestCodec);
    same_verdict!(FrameCodec::<ClientMessage>::new(4096));
    same_verdict!(FrameCodec::<ServerMessage>::new(4096));
    Ok(())
}

fn arb_command() -> impl Strategy<Value = String> {
    "[ -~]{1,64}"
}

fn arb_client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (any::<u32>(), "\\PC{0,40}").prop_map(|(v, name)| ClientMessage::Hello {
            protocol_version: v,
            name
        }),
        (any::<i16>(), any::<i16>())
            .prop_map(|(x, y)| ClientMessage::MyPosition(Position::new(x, y))),
        (any::<u32>(), 0usize..4, any::<i16>(), any::<i16>()).prop_map(|(request_id, op, a, b)| {
            ClientMessage::MathQuery {
                request_id,
                op: shared::math::MathOp::ALL[op],
                a,
                b,
            }
        }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientMessage::Pong { nonce }),
        Just(ClientMessage::Bye),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        decode_everything(&bytes, &cuts)?;
    }

    #[test]
    fn math_requests_round_trip_through_any_split(
        requests in proptest::collection::vec((arb_command(), any::<i16>(), any::<i16>()), 1..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let requests: Vec<MathRequest> = requests.into_iter().map(|(c, a, b)| MathRequest::new(c, a, b)).collect();
        let mut bytes = BytesMut::new();
        for request in &requests {
            request.encode(&mut bytes);
        }
        let (decoded, failed) = feed(&mut MathRequestCodec, &bytes, &cuts);
        prop_assert!(!failed);
        prop_assert_eq!(decoded, requests);
    }

    #[test]
    fn fixed_size_messages_round_trip_through_any_split(
        values in proptest::collection::vec((any::<i32>(), any::<i16>(), any::<i16>(), any::<f64>()), 1..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut probes = BytesMut::new();
        let mut records = BytesMut::new();
        let mut positions = BytesMut::new();
        let mut replies = BytesMut::new();
        for &(n, x, y, v) in &values {
            Probe { seq: n, clients: n ^ 0x5a5a }.encode(&mut probes);
            PositionRecord { id: n, x, y }.encode(&mut records);
            Position::new(x, y).encode(&mut positions);
            MathReply(MathOutcome { status: MathStatus::try_from(n & 3).unwrap(), value: v }).encode(&mut replies);
        }
        let (p, _) = feed(&mut ProbeCodec, &probes, &cuts);
        let (r, _) = feed(&mut PositionRecordCodec, &records, &cuts);
        let (q, _) = feed(&mut PositionCodec, &positions, &cuts);
        let (m, failed) = feed(&mut MathReplyCodec, &replies, &cuts);
        prop_assert!(!failed);
        prop_assert_eq!(p.len(), values.len());
        prop_assert_eq!(r.len(), values.len());
        prop_assert_eq!(q.len(), values.len());
        prop_assert_eq!(m.len(), values.len());
        for (i, &(n, x, y, v)) in values.iter().enumerate() {
            prop_assert_eq!(p[i], Probe { seq: n, clients: n ^ 0x5a5a });
            prop_assert_eq!(r[i], PositionRecord { id: n, x, y });
            prop_assert_eq!(q[i], Position::new(x, y));
            prop_assert_eq!(m[i].status(), MathStatus::try_from(n & 3).unwrap());
            prop_assert_eq!(m[i].value().to_bits(), v.to_bits());
        }
    }

    #[test]
    fn native_frames_round_trip_through_any_split(
        messages in proptest::collection::vec(arb_client_message(), 1..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = BytesMut::new();
        for message in &messages {
            encode_frame(message, &mut bytes).unwrap();
        }
        let (decoded, failed) = feed(&mut FrameCodec::<ClientMessage>::default(), &bytes, &cuts);
        prop_assert!(!failed);
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn corrupted_native_frames_never_panic(
        message in arb_client_message(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = BytesMut::new();
        encode_frame(&message, &mut bytes).unwrap();
        let len = bytes.len();
        for (at, value) in flips {
            bytes[at % len] = value;
        }
        let announced = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let max = shared::native::DEFAULT_MAX_FRAME_LEN;
        let mut buf = bytes.clone();
        let result = FrameCodec::<ClientMessage>::default().decode(&mut buf);
        if announced > max {
            prop_assert!(result.is_err(), "a frame longer than {max} is refused at once");
        } else if announced > len - 4 {
            prop_assert!(matches!(result, Ok(None)), "a longer frame waits for its bytes");
            prop_assert_eq!(buf.len(), len, "nothing consumed while waiting");
        } else if let Ok(item) = result {
            // Whole frame present: a message or an error, never "need more".
            prop_assert!(item.is_some(), "a complete frame must not wait for more");
            prop_assert_eq!(buf.len(), len - 4 - announced, "exactly one frame consumed");
        }
    }
}

/// A million random inputs, biased towards plausible headers so the decoders'
/// deeper branches run too, through every decoder.
#[test]
fn a_million_random_inputs_through_every_decoder() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut bytes = Vec::with_capacity(128);
    for round in 0..1_000_000u32 {
        bytes.clear();
        let len = rng.random_range(0..48usize);
        bytes.extend((0..len).map(|_| rng.random::<u8>()));
        if round % 3 == 0 && bytes.len() >= 4 {
            // A small announced length, as a real header would have.
            let small = rng.random_range(0..70u32).to_le_bytes();
            bytes[..4].copy_from_slice(&small);
        }
        let cut = rng.random_range(0..=bytes.len());
        if let Err(failure) = decode_everything(&bytes, &[cut]) {
            panic!("round {round}, input {bytes:02x?}: {failure}");
        }
    }
}
