//! Pulls from an anonymous registry: Docker and OCI manifests, indexes,
//! output names, pulls by digest. Every tar is read by skopeo and podman.

use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, pull_cached, tempdir, text, tools};
use serde_json::Value;
use std::path::Path;

/// Read one file out of a tar.
pub fn tar_file(tar: &Path, name: &str) -> Option<Vec<u8>> {
    let mut ar = tar::Archive::new(std::fs::File::open(tar).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return Some(v);
        }
    }
    None
}

fn json(bytes: Option<Vec<u8>>) -> Value {
    serde_json::from_slice(&bytes.expect("file present in tar")).unwrap()
}

async fn pull_and_check(format: Format) {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", format, 3).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let out = pull_cached(work.path(), &name, "out.tar").await;
    assert!(out.status.success(), "{}", text(&out));
    let tar = work.path().join("out.tar");

    // The Docker 25+ layout, checked against what was pushed.
    let manifest = json(tar_file(&tar, "manifest.json"));
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([name]));
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", hex(&img.config_digest))
    );
    let layers: Vec<String> = img
        .layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", hex(&l.digest)))
        .collect();
    assert_eq!(manifest[0]["Layers"], serde_json::json!(layers));
    assert_eq!(
        tar_file(&tar, &format!("blobs/sha256/{}", hex(&img.config_digest))),
        Some(img.config.clone())
    );
    assert_eq!(tar_file(&tar, &layers[1]), Some(img.layers[1].blob.clone()));
    let index = json(tar_file(&tar, "index.json"));
    let ann = &index["manifests"][0]["annotations"];
    assert_eq!(ann["io.containerd.image.name"], name);
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1");
    assert_eq!(index["manifests"][0]["digest"], img.manifest_digest);
    assert_eq!(index["manifests"][0]["mediaType"], format.manifest_type());
    assert!(tar_file(&tar, "oci-layout").is_some());
    assert!(tar_file(&tar, "repositories").is_some());

    tools::check_archive(&tar, work.path(), Some(&name));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Cache hits: 0/3 layers (0.0%)"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema2_image_loads_with_its_full_name() {
    pull_and_check(Format::Docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_image_loads_with_its_full_name() {
    pull_and_check(Format::Oci).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_index_resolves_to_the_requested_platform() {
    index_resolves(Format::Oci).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_manifest_list_resolves_to_the_requested_platform() {
    index_resolves(Format::Docker).await;
}

async fn index_resolves(format: Format) {
    let reg = Registry::start(Variant::Anonymous).await;
    let amd = image::build(&format!("amd{format:?}"), format, "amd64", 2);
    let arm = image::build(&format!("arm{format:?}"), format, "arm64", 2);
    let images = [amd.clone(), arm.clone()];
    image::push_index(&reg, "multi/app", "v1", format, &images).await;
    let work = tempdir();
    let name = format!("{}/multi/app:v1", reg.host());

    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "--platform",
            "linux/aarch64",
            "-o",
            "arm.tar",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let tar = work.path().join("arm.tar");
    let manifest = json(tar_file(&tar, "manifest.json"));
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", &arm.config_digest[7..])
    );
    let index = json(tar_file(&tar, "index.json"));
    assert_eq!(index["manifests"][0]["digest"], arm.manifest_digest);
    assert_eq!(index["manifests"][0]["mediaType"], format.manifest_type());
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    tools::check_archive(&tar, work.path(), Some(&name));

    // Default: the host's platform.
    let out = imgpull(work.path(), &["pull", &name, "-o", "host.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let host = if image::host_arch() == "arm64" {
        &arm
    } else {
        &amd
    };
    let manifest = json(tar_file(&work.path().join("host.tar"), "manifest.json"));
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", &host.config_digest[7..])
    );
    tools::check_archive(&work.path().join("host.tar"), work.path(), Some(&name));

    // No match: exit 8 and the list of what exists.
    let out = imgpull(
        work.path(),
        &["pull", &name, "--platform", "linux/s390x", "-o", "none.tar"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(err.contains(&amd.manifest_digest), "{err}");
    assert!(!work.path().join("none.tar").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn default_output_name_and_pull_by_digest() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 1).await;
    let work = tempdir();
    let out = imgpull(
        work.path(),
        &["pull", &format!("{}/ns/app:1", reg.host())],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let default_name = format!("127.0.0.1_{}_ns_app_1.tar", reg.port);
    assert!(
        work.path().join(&default_name).is_file(),
        "{:?}",
        crate::support::list_files(work.path())
    );
    let tagged = format!("{}/ns/app:1", reg.host());
    tools::check_archive(&work.path().join(&default_name), work.path(), Some(&tagged));

    // By digest: no tag is written, unless --tag gives one.
    let by_digest = format!("{}/ns/app@{}", reg.host(), img.manifest_digest);
    let out = imgpull(work.path(), &["pull", &by_digest, "-o", "d.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let manifest = json(tar_file(&work.path().join("d.tar"), "manifest.json"));
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    let loaded = tools::check_archive(&work.path().join("d.tar"), work.path(), None);
    assert!(
        !loaded.contains("Loaded image: 127.0.0.1"),
        "untagged: {loaded}"
    );

    let out = imgpull(
        work.path(),
        &[
            "pull",
            &by_digest,
            "-o",
            "t.tar",
            "--tag",
            "mine/app:pinned",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let tar = work.path().join("t.tar");
    let manifest = json(tar_file(&tar, "manifest.json"));
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["mine/app:pinned"])
    );
    tools::check_archive(&tar, work.path(), Some("docker.io/mine/app:pinned"));
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_layouts_are_written_whole_and_added_to() {
    let reg = Registry::start(Variant::Anonymous).await;
    let a = image::build("layout-a", Format::Oci, image::host_arch(), 2);
    let b = image::build("layout-b", Format::Docker, image::host_arch(), 1);
    image::push(&reg, "ns/a", "1", &a).await;
    image::push(&reg, "ns/b", "2", &b).await;
    let work = tempdir();
    let layout = work.path().join("layout");
    let entries = || -> Vec<Value> {
        let index = json(std::fs::read(layout.join("index.json")).ok());
        index["manifests"].as_array().unwrap().clone()
    };
    let pull = |args: Vec<String>| {
        let w = work.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = imgpull(&w, &args, None).await;
            assert!(out.status.success(), "{}", text(&out));
        }
    };
    let a_name = format!("{}/ns/a:1", reg.host());
    let b_name = format!("{}/ns/b:2", reg.host());
    std::fs::create_dir(&layout).unwrap(); // an empty directory is fine
    pull(vec![
        "pull".into(),
        a_name.clone(),
        "--format".into(),
        "oci".into(),
        "-o".into(),
        "layout".into(),
    ])
    .await;
    pull(vec![
        "pull".into(),
        b_name.clone(),
        "-o".into(),
        "oci:layout".into(),
    ])
    .await;
    pull(vec![
        "pull".into(),
        a_name.clone(),
        "-o".into(),
        "oci:layout".into(),
    ])
    .await;
    let by_digest = format!("{}/ns/b@{}", reg.host(), b.manifest_digest);
    pull(vec![
        "pull".into(),
        by_digest.clone(),
        "-o".into(),
        "oci:layout".into(),
    ])
    .await;
    pull(vec![
        "pull".into(),
        by_digest,
        "-o".into(),
        "oci:layout".into(),
    ])
    .await;
    let names: Vec<Value> = entries()
        .iter()
        .map(|e| e["annotations"]["io.containerd.image.name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            Value::from(b_name.clone()),
            Value::from(a_name.clone()),
            Value::Null
        ],
        "replaced, not duplicated"
    );
    for (name, tag, img) in [(&a_name, "1", &a), (&b_name, "2", &b)] {
        let entry = entries()
            .into_iter()
            .find(|e| e["annotations"]["io.containerd.image.name"] == name.as_str())
            .unwrap();
        let manifest = json(
            std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(&entry["digest"].as_str().unwrap()[7..]),
            )
            .ok(),
        );
        assert_eq!(manifest["config"]["digest"], img.config_digest);
        assert_eq!(
            entry["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        // skopeo reads each image of the shared layout by its tag.
        tools::skopeo_copy(&format!("oci:{}:{tag}", layout.display()), work.path(), &[]);
    }

    // A path that exists and is not a layout is refused, untouched.
    std::fs::write(work.path().join("file"), "keep").unwrap();
    let out = imgpull(work.path(), &["pull", &a_name, "-o", "oci:file"], None).await;
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_to_string(work.path().join("file")).unwrap(),
        "keep"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_archive_is_read_by_skopeo_and_podman() {
    let (reg, img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Docker, 2).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "oci-archive:out.tar"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let tar = work.path().join("out.tar");
    let index = json(tar_file(&tar, "index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    let copied = tools::skopeo_copy(
        &format!("oci-archive:{}:1", tar.display()),
        work.path(),
        &[],
    );
    assert_eq!(copied["manifests"].as_array().map(Vec::len), Some(1));
    let loaded = tools::podman_load(&tar, work.path());
    assert!(loaded.contains("Loaded image"), "{loaded}");
    let out = imgpull(
        work.path(),
        &["pull", &name, "--format", "oci-archive", "-o", "two.tar"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let manifest = json(tar_file(
        &work.path().join("two.tar"),
        &format!("blobs/sha256/{}", &img.config_digest[7..]),
    ));
    assert_eq!(manifest["architecture"], image::host_arch());
    let leftovers: Vec<_> = crate::support::list_files(work.path())
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("partial")
                || p.to_string_lossy().contains(".imgpull-oci-archive")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_images_go_into_one_archive() {
    let reg = Registry::start(Variant::Anonymous).await;
    let shared = image::layers("bundle-shared", 2);
    let mut a_layers = shared.clone();
    a_layers.extend(image::layers("bundle-a", 1));
    let a = image::build_from("bundle-a", Format::Oci, image::host_arch(), a_layers);
    let b = image::build_from("bundle-b", Format::Docker, image::host_arch(), shared);
    image::push(&reg, "ns/a", "1", &a).await;
    image::push(&reg, "ns/b", "2", &b).await;
    let work = tempdir();
    // Through a proxy that counts blob requests.
    let proxy =
        crate::support::proxy::start(reg.base_url(), crate::support::proxy::Fault::None).await;
    let (an, bn) = (
        format!("{}/ns/a:1", proxy.host()),
        format!("{}/ns/b:2", proxy.host()),
    );
    // Both resolved first, then their layers downloaded together straight
    // into one tar laid out for both: each shared layer once.
    let out = imgpull(
        work.path(),
        &["pull", &an, &bn, "-o", "bundle.tar", "--no-cache", "-v"],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("3 blobs written as they downloaded, 2 copied"),
        "{}",
        text(&out)
    );
    // One origin served both images: counted once, so no "Served by"
    // line (it appears when mirrors or several endpoints served).
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Served by:"),
        "{}",
        text(&out)
    );
    for l in &a.layers {
        let gets = proxy
            .ranges
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p.ends_with(&l.digest))
            .count();
        assert_eq!(gets, 1, "{} fetched {gets} times", l.digest);
    }
    let tar = work.path().join("bundle.tar");
    // The same bytes through a cache.
    let cached = imgpull(
        work.path(),
        &["pull", &an, &bn, "-o", "cached.tar", "--cache-dir", "cache"],
        None,
    )
    .await;
    assert!(cached.status.success(), "{}", text(&cached));
    assert!(std::fs::read(&tar).unwrap() == std::fs::read(work.path().join("cached.tar")).unwrap());
    let manifest = json(tar_file(&tar, "manifest.json"));
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([an]));
    assert_eq!(manifest[1]["RepoTags"], serde_json::json!([bn]));
    let mut ar = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let shared_hex = &a.layers[0].digest[7..];
    let copies = ar
        .entries()
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .ends_with(shared_hex)
        })
        .count();
    assert_eq!(copies, 1, "a shared layer is stored once");
    let loaded = tools::podman_load(&tar, work.path());
    assert!(loaded.contains(&an) && loaded.contains(&bn), "{loaded}");
    for n in ["@0", "@1"] {
        tools::skopeo_copy(
            &format!("docker-archive:{}:{n}", tar.display()),
            work.path(),
            &[],
        );
    }
    let out = imgpull(work.path(), &["pull", &an, &bn], None).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "several images need -o: {}",
        text(&out)
    );
    // Every image is resolved before any layer is fetched: a missing
    // second image fails the pull with no layer downloaded and no output.
    let before = proxy.ranges.lock().unwrap().len();
    let missing = format!("{}/ns/nothing:1", proxy.host());
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &an,
            &missing,
            "-o",
            "partial.tar",
            "--cache-dir",
            "fresh",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let layer_gets: Vec<_> = proxy.ranges.lock().unwrap()[before..]
        .iter()
        .filter(|(p, _, _)| a.layers.iter().any(|l| p.ends_with(&l.digest)))
        .cloned()
        .collect();
    assert!(layer_gets.is_empty(), "{layer_gets:?}");
    assert!(!work.path().join("partial.tar").exists());
}

/// Adding to an existing OCI layout: a damaged manifest blob already there
/// is written again (the new index names it), and an index.json that
/// cannot be read stops the pull before anything in the layout changes.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_layout_is_mended_or_left_as_it_was() {
    let (reg, _img) = image::registry_with(Variant::Anonymous, "ns/app", Format::Oci, 2).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    let args = ["pull", name.as_str(), "-o", "oci:layout"];
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let layout = work.path().join("layout");
    let index = json(std::fs::read(layout.join("index.json")).ok());
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout.join("blobs/sha256").join(&digest[7..]);
    let good = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, b"{\"damaged\": true}").unwrap();
    let out = imgpull(work.path(), &args, None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        good,
        "the manifest blob is ours again"
    );
    crate::support::tools::skopeo_copy(&format!("oci:{}:1", layout.display()), work.path(), &[]);

    // A broken index.json: exit non-zero, nothing in the layout touched.
    std::fs::write(layout.join("index.json"), b"not json").unwrap();
    std::fs::remove_file(&blob).unwrap();
    let before = crate::support::list_files(&layout);
    let out = imgpull(work.path(), &args, None).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("index.json"), "{}", text(&out));
    assert_eq!(
        crate::support::list_files(&layout),
        before,
        "nothing written"
    );
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        b"not json"
    );
}
