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
        assert_eq!(
            before.len(),
            4,
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
    let Some(docker) = docker else { return };
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
