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
        "credentials/docker-config",
        "credentials/ecr",
        "credentials/gcr",
        "credentials/static",
        "registries/acr",
        "registries/dockerhub",
        "registries/ecr",
        "registries/gcr",
        "registries/generic",
        "registries/harbor",
        "registries/quay",
        "caches/local",
        "caches/memory",
        "caches/object-store",
        "exporters/docker-archive",
        "exporters/oci",
        "exporters/oci-archive",
        "exporters/registry",
        "exporters/rootfs",
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

    for shell in ["bash", "zsh", "fish"] {
        let out = imgpull(work.path(), &["completions", shell], None).await;
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("imgpull") && script.contains("platform"),
            "{shell}"
        );
    }

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

#[tokio::test(flavor = "multi_thread")]
async fn config_layers_files_then_env_then_flags() {
    use crate::support::{free_port, imgpull_env};
    let work = tempdir();
    // Nothing listens here: a valid config ends in a network error (5),
    // an invalid one in a usage error (2) before any connection.
    let image = format!("127.0.0.1:{}/a/b:1", free_port());
    let bad_env = [("IMGPULL_MAX_CONCURRENT_DOWNLOADS", "0")];
    let out = imgpull_env(work.path(), &["pull", &image], None, &bad_env).await;
    assert_eq!(out.status.code(), Some(2), "env is read: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_concurrent_downloads"));

    let args = ["pull", image.as_str(), "--max-concurrent-downloads", "2"];
    let out = imgpull_env(work.path(), &args, None, &bad_env).await;
    assert_eq!(out.status.code(), Some(5), "flags beat env: {}", text(&out));

    // ./imgpull.toml < --config FILE < env
    std::fs::write(
        work.path().join("imgpull.toml"),
        "max_concurrent_downloads = 0\n",
    )
    .unwrap();
    let out = imgpull_env(work.path(), &["pull", &image], None, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::write(
        work.path().join("fix.toml"),
        "max_concurrent_downloads = 4\n",
    )
    .unwrap();
    let out = imgpull_env(
        work.path(),
        &["pull", &image, "--config", "fix.toml"],
        None,
        &[],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "--config beats ./imgpull.toml: {}",
        text(&out)
    );
    let out = imgpull_env(
        work.path(),
        &["pull", &image, "--config", "fix.toml"],
        None,
        &bad_env,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "env beats --config: {}",
        text(&out)
    );
    let out = imgpull_env(
        work.path(),
        &["pull", &image, "--config", "missing.toml"],
        None,
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
