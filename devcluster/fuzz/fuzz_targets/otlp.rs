//! OTLP/HTTP export bodies: the first byte picks traces or logs, protobuf or JSON; the rest
//! is the body. Taken or refused with a message, never a panic.
#![no_main]

use devcluster::telemetry::otlp::Receiver;
use devcluster::telemetry::{LogStore, SpanStore};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

static RECEIVER: LazyLock<Receiver> = LazyLock::new(|| {
    Receiver::new(
        Arc::new(SpanStore::new(1000)),
        Arc::new(LogStore::new(1000)),
    )
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let json = pick & 1 == 1;
    let taken = if pick & 2 == 0 {
        RECEIVER.take_traces_body(json, body)
    } else {
        RECEIVER.take_logs_body(json, body)
    };
    if let Err(msg) = taken {
        assert!(!msg.is_empty());
    }
});
