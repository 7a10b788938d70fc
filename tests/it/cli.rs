//! The binary's own surface: the plugin catalog, version, usage errors.

use crate::support::{imgpull, tempdir, text};

#[tokio::test(flavor = "multi_thread")]
async fn plugin_catalog_is_pinned() {
    let work = tempdir();
    let out = imgpull(work.path(), &["plugins"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut kind = "";
    let mut found = Vec::new();
    for line in stdout.lines() {
        if let Some(k) = line.strip_suffix(':') {
            kind = k;
        } else if let Some(name) = line.split_whitespace().next() {
            found.push(format!("{kind}/{name}"));
        }
    }
    let want = [
        "credentials/static",
        "registries/dockerhub",
        "registries/generic",
        "caches/local",
        "exporters/docker-archive",
    ];
    assert_eq!(found, want, "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_usage_errors() {
    let work = tempdir();
    let out = imgpull(work.path(), &["--version"], None).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with(&format!("imgpull {}", env!("CARGO_PKG_VERSION"))));

    let out = imgpull(work.path(), &["pull", "Library/Nginx"], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be lowercase"));

    let out = imgpull(
        work.path(),
        &["pull", "a/b", "--max-concurrent-downloads", "0"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    std::fs::write(
        work.path().join("imgpull.toml"),
        "max_concurrent_downlods = 2\n",
    )
    .unwrap();
    let out = imgpull(work.path(), &["pull", "a/b"], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_concurrent_downlods"),
        "{}",
        text(&out)
    );
}
