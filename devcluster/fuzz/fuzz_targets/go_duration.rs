//! Go durations (`1m30s`, `250ms`) from any text: a duration or a refusal; a duration read
//! is written back as text that reads back the same.
#![no_main]

use devcluster::duration::{format_go_duration, parse_go_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_go_duration(text) {
        let written = format_go_duration(d);
        assert_eq!(parse_go_duration(&written), Ok(d), "{text:?} -> {written:?}");
    }
});
