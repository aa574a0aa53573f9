//! A Consul service definition from any bytes: a registration or a reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(msg) = devcluster::registry::consul::parse_registration(data) {
        assert!(!msg.is_empty());
    }
});
