//! The cache seen from a pull: a re-pull is served from it without a blob
//! request; --no-cache leaves nothing behind.

use crate::support::image::{self, Format};
use crate::support::registry::Variant;
use crate::support::{imgpull, list_files, tempdir, text, tools};

#[tokio::test(flavor = "multi_thread")]
async fn second_pull_is_served_from_the_cache() {
    let (reg, _) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 4).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let args = [
        "pull",
        name.as_str(),
        "-o",
        "out.tar",
        "--cache-dir",
        "cache",
    ];

    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let gets = reg.blob_gets().len();
    assert_eq!(
        gets,
        5,
        "config + 4 layers fetched once each:\n{}",
        reg.log()
    );

    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Cache hits: 4/4 layers (100.0%)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        reg.blob_gets().len(),
        gets,
        "no blob requested on the re-pull:\n{}",
        reg.log()
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cache_uses_a_temporary_store() {
    let (reg, _) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 2).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--no-cache"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let files: Vec<_> = list_files(work.path())
        .into_iter()
        .filter(|f| !f.starts_with(".home"))
        .collect();
    assert_eq!(files, vec![std::path::PathBuf::from("out.tar")]);
    assert!(!work.path().join("docker_images_cache").exists());
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
}
