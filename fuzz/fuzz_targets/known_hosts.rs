//! The known_hosts reader and the host-key pin parser: any text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provision::transport::ssh::{known_hosts_entries, parse_pin};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = [
        "[127.0.0.1]:2222".to_string(),
        "web1.example.com".to_string(),
        "10.0.0.1".to_string(),
    ];
    let lines = text.lines().count();
    for (line, _revoked, fp) in known_hosts_entries(text, &lookup) {
        assert!(line >= 1 && line <= lines);
        assert!(fp.starts_with("SHA256:"));
    }
    for line in text.lines() {
        let _ = parse_pin(line, "fuzz");
    }
});
