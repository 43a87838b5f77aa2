//! The ssh_config reader (ssh2-config, lenient rules, plus our `%h` expansion): any text gives
//! settings or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provision::inventory::ssh_config::lookup_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `Include` would read the machine's files: keep the fuzzer to the text it was given.
    if text.to_ascii_lowercase().contains("include") {
        return;
    }
    for alias in ["web1", "10.0.0.1", "bastion.example.com"] {
        let _ = lookup_str(text, alias);
    }
});
