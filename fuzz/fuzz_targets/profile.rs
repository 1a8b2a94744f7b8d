//! Any text as a profile: an error or a profile, never a panic; a valid profile survives a
//! round trip through its YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_config::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Profile::parse(text, "fuzz.yaml") {
        let again = Profile::parse(&p.to_yaml(), "again.yaml").expect("round trip parses");
        assert_eq!(again, p);
    }
});
