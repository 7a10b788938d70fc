//! The image reference parser: any string parses or is refused, never a
//! panic; what parses prints back to something that parses to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<imgpull::reference::Reference>() {
        let again: imgpull::reference::Reference = r
            .to_string()
            .parse()
            .expect("a normalized reference parses again");
        assert_eq!(again.to_string(), r.to_string());
        let _ = r.familiar_tagged();
    }
});
