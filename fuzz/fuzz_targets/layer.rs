//! Layer tars applied to a scratch directory (the rootfs exporter), after
//! gzip/zstd sniffing: never a panic, never a file outside the directory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("scratch dir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    let kind = imgpull::layer::Compression::sniff(data);
    if let Ok(r) = imgpull::layer::decoder(std::io::Cursor::new(data.to_vec()), kind) {
        let mut u = imgpull::unpack::Unpacker::new(&root);
        let _ = u.apply(r);
        let _ = u.finish();
    }
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list scratch dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("root")], "wrote outside the target");
});
