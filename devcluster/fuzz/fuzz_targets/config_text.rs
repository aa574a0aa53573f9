//! A config file of any text over the defaults: a config or a refusal naming where and why,
//! never a panic.
#![no_main]

use devcluster::config::Effective;
use devcluster::config::layers::Layer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Layer::parse("fuzz.toml", text) {
        Ok(layer) => {
            let defaults = Layer::defaults().expect("the defaults parse");
            if let Err(e) = Effective::of([&defaults, &layer]) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(msg) => assert!(msg.contains("fuzz.toml"), "{msg}"),
    }
});
