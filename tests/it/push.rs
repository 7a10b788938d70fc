//! Pushing into a registry: `pull SRC -o docker://DST` (a copy through the
//! cache) and `push SOURCE DST` (tars and layouts), read back by skopeo and
//! a real `docker pull`, with the destination registry's log as witness.

use crate::support::docker::Docker;
use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{certs, imgpull, tempdir, text, token, tools};
use std::path::Path;
use std::process::Command;

/// An `imgpull.toml` reaching `reg` as a pusher (alice on the token
/// server, bob on htpasswd, the test CA for TLS).
pub(crate) fn config_for(reg: &Registry) -> String {
    let host = reg.host();
    let creds = |u: &str, p: &str| {
        format!(
            "[registries.\"{host}\"]\ncredentials = [{{ provider = \"static\", username = \"{u}\", password = \"{p}\" }}]\n"
        )
    };
    match reg.variant {
        Variant::Anonymous => String::new(),
        Variant::Basic => creds(&reg.basic.0, &reg.basic.1),
        Variant::Token => creds(token::USER, token::PASSWORD),
        Variant::Tls => format!(
            "[registries.\"{host}\"]\nca_file = \"{}\"\n",
            certs::get().ca_pem.display()
        ),
    }
}

/// skopeo's flags to read `reg` (`prefix` is `src-` for copy, empty for inspect).
fn skopeo_flags(reg: &Registry, prefix: &str) -> Vec<String> {
    let mut f = Vec::new();
    match reg.variant {
        Variant::Tls => f.push(format!("--{prefix}cert-dir={}", ca_dir().display())),
        _ => f.push(format!("--{prefix}tls-verify=false")),
    }
    match reg.variant {
        Variant::Basic => f.push(format!("--{prefix}creds={}:{}", reg.basic.0, reg.basic.1)),
        Variant::Token => f.push(format!(
            "--{prefix}creds={}:{}",
            token::USER,
            token::PASSWORD
        )),
        _ => {}
    }
    f
}

/// A directory holding only the test CA as `ca.crt`, as skopeo's and
/// docker's `certs.d` want it.
fn ca_dir() -> std::path::PathBuf {
    let dir = certs::get().dir.join("skopeo-certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&certs::get().ca_pem, dir.join("ca.crt")).unwrap();
    dir
}

/// `skopeo inspect --raw docker://NAME`: the manifest bytes the registry serves.
pub(crate) fn raw_manifest(reg: &Registry, name: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(skopeo_flags(reg, ""))
        .arg(format!("docker://{name}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        text(&out)
    );
    out.stdout
}

/// `skopeo copy docker://NAME oci:…` (every layer digested by skopeo).
pub(crate) fn skopeo_reads(reg: &Registry, name: &str, work: &Path) -> serde_json::Value {
    let flags = skopeo_flags(reg, "src-");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    tools::skopeo_copy(&format!("docker://{name}"), work, &flags)
}

/// Lines of the registry's access log for blob uploads to `repository`.
pub(crate) fn uploads(reg: &Registry, repository: &str) -> Vec<String> {
    reg.log()
        .lines()
        .filter(|l| {
            (l.contains("\"PATCH /v2/") || l.contains("\"PUT /v2/"))
                && l.contains(&format!("/v2/{repository}/blobs/uploads/"))
        })
        .map(str::to_string)
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    image::sha256(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_keeps_the_digest_in_every_registry_variant_and_skips_what_is_there() {
    let src = Registry::start(Variant::Anonymous).await;
    let img = image::build("copy-src", Format::Oci, image::host_arch(), 3);
    image::push(&src, "bench/app", "1", &img).await;
    let from = format!("{}/bench/app:1", src.host());
    for variant in [
        Variant::Anonymous,
        Variant::Basic,
        Variant::Token,
        Variant::Tls,
    ] {
        let dst = Registry::start(variant).await;
        let work = tempdir();
        std::fs::write(work.path().join("imgpull.toml"), config_for(&dst)).unwrap();
        let to = format!("{}/copy/app:1", dst.host());
        let out = imgpull(
            work.path(),
            &["pull", &from, "-o", &format!("docker://{to}")],
            None,
        )
        .await;
        assert!(out.status.success(), "{variant:?}: {}", text(&out));
        assert!(
            text(&out).contains(&img.manifest_digest),
            "{variant:?}: the summary names the digest: {}",
            text(&out)
        );
        let raw = raw_manifest(&dst, &to);
        assert_eq!(raw, img.manifest, "{variant:?}: the manifest byte for byte");
        assert_eq!(sha(&raw), img.manifest_digest);
        let index = skopeo_reads(&dst, &to, work.path());
        assert_eq!(index["manifests"][0]["digest"], img.manifest_digest);
        let before = uploads(&dst, "copy/app");
        let commits = before.iter().filter(|l| l.contains("\"PUT ")).count();
        assert_eq!(
            commits, 4,
            "{variant:?}: config and 3 layers uploaded once: {before:#?}"
        );
        // Again, to another tag: every blob is there already.
        let again = format!("docker://{}/copy/app:2", dst.host());
        let out = imgpull(work.path(), &["pull", &from, "-o", &again], None).await;
        assert!(out.status.success(), "{variant:?}: {}", text(&out));
        assert_eq!(
            uploads(&dst, "copy/app"),
            before,
            "{variant:?}: a second copy uploads no blob"
        );
        assert_eq!(
            raw_manifest(&dst, &format!("{}/copy/app:2", dst.host())),
            img.manifest
        );
        // From a machine with an empty cache: the layers the destination
        // has are not even downloaded (only the config is).
        let fresh = tempdir();
        std::fs::write(fresh.path().join("imgpull.toml"), config_for(&dst)).unwrap();
        let gets = src.blob_gets().len();
        let again = format!("docker://{}/copy/app:3", dst.host());
        let out = imgpull(fresh.path(), &["pull", &from, "-o", &again], None).await;
        assert!(out.status.success(), "{variant:?}: {}", text(&out));
        assert!(
            text(&out).contains("3 already at the destination"),
            "{}",
            text(&out)
        );
        let new: Vec<String> = src.blob_gets().split_off(gets);
        assert_eq!(
            new.len(),
            1,
            "{variant:?}: only the config fetched: {new:#?}"
        );
        assert!(new[0].contains(&img.config_digest), "{new:#?}");
        assert_eq!(
            uploads(&dst, "copy/app"),
            before,
            "{variant:?}: nothing uploaded"
        );
    }
}

/// `imgpull push ARGS` in `work`, which must succeed; its output.
async fn push_ok(work: &Path, args: &[&str]) -> String {
    let mut all = vec!["push"];
    all.extend(args);
    let out = imgpull(work, &all, None).await;
    assert!(out.status.success(), "push {args:?}: {}", text(&out));
    text(&out)
}

/// `docker pull NAME` from `docker`, then: the image ID is `config`, and
/// a container of it says `word`.
fn docker_runs(docker: &Docker, name: &str, config: &str, word: &str) {
    docker.ok(&["pull", name]);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", name]);
    assert_eq!(id.trim(), config, "{name}: the image ID is the source's");
    let said = docker.ok(&["run", "--rm", "--network", "none", name, "cat", "/hello"]);
    assert_eq!(said.trim(), word, "{name} runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_docker_archive_variant_and_a_docker_save_tar_push_and_run_in_docker() {
    let docker = Docker::start().await;
    let src = Registry::start(Variant::Anonymous).await;
    let app = crate::docker::runnable("pushme", Format::Docker, image::host_arch());
    image::push(&src, "ns/app", "1", &app).await;
    let dst = Registry::start(Variant::Anonymous).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", src.host());
    let variants: [(&str, &[&str]); 3] = [
        ("default", &[]),
        ("legacy", &["--legacy"]),
        ("uncompressed", &["--layer-format", "uncompressed"]),
    ];
    for (what, extra) in variants {
        let tar = format!("{what}.tar");
        let mut args = vec!["pull", name.as_str(), "-o", tar.as_str()];
        args.extend(extra);
        let out = imgpull(work.path(), &args, None).await;
        assert!(out.status.success(), "{what}: {}", text(&out));
        let to = format!("{}/pushed/{what}:1", dst.host());
        let said = push_ok(work.path(), &[&tar, &to]).await;
        assert!(said.contains("Next: docker pull"), "{what}: {said}");
        let raw = raw_manifest(&dst, &to);
        if what == "default" {
            assert_eq!(
                raw, app.manifest,
                "compressed layers: the manifest byte for byte"
            );
        } else {
            let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            for l in m["layers"].as_array().unwrap() {
                assert!(
                    l["mediaType"].as_str().unwrap().ends_with("gzip"),
                    "{what}: plain layers are pushed gzipped: {m}"
                );
            }
        }
        skopeo_reads(&dst, &to, work.path());
        if let Some(d) = &docker {
            docker_runs(d, &to, &app.config_digest, "pushme");
        }
    }
    // A copy, registry to registry, as --json events.
    let copied = format!("{}/copied/app:1", dst.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", &format!("docker://{copied}"), "--json"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pushed = events
        .iter()
        .find(|e| e["event"] == "pushed")
        .expect("a pushed event");
    assert_eq!(pushed["digest"], app.manifest_digest);
    assert_eq!(
        pushed["mounted"], 3,
        "every blob was pushed to another repository above: mounted from it: {pushed}"
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["next"], format!("docker pull {copied}"));
    let Some(docker) = docker else { return };
    docker_runs(&docker, &copied, &app.config_digest, "pushme");
    // A tar the real Docker wrote.
    let pushed = format!("{}/pushed/default:1", dst.host());
    docker.ok(&["tag", &pushed, "saved/app:7"]);
    let saved = work.path().join("saved.tar");
    docker.ok(&["save", "-o", &saved.display().to_string(), "saved/app:7"]);
    let to = format!("{}/pushed/saved:7", dst.host());
    push_ok(work.path(), &["saved.tar", &to]).await;
    docker.ok(&["rmi", "saved/app:7", &pushed]);
    docker_runs(&docker, &to, &app.config_digest, "pushme");
    skopeo_reads(&dst, &to, work.path());
}

/// Access-log lines of `method` requests on `repository`'s upload URLs.
fn upload_requests(reg: &Registry, method: &str, repository: &str) -> Vec<String> {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("\"{method} /v2/{repository}/blobs/uploads/")))
        .map(str::to_string)
        .collect()
}

/// What a chunked push of a one-layer image went through.
struct Pushed {
    dst: Registry,
    out: std::process::Output,
    _work: tempfile::TempDir,
    _proxy: crate::support::proxy::Proxy,
}

/// A one-layer image of `size` bytes, pulled into a tar, then pushed from
/// it as it is in 1 MiB chunks through a proxy doing `fault` in front of a
/// fresh registry.
async fn push_through(seed: &str, size: usize, fault: crate::support::proxy::Fault) -> Pushed {
    let src = Registry::start(Variant::Anonymous).await;
    let big = image::big_layer(seed, size);
    let img = image::build_from(seed, Format::Oci, image::host_arch(), vec![big]);
    image::push(&src, "ns/big", "1", &img).await;
    let dst = Registry::start(Variant::Anonymous).await;
    let proxy = crate::support::proxy::start(dst.base_url(), fault).await;
    let work = tempdir();
    let from = format!("{}/ns/big:1", src.host());
    let out = imgpull(work.path(), &["pull", &from, "-o", "big.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let to = format!("{}/copy/big:1", proxy.host());
    let args = [
        "push",
        "big.tar",
        &to,
        "--upload-chunk-size",
        "1MiB",
        "--compress=false",
    ];
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let to = format!("{}/copy/big:1", dst.host());
    assert_eq!(raw_manifest(&dst, &to), img.manifest);
    // skopeo reads every byte of it back (and checks the digests).
    skopeo_reads(&dst, &to, work.path());
    Pushed {
        dst,
        out,
        _work: work,
        _proxy: proxy,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_between_chunks_goes_on_from_where_the_registry_stands() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fault = crate::support::proxy::Fault::DropPatch {
        nth: 3,
        seen: seen.clone(),
    };
    let Pushed { dst, out, .. } = push_through("resume", 4_500_000, fault).await;
    assert!(text(&out).contains("interrupted"), "said: {}", text(&out));
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        6,
        "5 PATCHes reached the proxy, 1 cut"
    );
    let patches = upload_requests(&dst, "PATCH", "copy/big");
    assert_eq!(patches.len(), 5, "each 1 MiB chunk sent once: {patches:#?}");
    assert_eq!(
        upload_requests(&dst, "POST", "copy/big").len(),
        2,
        "one upload session per blob (config, layer): not started over"
    );
    assert_eq!(
        upload_requests(&dst, "GET", "copy/big").len(),
        1,
        "the registry was asked where the upload stood"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_within_a_registry_mounts_the_blobs() {
    let reg = Registry::start(Variant::Token).await;
    let img = image::build("mount", Format::Docker, image::host_arch(), 2);
    image::push(&reg, "team/app", "1", &img).await;
    let work = tempdir();
    std::fs::write(work.path().join("imgpull.toml"), config_for(&reg)).unwrap();
    let from = format!("{}/team/app:1", reg.host());
    let to = format!("{}/team/app-copy:1", reg.host());
    let out = imgpull(
        work.path(),
        &["pull", &from, "-o", &format!("docker://{to}")],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let mounts: Vec<String> = upload_requests(&reg, "POST", "team/app-copy")
        .into_iter()
        .filter(|l| {
            l.contains("mount=") && l.contains("from=team%2Fapp") || l.contains("from=team/app")
        })
        .collect();
    assert_eq!(
        mounts.len(),
        3,
        "config and both layers mounted: {mounts:#?}"
    );
    assert!(mounts.iter().all(|l| l.contains("\" 201 ")), "{mounts:#?}");
    assert!(
        uploads(&reg, "team/app-copy").is_empty(),
        "nothing uploaded"
    );
    assert!(text(&out).contains("3 mounted"), "{}", text(&out));
    assert_eq!(raw_manifest(&reg, &to), img.manifest);
}

/// The index blob an OCI layout's `index.json` names first.
fn layout_index(dir: &Path) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::read(
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn several_platforms_push_as_one_index_from_a_copy_a_layout_and_an_archive() {
    let src = Registry::start(Variant::Anonymous).await;
    let amd = image::build("multi-amd", Format::Oci, "amd64", 2);
    let arm = image::build("multi-arm", Format::Oci, "arm64", 2);
    let index = image::push_index(&src, "ns/multi", "1", Format::Oci, &[amd, arm]).await;
    let dst = Registry::start(Variant::Basic).await;
    let work = tempdir();
    std::fs::write(work.path().join("imgpull.toml"), config_for(&dst)).unwrap();
    let from = format!("{}/ns/multi:1", src.host());
    // A copy of every platform: the index byte for byte.
    let to = format!("{}/copy/multi:1", dst.host());
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &from,
            "--platform",
            "all",
            "-o",
            &format!("docker://{to}"),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        raw_manifest(&dst, &to),
        index,
        "the source's index, unchanged"
    );
    skopeo_reads(&dst, &to, work.path());
    // The layout and the archive imgpull writes, and a layout skopeo wrote.
    for (what, args) in [
        ("oci", vec!["--format", "oci", "-o", "layout"]),
        (
            "oci-archive",
            vec!["--format", "oci-archive", "-o", "multi.tar"],
        ),
    ] {
        let mut all = vec!["pull", from.as_str(), "--platform", "all"];
        all.extend(args);
        let out = imgpull(work.path(), &all, None).await;
        assert!(out.status.success(), "{what}: {}", text(&out));
    }
    let skopeo_layout = work.path().join("by-skopeo");
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{from}"))
        .arg(format!("oci:{}:1", skopeo_layout.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let archive = work.path().join("multi.tar");
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    for (what, source, layout) in [
        (
            "oci",
            "oci:layout:1".to_string(),
            work.path().join("layout"),
        ),
        (
            "oci-archive",
            "oci-archive:multi.tar:1".to_string(),
            unpacked,
        ),
        (
            "skopeo's layout",
            format!("oci:{}:1", skopeo_layout.display()),
            skopeo_layout.clone(),
        ),
    ] {
        let to = format!("{}/pushed/{}:1", dst.host(), what.replace(['\'', ' '], "-"));
        push_ok(work.path(), &[&source, &to]).await;
        let raw = raw_manifest(&dst, &to);
        assert_eq!(
            raw,
            layout_index(&layout),
            "{what}: the layout's index, unchanged"
        );
        let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(m["manifests"].as_array().unwrap().len(), 2, "{what}: {m}");
        skopeo_reads(&dst, &to, work.path());
    }
    // A docker-archive of two platforms (the tag on the first): one index,
    // made anew, naming both manifests as the source's index did.
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &from,
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "multi-da.tar",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let to = format!("{}/pushed/docker-archive", dst.host());
    push_ok(work.path(), &["multi-da.tar", &to]).await;
    let to = format!("{to}:1");
    let made: serde_json::Value = serde_json::from_slice(&raw_manifest(&dst, &to)).unwrap();
    let source: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let digests = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap().to_string(),
                    m["platform"]["architecture"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(digests(&made), digests(&source), "{made}");
    skopeo_reads(&dst, &to, work.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_without_push_rights_fails_clearly_and_pushes_nothing() {
    let src = Registry::start(Variant::Anonymous).await;
    let img = image::build("ro", Format::Docker, image::host_arch(), 2);
    image::push(&src, "ns/app", "1", &img).await;
    let dst = Registry::start(Variant::Token).await;
    let work = tempdir();
    let out = imgpull(
        work.path(),
        &["pull", &format!("{}/ns/app:1", src.host()), "-o", "app.tar"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let to = format!("{}/ro/app:1", dst.host());
    let out = imgpull(
        work.path(),
        &[
            "push",
            "app.tar",
            &to,
            "-u",
            token::READER,
            "--password-stdin",
        ],
        Some(token::READER_PASSWORD),
    )
    .await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "the auth exit code: {said}");
    assert!(said.contains("push access to ro/app is missing"), "{said}");
    assert!(said.contains(&dst.host()), "names the registry: {said}");
    assert!(!said.contains(token::READER_PASSWORD), "{said}");
    let log = dst.log();
    assert!(
        !log.contains("PUT /v2/ro/app/manifests"),
        "no manifest pushed"
    );
    assert!(uploads(&dst, "ro/app").is_empty(), "no blob pushed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_sources_are_refused_before_any_manifest_is_pushed() {
    let src = Registry::start(Variant::Anonymous).await;
    let img = image::build("bad", Format::Docker, image::host_arch(), 2);
    image::push(&src, "ns/app", "1", &img).await;
    let dst = Registry::start(Variant::Anonymous).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", src.host());
    for (tar, extra) in [("good.tar", vec![]), ("legacy.tar", vec!["--legacy"])] {
        let mut args = vec!["pull", name.as_str(), "-o", tar];
        args.extend(extra);
        let out = imgpull(work.path(), &args, None).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    std::fs::write(work.path().join("not.tar"), b"hello, not a tar").unwrap();
    // One byte of the last layer's data flipped, in each tar.
    let flip = |name: &str, file: &str| {
        let path = work.path().join(name);
        let mut ar = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let pos = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_string_lossy().ends_with(file))
            .map(|e| e.raw_file_position() + e.size() / 2)
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[pos as usize] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    };
    let last = img
        .layers
        .last()
        .unwrap()
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    // The same tar without that layer's blob.
    std::fs::copy(work.path().join("good.tar"), work.path().join("short.tar")).unwrap();
    rewrite_tar(&work.path().join("short.tar"), |h, d| {
        let keep = !h.path().unwrap().to_string_lossy().ends_with(last.as_str());
        if keep {
            vec![(h, d)]
        } else {
            vec![]
        }
    });
    flip("good.tar", &last);
    flip("legacy.tar", "layer.tar");
    for (what, source, code, says) in [
        ("not a tar", "not.tar", 2, "not a tar"),
        ("missing", "nothing-here.tar", 2, "no such file"),
        ("a blob missing", "short.tar", 2, "is missing"),
        ("corrupt compressed layer", "good.tar", 7, "integrity"),
        ("corrupt plain layer", "legacy.tar", 7, "integrity"),
    ] {
        let to = format!("{}/bad/app:1", dst.host());
        let out = imgpull(work.path(), &["push", source, &to], None).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(code), "{what}: {said}");
        assert!(said.contains(says), "{what}: {said}");
        assert!(
            !dst.log().contains("/manifests/"),
            "{what}: no manifest pushed"
        );
    }
    // Nor was the damaged layer kept under its name.
    let head = dst
        .http()
        .head(format!("{}/v2/bad/app/blobs/sha256:{last}", dst.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.status(),
        404,
        "the corrupt layer is not in the registry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_registry_lost_track_of_starts_over() {
    // Half a chunk reached the registry before the cut: distribution then
    // refuses the session (its offset no longer matches), and the blob is
    // uploaded again in a new one.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fault = crate::support::proxy::Fault::HalfPatch { nth: 2, seen };
    let Pushed { dst, out, .. } = push_through("half", 3_500_000, fault).await;
    assert!(
        text(&out).contains("starting it over"),
        "said: {}",
        text(&out)
    );
    assert_eq!(
        upload_requests(&dst, "POST", "copy/big").len(),
        3,
        "the config's session, the layer's, and the layer's again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_uploads_as_it_downloads_and_repairs_a_cut_upload_from_the_cache() {
    let src = Registry::start(Variant::Anonymous).await;
    let big = image::big_layer("stream", 6_000_000);
    let img = image::build_from("stream", Format::Oci, image::host_arch(), vec![big.clone()]);
    image::push(&src, "ns/big", "1", &img).await;
    let from = format!("{}/ns/big:1", src.host());
    for cut in [false, true] {
        let dst = Registry::start(Variant::Anonymous).await;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fault = match cut {
            true => crate::support::proxy::Fault::DropPatch { nth: 1, seen },
            false => crate::support::proxy::Fault::None,
        };
        let proxy = crate::support::proxy::start(dst.base_url(), fault).await;
        let work = tempdir();
        let to = format!("{}/copy/big:1", proxy.host());
        let out = imgpull(
            work.path(),
            &[
                "pull",
                &from,
                "-o",
                &format!("docker://{to}"),
                "--no-cache",
                "-v",
            ],
            None,
        )
        .await;
        let said = text(&out);
        assert!(out.status.success(), "cut {cut}: {said}");
        let patches = upload_requests(&dst, "PATCH", "copy/big");
        let commits = upload_requests(&dst, "PUT", "copy/big");
        assert_eq!(
            commits.len(),
            2,
            "cut {cut}: config and layer committed once: {commits:#?}"
        );
        if cut {
            // The cut PATCH never reached the registry; the layer went
            // again from the cache, in one PUT (it is under the chunk size).
            assert!(patches.is_empty(), "{patches:#?}");
            assert!(said.contains("uploading it from the cache"), "{said}");
            assert!(
                said.contains("0 blobs written as they downloaded"),
                "{said}"
            );
        } else {
            assert_eq!(
                patches.len(),
                1,
                "the layer in one PATCH, as it downloaded: {patches:#?}"
            );
            assert!(
                said.contains("1 blobs written as they downloaded"),
                "{said}"
            );
        }
        let to = format!("{}/copy/big:1", dst.host());
        assert_eq!(raw_manifest(&dst, &to), img.manifest, "cut {cut}");
        skopeo_reads(&dst, &to, work.path());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_cut_on_its_first_chunk_goes_on_from_byte_zero() {
    // The registry then answers the status with `Range: 0-0` (nothing
    // held), which must not be read as one byte.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fault = crate::support::proxy::Fault::DropPatch { nth: 1, seen };
    let Pushed { dst, out, .. } = push_through("first", 2_500_000, fault).await;
    assert!(text(&out).contains("holds 0 bytes"), "{}", text(&out));
    assert_eq!(
        upload_requests(&dst, "POST", "copy/big").len(),
        2,
        "not started over"
    );
    assert_eq!(
        upload_requests(&dst, "PATCH", "copy/big").len(),
        3,
        "3 chunks, each once"
    );
}

/// `tar` rewritten by `f`, which sees each entry (header, data) and
/// returns the entries to write instead.
fn rewrite_tar(tar: &Path, mut f: impl FnMut(tar::Header, Vec<u8>) -> Vec<(tar::Header, Vec<u8>)>) {
    use std::io::Read;
    let mut out = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        for (mut h, d) in f(e.header().clone(), data) {
            h.set_size(d.len() as u64);
            h.set_cksum();
            out.append(&h, d.as_slice()).unwrap();
        }
    }
    std::fs::write(tar, out.into_inner().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_tars_with_a_linked_layer_or_gzip_layers_push() {
    // Older `docker save` links a layer.tar it already wrote; crane-style
    // tarballs hold gzip layers in the v1.2 layout.
    let src = Registry::start(Variant::Anonymous).await;
    let img = crate::exporters::mixed_image(&src).await;
    let dst = Registry::start(Variant::Anonymous).await;
    let work = tempdir();
    let name = format!("{}/ns/mixed:1", src.host());
    for tar in ["linked.tar", "gzip.tar"] {
        let out = imgpull(work.path(), &["pull", &name, "--legacy", "-o", tar], None).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    // The first and the last layer are the same: link the last to the first.
    let mut first: Option<String> = None;
    let mut linked = 0;
    rewrite_tar(&work.path().join("linked.tar"), |h, d| {
        let path = h.path().unwrap().to_string_lossy().into_owned();
        if !path.ends_with("/layer.tar") {
            return vec![(h, d)];
        }
        let digest = image::sha256(&d);
        if digest != img.layers[0].diff_id {
            return vec![(h, d)];
        }
        if first.is_none() {
            first = Some(path.clone());
            return vec![(h, d)];
        }
        let mut l = tar::Header::new_ustar();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_path(&path).unwrap();
        let target = format!("../{}", first.as_deref().unwrap());
        l.set_link_name(&target).unwrap();
        l.set_mode(0o777);
        linked += 1;
        vec![(l, Vec::new())]
    });
    assert_eq!(linked, 1, "the repeated layer became a link");
    rewrite_tar(&work.path().join("gzip.tar"), |h, d| {
        let path = h.path().unwrap().to_string_lossy().into_owned();
        if !path.ends_with("/layer.tar") {
            return vec![(h, d)];
        }
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&d).unwrap();
        vec![(h, gz.finish().unwrap())]
    });
    for tar in ["linked.tar", "gzip.tar"] {
        let to = format!("{}/legacy/{}:1", dst.host(), tar.trim_end_matches(".tar"));
        push_ok(work.path(), &[tar, &to]).await;
        let m: serde_json::Value = serde_json::from_slice(&raw_manifest(&dst, &to)).unwrap();
        assert_eq!(
            m["config"]["digest"], img.config_digest,
            "{tar}: the config unchanged"
        );
        assert_eq!(m["layers"].as_array().unwrap().len(), 4, "{tar}: {m}");
        skopeo_reads(&dst, &to, work.path());
    }
}
