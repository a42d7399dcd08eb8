//! The recording reader under arbitrary input (no panic, damage reported
//! at an offset inside the input), records round-tripping through a
//! writer, and a rotated set on disk played as one.

use proptest::prelude::*;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerKind, PlayerState};
use shared::recording::{
    HEADER_LEN, Header, Record, Recording, VERSION, Writer, read_all, rotated_path,
};

fn header(file_index: u32) -> Header {
    Header {
        version: VERSION,
        file_index,
        start_unix_ms: 1_765_000_000_000,
        recording_id: 0xfeed,
    }
}

fn info() -> impl Strategy<Value = PlayerInfo> {
    (any::<i32>(), "\\PC{0,40}", any::<bool>()).prop_map(|(id, name, legacy)| PlayerInfo {
        id,
        name,
        kind: if legacy {
            PlayerKind::Legacy
        } else {
            PlayerKind::Native
        },
    })
}

fn position() -> impl Strategy<Value = Position> {
    (any::<i16>(), any::<i16>()).prop_map(|(x, y)| Position::new(x, y))
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        info().prop_map(Record::Join),
        (any::<i32>(), position()).prop_map(|(id, position)| Record::Move { id, position }),
        any::<i32>().prop_map(|id| Record::Leave { id }),
        proptest::collection::vec((info(), proptest::option::of(position())), 0..5).prop_map(
            |players| Record::Snapshot(
                players
                    .into_iter()
                    .map(|(info, position)| PlayerState { info, position })
                    .collect()
            )
        ),
    ]
}

proptest! {
    #[test]
    fn records_round_trip_through_blocks(
        records in proptest::collection::vec((0u64..10_000, record(), any::<bool>()), 0..40)
    ) {
        let mut writer = Writer::new(Vec::new(), &header(0)).unwrap();
        let mut expected = Vec::new();
        let mut time = 0;
        for (step, record, cut) in records {
            time += step;
            writer.push(time, &record).unwrap();
            expected.push((time, record));
            if cut {
                writer.finish_block().unwrap();
            }
        }
        writer.finish_block().unwrap();
        let bytes = writer.get_mut().clone();
        prop_assert_eq!(bytes.len() as u64, writer.bytes_written());
        let (read_header, blocks, skipped) = read_all(&bytes).unwrap();
        prop_assert_eq!(read_header, header(0));
        prop_assert_eq!(skipped, None);
        let got: Vec<_> = blocks.into_iter().flat_map(|b| b.records).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_after_a_header_never_panic_and_name_an_offset_inside(
        tail in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let mut bytes = header(0).to_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        let (_, blocks, skipped) = read_all(&bytes).unwrap();
        if let Some(skipped) = skipped {
            prop_assert!(skipped.offset >= HEADER_LEN as u64);
            prop_assert_eq!(skipped.offset + skipped.bytes, bytes.len() as u64);
            let last_good = blocks.last().map_or(HEADER_LEN as u64, |b| b.offset + 8);
            prop_assert!(skipped.offset >= last_good);
        }
    }

    /// Arbitrary payloads behind a valid length and checksum reach the
    /// record decoder, which a random checksum almost never lets through.
    #[test]
    fn arbitrary_records_in_checksummed_blocks_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4)
    ) {
        let mut bytes = header(0).to_bytes().to_vec();
        for payload in &payloads {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        let (_, _, skipped) = read_all(&bytes).unwrap();
        if let Some(skipped) = skipped {
            prop_assert!(skipped.offset < bytes.len() as u64);
        }
    }

    #[test]
    fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_all(&bytes);
    }
}

fn player(id: i32, name: &str) -> PlayerInfo {
    PlayerInfo {
        id,
        name: name.into(),
        kind: PlayerKind::Legacy,
    }
}

/// Writes `path.{index}`: a snapshot of `world` at `from`, then one move a
/// second of player 1 to (t, t) up to `to` seconds.
fn write_file(path: &std::path::Path, index: u32, from: u64, to: u64, world: Vec<PlayerState>) {
    let file = std::fs::File::create(rotated_path(path, index)).unwrap();
    let mut writer = Writer::new(file, &header(index)).unwrap();
    writer.snapshot(from * 1000, world).unwrap();
    for t in from..=to {
        let position = Position::new(t as i16, t as i16);
        writer
            .push(t * 1000, &Record::Move { id: 1, position })
            .unwrap();
        writer.finish_block().unwrap();
    }
}

#[test]
fn a_rotated_set_plays_as_one_and_seeks_across_files() {
    let dir = std::env::temp_dir().join(format!("rec-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("game.rec");
    let one = |t: i16| PlayerState {
        info: player(1, "walker"),
        position: Some(Position::new(t, t)),
    };
    write_file(&path, 0, 0, 9, vec![one(0)]);
    write_file(&path, 1, 10, 19, vec![one(9)]);
    write_file(&path, 2, 20, 29, vec![one(19)]);
    let recording = Recording::open(&path).unwrap();
    assert_eq!(recording.paths().count(), 3);
    assert_eq!(recording.duration_ms(), 29_000);
    for (ms, expected) in [(0, 0), (5_500, 5), (12_000, 12), (29_999, 29), (90_000, 29)] {
        let world = recording.world_at(ms).unwrap();
        let positions: Vec<_> = world.players().map(|p| p.position).collect();
        assert_eq!(
            positions,
            vec![Some(Position::new(expected, expected))],
            "at {ms} ms"
        );
    }
    // A file of another recording in the middle of the set is refused.
    let file = std::fs::File::create(rotated_path(&path, 1)).unwrap();
    let mut other = header(1);
    other.recording_id = 1;
    Writer::new(file, &other).unwrap();
    let err = Recording::open(&path).unwrap_err().to_string();
    assert!(err.contains("belongs to another recording"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
