//! The cache seen from a pull: a re-pull is served from it without a blob
//! request; --no-cache leaves nothing behind.

use crate::support::image::{self, Format};
use crate::support::registry::Variant;
use crate::support::{imgpull, list_files, pull_cached, tempdir, text, tools};

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

use crate::support::image::{build_from, layers, TestImage};
use crate::support::registry::Registry;

/// Images A and B of six layers each, sharing four.
fn a_and_b() -> (TestImage, TestImage) {
    let shared = layers("shared", 4);
    let mut a = shared.clone();
    a.extend(layers("only-a", 2));
    let mut b = shared;
    b.extend(layers("only-b", 2));
    let arch = image::host_arch();
    (
        build_from("A", Format::Oci, arch, a),
        build_from("B", Format::Docker, arch, b),
    )
}

fn manifest_gets(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/manifests/"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_layers_come_from_the_cache_and_a_repull_fetches_nothing() {
    let reg = Registry::start(Variant::Anonymous).await;
    let (a, b) = a_and_b();
    image::push(&reg, "ns/a", "1", &a).await;
    image::push(&reg, "ns/b", "1", &b).await;
    let work = tempdir();
    let pull = |name: String, out: &'static str| {
        let w = work.path().to_path_buf();
        async move {
            let o = pull_cached(&w, &name, out).await;
            assert!(o.status.success(), "{}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    };
    let (a_name, b_name) = (
        format!("{}/ns/a:1", reg.host()),
        format!("{}/ns/b:1", reg.host()),
    );
    let out = pull(a_name.clone(), "a.tar").await;
    assert!(out.contains("Cache hits: 0/6 layers (0.0%)"), "{out}");
    let out = pull(b_name.clone(), "b.tar").await;
    assert!(out.contains("Cache hits: 4/6 layers (66.7%)"), "{out}");
    tools::check_archive(&work.path().join("b.tar"), work.path(), Some(&b_name));

    let (blobs, manifests) = (reg.blob_gets().len(), manifest_gets(&reg));
    std::fs::remove_file(work.path().join("a.tar")).unwrap();
    let out = pull(a_name.clone(), "a.tar").await;
    assert!(out.contains("Cache hits: 6/6 layers (100.0%)"), "{out}");
    assert_eq!(reg.blob_gets().len(), blobs, "no blob GET:\n{}", reg.log());
    assert_eq!(
        manifest_gets(&reg),
        manifests,
        "no manifest GET (a HEAD resolves the tag):\n{}",
        reg.log()
    );
    tools::check_archive(&work.path().join("a.tar"), work.path(), Some(&a_name));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pulls_share_one_cache_safely() {
    let reg = Registry::start(Variant::Anonymous).await;
    let (a, b) = a_and_b();
    image::push(&reg, "ns/a", "1", &a).await;
    image::push(&reg, "ns/b", "1", &b).await;
    let work = tempdir();
    let mut tasks = Vec::new();
    for (i, repo) in ["a", "b", "a", "b"].iter().enumerate() {
        let name = format!("{}/ns/{repo}:1", reg.host());
        let w = work.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let out = format!("out{i}.tar");
            let o = imgpull(
                &w,
                &["pull", &name, "-o", &out, "--cache-dir", "cache", "-q"],
                None,
            )
            .await;
            assert!(o.status.success(), "{}", text(&o));
            (out, name)
        }));
    }
    for t in tasks {
        let (out, name) = t.await.unwrap();
        tools::skopeo_copy_to_oci(&work.path().join(&out), work.path());
        if out == "out0.tar" {
            tools::check_archive(&work.path().join(&out), work.path(), Some(&name));
        }
    }
    let mut per_digest = std::collections::HashMap::new();
    for line in reg.blob_gets() {
        let d = line
            .split("/blobs/")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        *per_digest.entry(d).or_insert(0) += 1;
    }
    assert_eq!(
        per_digest.len(),
        2 + 8,
        "two configs and eight distinct layers"
    );
    assert!(
        per_digest.values().all(|n| *n == 1),
        "each blob downloaded once: {per_digest:?}"
    );
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(", 0 bad"),
        "{}",
        text(&v)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_a_flipped_byte_and_repair_removes_it() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 3).await;
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
    assert!(imgpull(work.path(), &args, None).await.status.success());
    let victim = &img.layers[1].digest;
    let path = work.path().join("cache/blobs/sha256").join(&victim[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert_eq!(v.status.code(), Some(7), "{}", text(&v));
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert!(
        stdout.contains(&format!("BAD {victim}")) && stdout.contains("1 bad"),
        "{stdout}"
    );
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--repair", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(v.status.success(), "{}", text(&v));
    assert!(!path.exists());
    let before = reg.blob_gets().len();
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Cache hits: 2/3"),
        "{}",
        text(&out)
    );
    assert_eq!(
        reg.blob_gets().len(),
        before + 1,
        "only the removed blob is fetched again"
    );
    let v = imgpull(
        work.path(),
        &["cache", "verify", "--cache-dir", "cache", "--json"],
        None,
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["bad"].as_array().map(Vec::len), Some(0));

    // stats, ls and prune see the same blobs.
    let s = imgpull(
        work.path(),
        &["cache", "stats", "--json", "--cache-dir", "cache"],
        None,
    )
    .await;
    let stats: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(
        stats["blobs"],
        1 + 3 + 1,
        "config, layers and the manifest: {stats}"
    );
    let p = imgpull(
        work.path(),
        &["cache", "prune", "--max-size", "1", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(p.status.success(), "{}", text(&p));
    let ls = imgpull(work.path(), &["cache", "ls", "--cache-dir", "cache"], None).await;
    assert!(
        String::from_utf8_lossy(&ls.stdout).trim().is_empty(),
        "{}",
        text(&ls)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_pull_resumes_with_a_range_request() {
    use crate::support::proxy::{self, Fault};
    const BIG: usize = 300 * 1024 * 1024;
    let reg = Registry::start(Variant::Anonymous).await;
    let mut all = vec![image::big_layer("resume", BIG)];
    all.extend(layers("resume-small", 3));
    let img = build_from("resume", Format::Oci, image::host_arch(), all);
    image::push(&reg, "ns/big", "1", &img).await;
    let big = img.layers[0].digest.clone();
    let partial_of = |w: &std::path::Path| {
        w.join("cache/ingest")
            .join(format!("{}.partial", &big[7..]))
    };

    // SIGTERM is handled as SIGINT is; SIGKILL cannot be, and what it
    // leaves beside the output goes with the next pull.
    let partials = |w: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(w)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".out.tar.partial") || n.starts_with(".imgpull-"))
            .collect()
    };
    for signal in ["INT", "TERM", "KILL"] {
        let proxy = proxy::start(reg.base_url(), Fault::SlowBlobs(40 * 1024 * 1024)).await;
        let work = tempdir();
        let name = format!("{}/ns/big:1", proxy.host());
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgpull"))
            .args(["pull", &name, "-o", "out.tar", "--cache-dir", "cache", "-q"])
            .current_dir(work.path())
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until a good part (but not all) of the big layer is on disk.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let held = std::fs::metadata(partial_of(work.path()))
                .map(|m| m.len())
                .unwrap_or(0);
            if held > 64 * 1024 * 1024 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the download never got going"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "{signal}: the pull was interrupted");
        match signal {
            "INT" => assert_eq!(status.code(), Some(130), "Ctrl-C exits 130"),
            "TERM" => assert_eq!(status.code(), Some(143), "SIGTERM exits 143"),
            _ => assert!(
                !partials(work.path()).is_empty(),
                "SIGKILL leaves its temporary output"
            ),
        }
        if signal != "KILL" {
            assert_eq!(
                partials(work.path()),
                Vec::<String>::new(),
                "{signal}: nothing left beside the output"
            );
        }
        assert!(!work.path().join("out.tar").exists());
        let held = std::fs::metadata(partial_of(work.path())).unwrap().len();
        assert!(
            held < BIG as u64,
            "{signal}: a partial, not the whole layer"
        );

        *proxy.fault.lock().unwrap() = Fault::None;
        proxy.ranges.lock().unwrap().clear();
        let out = pull_cached(work.path(), &name, "out.tar").await;
        assert!(out.status.success(), "{signal}: {}", text(&out));
        assert_eq!(
            partials(work.path()),
            Vec::<String>::new(),
            "{signal}: the next pull cleared it"
        );
        let ranges = proxy.ranges.lock().unwrap().clone();
        let resumed = ranges
            .iter()
            .find(|(p, _, _)| p.ends_with(&big))
            .expect("the big layer was asked for");
        let start: u64 = resumed
            .1
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("{signal}: no Range: {resumed:?}"));
        assert!(start >= 32 * 1024 * 1024, "{signal}: resumed at {start}");
        assert_eq!(resumed.2, 206, "{signal}");
        tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
        assert!(!partial_of(work.path()).exists());
        crate::support::assert_cache_clean(work.path(), "cache").await;
    }
}

/// A classic `docker save` tar (uncompressed `<id>/layer.tar`) of `img`.
fn classic_save(img: &TestImage, tag: &str) -> Vec<u8> {
    use std::io::Read;
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, name, data).unwrap();
    };
    let config_name = format!("{}.json", &img.config_digest[7..]);
    add(config_name.clone(), &img.config);
    let mut layer_names = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(l.blob.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        let id = format!("{:064x}", i + 1);
        add(format!("{id}/VERSION"), b"1.0");
        add(
            format!("{id}/json"),
            format!("{{\"id\":\"{id}\"}}").as_bytes(),
        );
        add(format!("{id}/layer.tar"), &raw);
        layer_names.push(format!("{id}/layer.tar"));
    }
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": layer_names}]);
    add("manifest.json".into(), manifest.to_string().as_bytes());
    tar.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_docker_save_tar_spares_the_download() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 3).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    std::fs::write(work.path().join("saved.tar"), classic_save(&img, &name)).unwrap();
    let out = imgpull(
        work.path(),
        &["cache", "import", "saved.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("4 blobs added") && stdout.contains("3 layer(s) were stored uncompressed"),
        "{stdout}"
    );

    let out = pull_cached(work.path(), &name, "out.tar").await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Cache hits: 3/3"),
        "{}",
        text(&out)
    );
    assert!(
        reg.blob_gets().is_empty(),
        "no layer (or config) downloaded:\n{}",
        reg.log()
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));

    // The OCI layout carries the registry's compressed blobs: those are fetched.
    let out = pull_cached(work.path(), &name, "oci:layout").await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(reg.blob_gets().len(), 3, "{}", reg.log());
}
