//! The `memory` cache backend: no local files, so every exporter reads the
//! blobs through the cache contract (`open`/`source`), never a path. Each
//! output is read back by skopeo and podman (tars) or umoci (layouts), and
//! nothing is written to disk but the output.

use crate::exporters::mixed_image;
use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull_env, tempdir, text, tools};
use std::path::Path;

const MEMORY: &[(&str, &str)] = &[("IMGPULL_CACHE", "memory")];

async fn pull(work: &Path, args: &[&str]) {
    let out = imgpull_env(work, args, None, MEMORY).await;
    assert!(out.status.success(), "{}", text(&out));
}

/// Nothing but the outputs (and the test's own HOME) in `work`.
fn only(work: &Path, outputs: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".home")
        .collect();
    found.sort();
    let mut want: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "no cache directory, no leftovers");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tar_format_from_a_cache_without_files() {
    let reg = Registry::start(Variant::Anonymous).await;
    mixed_image(&reg).await;
    let work = tempdir();
    let w = work.path();
    let name = format!("{}/ns/mixed:1", reg.host());
    // Compressed (written while downloading), uncompressed, legacy v1.2.
    pull(w, &["pull", &name, "-o", "plain.tar"]).await;
    pull(
        w,
        &[
            "pull",
            &name,
            "--layer-format",
            "uncompressed",
            "-o",
            "unc.tar",
        ],
    )
    .await;
    pull(w, &["pull", &name, "--legacy", "-o", "legacy.tar"]).await;
    pull(w, &["pull", &name, "-o", "oci-archive:oci.tar"]).await;
    only(w, &["plain.tar", "unc.tar", "legacy.tar", "oci.tar"]);
    for tar in ["plain.tar", "unc.tar", "legacy.tar"] {
        tools::check_archive(&w.join(tar), w, Some(&name));
    }
    tools::skopeo_copy(
        &format!("oci-archive:{}", w.join("oci.tar").display()),
        w,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn layouts_and_rootfs_from_a_cache_without_files() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 3).await;
    let work = tempdir();
    let w = work.path();
    let name = format!("{}/ns/app:1", reg.host());
    pull(w, &["pull", &name, "-o", "oci:layout"]).await;
    pull(w, &["pull", &name, "-o", "rootfs:root"]).await;
    only(w, &["layout", "root"]);
    tools::umoci_unpack(&w.join("layout"), "1", &w.join("bundle"));
    for i in 0..img.layers.len() {
        let hello = format!("layer{i}/hello.txt");
        let a = std::fs::read(w.join("bundle/rootfs").join(&hello)).unwrap();
        let b = std::fs::read(w.join("root").join(&hello)).unwrap();
        assert!(
            String::from_utf8_lossy(&a).starts_with("hello from"),
            "{hello}"
        );
        assert_eq!(a, b, "rootfs and umoci agree on {hello}");
    }
    tools::skopeo_copy(&format!("oci:{}:1", w.join("layout").display()), w, &[]);
}

/// A wrong blob from the registry is refused by the memory backend as by
/// the local one: nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_blob_never_reaches_the_output() {
    use crate::support::proxy::{self, Fault};
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 2).await;
    let bad = img.layers[1].digest.clone();
    let front = proxy::start(reg.base_url(), Fault::CorruptBlob(bad.clone())).await;
    let work = tempdir();
    let w = work.path();
    let out = imgpull_env(
        w,
        &[
            "pull",
            &format!("{}/ns/app:1", front.host()),
            "-o",
            "out.tar",
        ],
        None,
        MEMORY,
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("integrity") && err.contains(&bad), "{err}");
    only(w, &[]);
}
