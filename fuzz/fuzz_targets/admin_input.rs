//! What administrators and local clients hand the daemon: the management wire frames
//! (request and response decoding) and targets.conf text. Never a panic; a config
//! that parses dumps to text that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use target_core::config;
use target_core::mgmt::wire;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode_request(data);
    let _ = wire::decode_response(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut include = |p: &str| -> Result<Vec<(String, String)>, String> {
        Err(format!("no includes here: {p}"))
    };
    if let Ok(c) = config::parse(text, "fuzz.conf", &mut include) {
        let again = config::dump(&c);
        config::parse(&again, "dump.conf", &mut include).expect("a dump parses");
    }
});
