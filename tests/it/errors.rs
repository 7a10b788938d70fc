//! Failures a person meets: unknown tags, refused connections, corrupt
//! blobs. Each gives a clear message and exit code and leaves nothing
//! behind that looks complete.

use crate::support::image::{self, Format};
use crate::support::proxy::{self, Fault};
use crate::support::registry::Variant;
use crate::support::{free_port, imgpull, list_files, pull_cached, tempdir, text};

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tag_is_not_found() {
    let (reg, _) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 1).await;
    let work = tempdir();
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/app:nope", reg.host()),
            "-o",
            "out.tar",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    assert!(
        err.contains(&format!("{}/ns/app:nope", reg.host())),
        "normalized name: {err}"
    );
    assert!(!work.path().join("out.tar").exists());

    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/other:1", reg.host()),
            "-o",
            "out.tar",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(!work.path().join("out.tar").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_a_network_error() {
    let work = tempdir();
    let port = free_port();
    let out = imgpull(
        work.path(),
        &["pull", &format!("127.0.0.1:{port}/a/b:1"), "-o", "out.tar"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("hint:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_layer_is_refused_and_not_cached() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
    let bad = img.layers[1].digest.clone();
    let proxy = proxy::start(reg.base_url(), Fault::CorruptBlob(bad.clone())).await;
    let work = tempdir();
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/app:1", proxy.host()),
            "-o",
            "out.tar",
            "--cache-dir",
            "cache",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("integrity") && err.contains(&bad), "{err}");
    assert!(!work.path().join("out.tar").exists());
    let files = list_files(&work.path().join("cache"));
    let hex = &bad[7..];
    let stored: Vec<_> = files.iter().filter(|f| !f.starts_with("locks")).collect();
    assert!(
        !stored.iter().any(|f| f.to_string_lossy().contains(hex)),
        "nothing kept of the corrupt blob: {files:?}"
    );
    assert!(
        stored.iter().all(|f| f.starts_with("blobs/sha256")
            || f.starts_with("ingest")
            || f.starts_with("verified")
            || f.starts_with("unsynced")),
        "{files:?}"
    );
    crate::support::assert_cache_clean(work.path(), "cache").await;

    // Once the fault is gone the same cache completes the pull.
    *proxy.fault.lock().unwrap() = Fault::None;
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &format!("{}/ns/app:1", proxy.host()),
            "-o",
            "out.tar",
            "--cache-dir",
            "cache",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let blob = std::fs::read(work.path().join("cache/blobs/sha256").join(hex)).unwrap();
    assert_eq!(blob, img.layers[1].blob);
    let name = format!("{}/ns/app:1", proxy.host());
    crate::support::tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_not_matching_docker_content_digest_is_refused() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 1).await;
    let lie = format!("sha256:{}", "ab".repeat(32));
    let proxy = proxy::start(reg.base_url(), Fault::WrongDigestHeader(lie.clone())).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", proxy.host());
    let out = pull_cached(work.path(), &name, "out.tar").await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&lie) && err.contains(&img.manifest_digest),
        "{err}"
    );
    assert!(!work.path().join("out.tar").exists());
    assert!(
        reg.blob_gets().is_empty(),
        "no blob fetched for an unverified manifest"
    );
    crate::support::assert_cache_clean(work.path(), "cache").await;
}

/// A key a plugin does not know, in its table of imgpull.toml, stops the
/// command before anything is contacted, naming the plugin and the key
/// (and never a value: it may be a password).
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_plugin_key_names_the_plugin_and_the_key() {
    let work = tempdir();
    let port = free_port();
    let creds = format!(
        "[registries.\"127.0.0.1:{port}\"]\ncredentials = [{{ provider = \"static\", username = \"u\", pasword = \"hunter2\" }}]\n"
    );
    for (table, plugin, key) in [
        (
            "[caches.local]\ndri = \"x\"\n",
            "caches plugin \"local\"",
            "`dri`",
        ),
        (
            "[exporters.docker-archive]\nlayer_fromat = \"compressed\"\n",
            "exporters plugin \"docker-archive\"",
            "`layer_fromat`",
        ),
        (creds.as_str(), "credentials plugin \"static\"", "`pasword`"),
    ] {
        std::fs::write(work.path().join("imgpull.toml"), table).unwrap();
        let out = imgpull(
            work.path(),
            &["pull", &format!("127.0.0.1:{port}/a/b:1"), "-o", "out.tar"],
            None,
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(err.contains(plugin) && err.contains(key), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
