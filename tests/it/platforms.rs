//! Multi-platform images: containerd-style matching end to end, several
//! platforms per pull, `inspect`.

use crate::pull::tar_file;
use crate::support::image::{self, Format, TestImage};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text, tools};
use serde_json::Value;
use std::path::Path;

const SIX: [&str; 6] = ["amd64", "arm64/v8", "arm/v7", "386", "ppc64le", "s390x"];

/// A registry with the six-platform image as a Docker manifest list
/// (`list/app:1`) and as an OCI index (`oci/app:1`).
async fn six_platforms() -> (Registry, Vec<(Format, String, Vec<TestImage>, Vec<u8>)>) {
    let reg = Registry::start(Variant::Anonymous).await;
    let mut published = Vec::new();
    for (format, repo) in [(Format::Docker, "list/app"), (Format::Oci, "oci/app")] {
        let images: Vec<TestImage> = SIX
            .iter()
            .map(|arch| image::build(&format!("{repo}-{arch}"), format, arch, 1))
            .collect();
        let index = image::push_index(&reg, repo, "1", format, &images).await;
        published.push((format, format!("{}/{repo}:1", reg.host()), images, index));
    }
    (reg, published)
}

fn config_of(tar: &Path, n: usize) -> Value {
    let manifest: Value = serde_json::from_slice(&tar_file(tar, "manifest.json").unwrap()).unwrap();
    let config = manifest[n]["Config"].as_str().unwrap().to_string();
    serde_json::from_slice(&tar_file(tar, &config).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_and_variants_pick_the_right_entry() {
    let (_reg, published) = six_platforms().await;
    let work = tempdir();
    let cases = [
        ("linux/arm64", "arm64", Some("v8")),
        ("linux/arm64/v8", "arm64", Some("v8")),
        ("linux/aarch64", "arm64", Some("v8")),
        ("linux/arm", "arm", Some("v7")),
        ("linux/armhf", "arm", Some("v7")),
        ("linux/arm/v8", "arm", Some("v7")),
        ("linux/i686", "386", None),
        ("LINUX/S390X", "s390x", None),
    ];
    for (format, name, _, _) in &published {
        for (i, (wanted, arch, variant)) in cases.iter().enumerate() {
            let out_name = format!("{format:?}-{i}.tar");
            let args = [
                "pull",
                name.as_str(),
                "--platform",
                wanted,
                "-o",
                &out_name,
                "-q",
            ];
            let out = imgpull(work.path(), &args, None).await;
            assert!(out.status.success(), "{wanted}: {}", text(&out));
            let config = config_of(&work.path().join(&out_name), 0);
            assert_eq!(config["architecture"], *arch, "{format:?} {wanted}");
            assert_eq!(config["variant"].as_str(), *variant, "{format:?} {wanted}");
        }
        tools::check_archive(
            &work.path().join(format!("{format:?}-0.tar")),
            work.path(),
            Some(name),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_match_lists_every_platform() {
    let (reg, published) = six_platforms().await;
    let work = tempdir();
    for (_, name, images, _) in &published {
        let out = imgpull(
            work.path(),
            &["pull", name, "--platform", "linux/mips64", "-o", "x.tar"],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(8), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for p in [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
        ] {
            assert!(err.contains(p), "{p} missing: {err}");
        }
        for img in images {
            assert!(err.contains(&img.manifest_digest), "{err}");
        }
        assert!(err.contains("linux/mips64"), "{err}");
        assert!(!work.path().join("x.tar").exists());
    }
    assert!(
        reg.blob_gets().is_empty(),
        "nothing downloaded:\n{}",
        reg.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_platforms_into_an_oci_layout_and_a_docker_archive() {
    let (_reg, published) = six_platforms().await;
    let work = tempdir();
    let (_, name, images, _) = &published[0];
    let (amd, arm) = (&images[0], &images[1]);

    let out = imgpull(
        work.path(),
        &[
            "pull",
            name,
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "oci:layout",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let layout = work.path().join("layout");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let inner = &entries[0]["digest"].as_str().unwrap()[7..];
    let inner: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(inner)).unwrap())
            .unwrap();
    // Docker manifests are rewritten with OCI types; their configs stay.
    let configs: Vec<String> = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            let blob = layout
                .join("blobs/sha256")
                .join(&m["digest"].as_str().unwrap()[7..]);
            let doc: Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
            doc["config"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        configs,
        [amd.config_digest.clone(), arm.config_digest.clone()],
        "exactly those two"
    );
    let copied = tools::skopeo_copy(
        &format!("oci:{}:1", layout.display()),
        work.path(),
        &["--all"],
    );
    assert_eq!(copied["manifests"].as_array().map(Vec::len), Some(1));
    let blobs = crate::support::list_files(&layout.join("blobs/sha256"));
    assert_eq!(
        blobs.len(),
        1 + 2 * 3,
        "index + (manifest, config, layer) x 2: {blobs:?}"
    );

    // docker-archive: one manifest.json entry per platform, the first tagged.
    let out = imgpull(
        work.path(),
        &[
            "pull",
            name,
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let default = format!(
        "{}_list_app_1_linux_amd64_linux_arm64.tar",
        name.split('/').next().unwrap().replace(':', "_")
    );
    let tar = work.path().join(&default);
    assert!(
        tar.is_file(),
        "{:?}",
        crate::support::list_files(work.path())
    );
    let manifest: Value =
        serde_json::from_slice(&tar_file(&tar, "manifest.json").unwrap()).unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 2);
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([name]));
    assert_eq!(manifest[1]["RepoTags"], Value::Null);
    assert_eq!(config_of(&tar, 1)["architecture"], "arm64");
    for n in ["@0", "@1"] {
        tools::skopeo_copy(
            &format!("docker-archive:{}:{n}", tar.display()),
            work.path(),
            &[],
        );
    }
    let loaded = tools::podman_load(&tar, work.path());
    assert!(loaded.contains(name.as_str()), "{loaded}");

    // all: every image of the index.
    let out = imgpull(
        work.path(),
        &["pull", name, "--platform", "all", "-o", "all.tar"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let manifest: Value =
        serde_json::from_slice(&tar_file(&work.path().join("all.tar"), "manifest.json").unwrap())
            .unwrap();
    assert_eq!(manifest.as_array().unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_lists_platforms_without_downloading() {
    let (reg, published) = six_platforms().await;
    let work = tempdir();
    for (format, name, images, index) in &published {
        let out = imgpull(work.path(), &["inspect", name], None).await;
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(format.index_type()), "{stdout}");
        for (img, p) in images.iter().zip([
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/386",
            "linux/ppc64le",
            "linux/s390x",
        ]) {
            let line = stdout
                .lines()
                .find(|l| l.contains(&img.manifest_digest))
                .unwrap_or_else(|| panic!("{stdout}"));
            assert!(line.contains(p), "{line}");
        }

        let out = imgpull(work.path(), &["inspect", name, "--json"], None).await;
        assert!(out.status.success(), "{}", text(&out));
        let json: Value = serde_json::from_slice(&out.stdout).expect("--json parses");
        assert_eq!(json["kind"], "index");
        assert_eq!(json["digest"], image::sha256(index));
        assert_eq!(json["manifests"].as_array().unwrap().len(), 6);
        assert_eq!(json["manifests"][2]["variant"], "v7");

        let out = imgpull(work.path(), &["inspect", name, "--raw"], None).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(out.stdout, *index);
        assert_eq!(image::sha256(&out.stdout), json["digest"].as_str().unwrap());
    }
    assert!(
        reg.blob_gets().is_empty(),
        "inspecting an index fetches no blob:\n{}",
        reg.log()
    );

    // One platform's image: layers and config, one blob (the config) fetched.
    let (_, name, images, _) = &published[1];
    let out = imgpull(
        work.path(),
        &["inspect", name, "--platform", "linux/arm/v7", "--json"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kind"], "image");
    assert_eq!(json["digest"], images[2].manifest_digest);
    assert_eq!(json["config"]["architecture"], "arm");
    assert_eq!(json["config"]["variant"], "v7");
    assert_eq!(json["config"]["cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(json["layers"][0]["digest"], images[2].layers[0].digest);
    assert_eq!(json["total_size"], images[2].layers[0].blob.len());
    let gets = reg.blob_gets();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(gets[0].contains(&images[2].config_digest), "{gets:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_image_tag_must_match_an_explicit_platform() {
    let (reg, _) = image::registry_with(Variant::Anonymous, "single/app", Format::Oci, 2).await;
    let work = tempdir();
    let name = format!("{}/single/app:1", reg.host());
    let other = if image::host_arch() == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let out = imgpull(
        work.path(),
        &["pull", &name, "--platform", other, "-o", "x.tar"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("linux/{}", image::host_arch())),
        "{err}"
    );
    assert!(!work.path().join("x.tar").exists());
    let layer_gets = reg.blob_gets().len();
    assert_eq!(layer_gets, 1, "only the config was fetched:\n{}", reg.log());

    // Without --platform the host default takes the image as it is.
    let out = imgpull(work.path(), &["pull", &name, "-o", "ok.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_may_name_the_index_or_one_platform() {
    let (_reg, published) = six_platforms().await;
    let work = tempdir();
    let (_, name, images, index) = &published[1];
    let repo = name.trim_end_matches(":1");

    let by_index = format!("{repo}@{}", image::sha256(index));
    let args = [
        "pull",
        by_index.as_str(),
        "--platform",
        "linux/armhf",
        "-o",
        "idx.tar",
    ];
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let tar = work.path().join("idx.tar");
    assert_eq!(config_of(&tar, 0)["variant"], "v7");
    let manifest: Value =
        serde_json::from_slice(&tar_file(&tar, "manifest.json").unwrap()).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        Value::Null,
        "a pull by digest writes no tag"
    );

    let by_child = format!("{repo}@{}", images[4].manifest_digest);
    let out = imgpull(work.path(), &["pull", &by_child, "-o", "child.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        config_of(&work.path().join("child.tar"), 0)["architecture"],
        "ppc64le"
    );
    tools::skopeo_copy_to_oci(&work.path().join("child.tar"), work.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_hub_quota_is_read_from_a_head_and_warned_about() {
    use crate::support::proxy::{self, Fault};
    let (reg, published) = six_platforms().await;
    let proxy = proxy::start(reg.base_url(), Fault::RateLimit(2)).await;
    let work = tempdir();
    // Loopback stands in for Docker Hub: the adapter is chosen by `kind`.
    let toml = format!("[registries.\"{}\"]\nkind = \"dockerhub\"\n", proxy.host());
    std::fs::write(work.path().join("imgpull.toml"), toml).unwrap();
    let name = published[1].1.replace(&reg.host(), &proxy.host());

    let args = [
        "pull",
        name.as_str(),
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        "two.tar",
        "-v",
    ];
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pull quota 2 of 100 left per 6h"), "{err}");
    assert!(
        err.contains("warning:") && err.contains("needs 3 manifest requests"),
        "{err}"
    );
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(|s| s.0.as_str()),
        Some("GET"),
        "the /v2/ ping"
    );
    assert!(
        seen.iter()
            .any(|(m, p, _)| m == "HEAD" && p.ends_with("/manifests/1")),
        "{seen:?}"
    );

    // Enough quota: no warning.
    *proxy.fault.lock().unwrap() = Fault::RateLimit(50);
    let out = imgpull(
        work.path(),
        &["pull", &name, "--platform", "linux/amd64", "-o", "one.tar"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning:"),
        "{}",
        text(&out)
    );
}
