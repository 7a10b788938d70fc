//! Manifest and index parsing under each content type a registry may send,
//! and the Docker-to-OCI rewrite: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use imgpull::manifest::{docker_to_oci, media, Manifest};

fuzz_target!(|data: &[u8]| {
    let types = [
        media::OCI_INDEX,
        media::OCI_MANIFEST,
        media::DOCKER_LIST,
        media::DOCKER_MANIFEST,
        "application/json",
        "",
    ];
    let (pick, doc) = match data.split_first() {
        Some((b, rest)) => (*b as usize % types.len(), rest),
        None => return,
    };
    let _ = Manifest::parse(types[pick], doc);
    if let Some(oci) = docker_to_oci(doc) {
        let _ = Manifest::parse(media::OCI_MANIFEST, &oci);
    }
});
