//! The recording reader over arbitrary files, and over a valid header
//! followed by arbitrary blocks: it may refuse or report damage, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::recording::{Header, Record, VERSION, read_all};

fuzz_target!(|data: &[u8]| {
    let _ = read_all(data);
    let mut with_header = Header {
        version: VERSION,
        file_index: 0,
        start_unix_ms: 0,
        recording_id: 0,
    }
    .to_bytes()
    .to_vec();
    with_header.extend_from_slice(data);
    let _ = read_all(&with_header);
    let _ = Record::decode(data);
});
