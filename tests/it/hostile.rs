//! A hostile registry (support/hostile.rs) against imgpull: small inputs
//! that would cost gigabytes or hours, lying sizes, escape sequences,
//! drips, silence and redirect loops. Every case ends with the exit code
//! README documents, a message naming the problem, peak memory under
//! [`RSS_CAP_KIB`] (from `wait4`), a wall time under the case's bound, and
//! nothing left that looks like output.

use crate::support::hostile::{self, gzip_bomb, manifest_of, Content, Hostile};
use crate::support::http::{Request, Response};
use crate::support::image::{self, sha256, Format, Layer};
use crate::support::{assert_cache_clean, list_files, measured, tempdir, Measured};
use std::time::Duration;

/// A handler that answers some requests before the plain registry.
type Special = Box<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// Peak RSS allowed in every case (the bound).
const RSS_CAP_KIB: u64 = 64 * 1024;
const MIB: usize = 1 << 20;

/// The image of `layers`, served plainly (plus `special`) at `ns/app:1`.
async fn serve_layers<F>(layers: Vec<Layer>, special: F) -> (Hostile, String)
where
    F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
{
    let img = image::build_from("hostile", Format::Oci, image::host_arch(), layers);
    let reg = hostile::start(Content::image(&img, "1"), special).await;
    let name = format!("{}/ns/app:1", reg.host());
    (reg, name)
}

/// `imgpull pull NAME --format rootfs -o out`, measured, within `secs`.
async fn rootfs(work: &std::path::Path, name: &str, secs: u64) -> Measured {
    let args = [
        "pull",
        name,
        "--format",
        "rootfs",
        "-o",
        "out",
        "--cache-dir",
        "cache",
    ];
    measured(work, &args, &[], Duration::from_secs(secs), None).await
}

/// A layer whose blob is `blob`, its diff_id made up (these layers are
/// refused before it could be checked).
fn raw_layer(blob: Vec<u8>, diff_id: Option<String>) -> Layer {
    Layer {
        digest: sha256(&blob),
        diff_id: diff_id.unwrap_or_else(|| sha256(b"made up")),
        blob,
        media_type: None,
    }
}

fn header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A tar's end: the padding of what came before (given its data size)
/// and two zero blocks.
fn end(data: u64) -> Vec<u8> {
    vec![0u8; ((512 - data % 512) % 512) as usize + 1024]
}

/// Pull `name` with `args`, expecting `code` and a message with `says`,
/// within `secs` and the memory cap; nothing output-like left in `work`.
async fn refused(
    work: &std::path::Path,
    name: &str,
    args: &[&str],
    code: i32,
    says: &str,
    secs: u64,
) -> Measured {
    let mut all = vec!["pull", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--cache-dir", "cache"]);
    let limit = Duration::from_secs(secs);
    let m = measured(work, &all, &[("IMGPULL_STALL_TIMEOUT", "3s")], limit, None).await;
    assert_eq!(m.out.status.code(), Some(code), "{}", m.text());
    assert!(m.all().contains(says), "wanted {says:?}: {}", m.text());
    assert!(m.max_rss_kib < RSS_CAP_KIB, "{}", m.text());
    assert!(m.elapsed < limit, "{}", m.text());
    let left: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out") || n.starts_with(".out") || n.starts_with(".imgpull"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!(
        "{name}: exit {code}, peak RSS {} KiB, {:.1} s",
        m.max_rss_kib,
        m.elapsed.as_secs_f64()
    );
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_tar_header_records_are_refused_in_little_memory() {
    let gib = 1u64 << 30;
    let cases = [
        (tar::EntryType::GNULongName, gib, "a 1 GiB GNU long name"),
        (
            tar::EntryType::GNULongName,
            64 << 20,
            "a 64 MiB GNU long name",
        ),
        (tar::EntryType::XHeader, gib, "a 1 GiB PAX record"),
    ];
    for (kind, size, what) in cases {
        let head = header(kind, "././@LongLink", size);
        let mut tail = end(size);
        tail.splice(0..0, header(tar::EntryType::Regular, "f", 0));
        let blob = gzip_bomb(&head, b'a', MIB, (size as usize) / MIB, &tail);
        assert!(
            blob.len() < 2 * MIB,
            "{what}: a small layer ({} bytes)",
            blob.len()
        );
        let (_reg, name) = serve_layers(vec![raw_layer(blob, None)], |_| None).await;
        let work = tempdir();
        refused(
            work.path(),
            &name,
            &["--format", "rootfs", "-o", "out"],
            9,
            "tar header record",
            60,
        )
        .await;
        assert_cache_clean(work.path(), "cache").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uncompressed_bytes_are_bounded_sparse_files_and_bombs_alike() {
    // A GNU sparse entry: 512 stored bytes standing for a 4 GiB file.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("sparse").unwrap();
    h.set_size(512);
    h.set_mode(0o644);
    let b = h.as_mut_bytes();
    b[386..398].copy_from_slice(b"37777777000\0"); // offset 4 GiB - 512
    b[398..410].copy_from_slice(b"00000001000\0"); // 512 bytes
    b[483..495].copy_from_slice(b"40000000000\0"); // real size 4 GiB
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend(vec![b's'; 512]);
    tar.extend(end(0));
    let sparse = image::pack(tar, image::Packing::Gzip);
    assert!(sparse.blob.len() < 2048);
    let (_reg, name) = serve_layers(vec![sparse], |_| None).await;
    let work = tempdir();
    refused(
        work.path(),
        &name,
        &["--format", "rootfs", "-o", "out"],
        9,
        "max_layer_uncompressed",
        60,
    )
    .await;

    // 10 GiB of zeros from 10 MB, its diff_id wrong: refused at the bound
    // (1 GiB here), for rootfs and for uncompressed layers alike.
    let size = 10u64 << 30;
    let head = header(tar::EntryType::Regular, "zeros", size);
    let bomb = gzip_bomb(&head, 0, MIB, (size as usize) / MIB, &end(size));
    let (_reg, name) = serve_layers(vec![raw_layer(bomb, None)], |_| None).await;
    for args in [
        &["--format", "rootfs", "-o", "out"][..],
        &[
            "--layer-format",
            "uncompressed",
            "-o",
            "out.tar",
            "--max-layer-uncompressed",
            "256MiB",
        ][..],
    ] {
        let work = tempdir();
        refused(work.path(), &name, args, 9, "uncompresses to more than", 90).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_diff_id_is_an_integrity_error_for_every_uncompressing_output() {
    let size = 64u64 << 20;
    let head = header(tar::EntryType::Regular, "zeros", size);
    let blob = gzip_bomb(&head, 0, MIB, (size as usize) / MIB, &end(size));
    let (_reg, name) = serve_layers(vec![raw_layer(blob, None)], |_| None).await;
    for args in [
        &["--format", "rootfs", "-o", "out"][..],
        &["--layer-format", "uncompressed", "-o", "out.tar"][..],
        &["--legacy", "-o", "out.tar"][..],
    ] {
        let work = tempdir();
        refused(work.path(), &name, args, 7, "image config says", 60).await;
    }
}

/// `n` empty files under `d/`, and a layer of their whiteouts.
fn many_files(n: usize) -> Vec<Layer> {
    let mut files = tar::Builder::new(Vec::new());
    let mut outs = tar::Builder::new(Vec::new());
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        files
            .append_data(&mut h, format!("d/f{i}"), std::io::empty())
            .unwrap();
        let mut w = tar::Header::new_gnu();
        w.set_size(0);
        w.set_mode(0o644);
        outs.append_data(&mut w, format!("d/.wh.f{i}"), std::io::empty())
            .unwrap();
    }
    [files, outs]
        .into_iter()
        .map(|b| image::pack(b.into_inner().unwrap(), image::Packing::Gzip))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn unpacking_stays_linear() {
    // What a layer costs in the kernel (creating, removing files) is what
    // GNU tar pays too; what must stay small is the CPU of our own
    // bookkeeping, which used to grow with the square of the entries.
    // 60 000 files, then their whiteouts: each whiteout scanned every
    // path the layer wrote (150 000 took 97 s).
    let layers = many_files(60_000);
    let (_reg, name) = serve_layers(layers, |_| None).await;
    let work = tempdir();
    let m = rootfs(work.path(), &name, 120).await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(m.max_rss_kib < RSS_CAP_KIB, "{}", m.text());
    assert!(m.user_cpu < 10.0, "{}", m.text());
    let d = std::fs::read_dir(work.path().join("out/d"))
        .unwrap()
        .count();
    assert_eq!(d, 0, "every file whited out");
    eprintln!(
        "60k files + whiteouts: {:.1} s, {:.1} s user, {} KiB",
        m.elapsed.as_secs_f64(),
        m.user_cpu,
        m.max_rss_kib
    );

    // 20 000 directories, then one file written over 20 000 times: each
    // rewrite used to scan every directory recorded (100 000 did not end
    // in 180 s).
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..20_000 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, format!("dirs/{i}/"), std::io::empty())
            .unwrap();
    }
    for i in 0..20_000u32 {
        let data = i.to_le_bytes();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        b.append_data(&mut h, "again", &data[..]).unwrap();
    }
    let layer = image::pack(b.into_inner().unwrap(), image::Packing::Gzip);
    let (_reg, name) = serve_layers(vec![layer], |_| None).await;
    let work = tempdir();
    let m = rootfs(work.path(), &name, 120).await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(m.user_cpu < 10.0, "{}", m.text());
    assert_eq!(
        std::fs::read(work.path().join("out/again")).unwrap(),
        19_999u32.to_le_bytes()
    );
    eprintln!(
        "20k dirs + 20k rewrites: {:.1} s, {:.1} s user, {} KiB",
        m.elapsed.as_secs_f64(),
        m.user_cpu,
        m.max_rss_kib
    );
}

/// An index of `n` children, each announced at `size` bytes.
fn index_of(n: usize, size: u64) -> Vec<u8> {
    let entries: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(format!("child {i}").as_bytes()),
                "size": size,
                "platform": {"os": "linux", "architecture": format!("arch{i}")},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_and_configs_are_bounded_before_they_are_fetched() {
    let oci = "application/vnd.oci.image.manifest.v1+json";
    // 300 children of 4 MB each, all asked for.
    let mut c = Content::default();
    c.manifest(
        "1",
        "application/vnd.oci.image.index.v1+json",
        index_of(300, 4_000_000),
    );
    let reg = hostile::start(c, |_| None).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    refused(
        work.path(),
        &name,
        &["--platform", "all", "-o", "out.tar"],
        9,
        "over the limit of 8388608",
        30,
    )
    .await;
    assert_eq!(reg.count("/manifests/sha256:"), 0, "no child was fetched");

    // A 400 MB config; a layer of 2^63 bytes.
    let config = |size: u64| serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"c"), "size": size});
    let layer = |size: u64| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(b"l"), "size": size});
    for (manifest, says) in [
        (manifest_of(config(400_000_000), vec![layer(10)]), "config"),
        (manifest_of(config(10), vec![layer(1 << 63)]), "layer"),
    ] {
        let mut c = Content::default();
        c.manifest("1", oci, manifest);
        let reg = hostile::start(c, |_| None).await;
        let work = tempdir();
        let name = format!("{}/ns/app:1", reg.host());
        let m = refused(
            work.path(),
            &name,
            &["-o", "out.tar"],
            9,
            "over the limit",
            30,
        )
        .await;
        assert!(m.all().contains(says), "{}", m.text());
        assert_eq!(reg.count("/blobs/"), 0, "nothing was fetched");
    }

    // A manifest bigger than announced by its index entry.
    let img = image::build("lying-index", Format::Oci, image::host_arch(), 1);
    let mut c = Content::image(&img, "child");
    let entry = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": oci, "digest": img.manifest_digest, "size": 100,
        "platform": {"os": "linux", "architecture": image::host_arch()}}]});
    c.manifest(
        "1",
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&entry).unwrap(),
    );
    let reg = hostile::start(c, |_| None).await;
    let work = tempdir();
    let name = format!("{}/ns/app:1", reg.host());
    refused(
        work.path(),
        &name,
        &["-o", "out.tar"],
        9,
        "sent more than 100 bytes",
        30,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_text_reaches_the_terminal_escaped_and_cut() {
    let long = "a".repeat(10_000);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(b"x"), "size": 10,
            "platform": {"os": "linux\u{1b}]0;pwned\u{7}\u{1b}[2J", "architecture": long},
        }],
    });
    let mut c = Content::default();
    c.manifest(
        "1",
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&index).unwrap(),
    );
    let reg = hostile::start(c, |_| None).await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    let m = refused(
        work.path(),
        &name,
        &["-o", "out.tar"],
        8,
        "no image for platform",
        30,
    )
    .await;
    let inspect = measured(
        work.path(),
        &["inspect", &name],
        &[],
        Duration::from_secs(30),
        None,
    )
    .await;
    assert!(inspect.out.status.success(), "{}", inspect.text());
    for out in [&m, &inspect] {
        let all = out.all();
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "raw escapes: {all:?}"
        );
        assert!(all.contains("\\x1b]0;pwned"), "shown escaped: {all}");
        assert!(
            !all.contains(&long) && all.contains("more)"),
            "cut short: {} bytes",
            all.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_silent_and_looping_servers_end_within_the_documented_bound() {
    // The bound README documents: retries x (stall_timeout + 10 s backoff
    // cap) per request, and retries do not multiply.
    let img = image::build("slow", Format::Oci, image::host_arch(), 1);
    let layer = img.layers[0].digest.clone();
    let env = [("IMGPULL_STALL_TIMEOUT", "2s"), ("IMGPULL_RETRIES", "3")];
    let bound = Duration::from_secs(3 * (2 + 10) + 5);
    let cases: Vec<(&str, Special)> = vec![
        ("a drip of one byte every 0.5 s", {
            let layer = layer.clone();
            let blob = img.layers[0].blob.clone();
            Box::new(move |r: &Request| {
                r.path().ends_with(&layer).then(|| Response {
                    drip: Some(Duration::from_millis(500)),
                    ..Response::new(200, blob.clone())
                })
            })
        }),
        ("a blob request never answered", {
            let layer = layer.clone();
            Box::new(move |r: &Request| r.path().ends_with(&layer).then(Response::hang))
        }),
        ("a blob redirected to itself", {
            let layer = layer.clone();
            Box::new(move |r: &Request| {
                r.path()
                    .ends_with(&layer)
                    .then(|| Response::new(307, "").header("Location", &r.target))
            })
        }),
        ("ten redirects, each answered after 1.5 s", {
            let layer = layer.clone();
            Box::new(move |r: &Request| {
                if let Some(n) = r
                    .path()
                    .strip_prefix("/slow/")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    return Some(Response {
                        delay: Some(Duration::from_millis(1500)),
                        ..Response::new(307, "").header("Location", &format!("/slow/{}", n + 1))
                    });
                }
                r.path()
                    .ends_with(&layer)
                    .then(|| Response::new(307, "").header("Location", "/slow/0"))
            })
        }),
        ("manifests never answered", {
            Box::new(move |r: &Request| r.path().contains("/manifests/").then(Response::hang))
        }),
        ("a chain of 50 redirects", {
            let layer = layer.clone();
            Box::new(move |r: &Request| {
                if let Some(n) = r
                    .path()
                    .strip_prefix("/chain/")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    return Some(
                        Response::new(307, "").header("Location", &format!("/chain/{}", n + 1)),
                    );
                }
                r.path()
                    .ends_with(&layer)
                    .then(|| Response::new(307, "").header("Location", "/chain/0"))
            })
        }),
    ];
    for (what, special) in cases {
        let reg = hostile::start(Content::image(&img, "1"), special).await;
        let name = format!("{}/ns/app:1", reg.host());
        let work = tempdir();
        let m = measured(
            work.path(),
            &["pull", &name, "-o", "out.tar", "--cache-dir", "cache"],
            &env,
            bound + Duration::from_secs(30),
            None,
        )
        .await;
        assert_eq!(m.out.status.code(), Some(5), "{what}: {}", m.text());
        assert!(m.elapsed < bound, "{what}: {}", m.text());
        assert!(m.max_rss_kib < RSS_CAP_KIB, "{what}: {}", m.text());
        assert!(!work.path().join("out.tar").exists());
        let manifests = match what.starts_with("manifests") {
            true => reg.count("/manifests/"),
            false => 0,
        };
        let asked = reg.count(&layer) + reg.count("/chain/") + reg.count("/slow/") + manifests;
        assert!(asked <= 3 * 11, "{what}: {asked} requests");
        if what.contains("redirects, each") {
            assert!(
                m.all().contains("redirects included"),
                "{what}: {}",
                m.text()
            );
        } else if what.contains("redirect") {
            assert!(m.all().contains("redirect"), "{what}: {}", m.text());
            assert!(
                asked <= 11,
                "{what}: a loop is not retried ({asked} requests)"
            );
        }
        eprintln!(
            "{what}: exit 5 after {:.1} s, {asked} requests",
            m.elapsed.as_secs_f64()
        );
        let files = list_files(&work.path().join("cache"));
        assert!(!files
            .iter()
            .any(|f| f.starts_with("blobs") && f.to_string_lossy().contains(&layer[7..])));
    }
}

fn sha512(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha512:{:x}", sha2::Sha512::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn sha512_images_pull_and_media_types_come_from_the_manifest() {
    // An image named by sha512 digests throughout (the OCI image spec
    // registers sha512; its diff_ids stay sha256 as Docker writes them).
    let layer = image::layers("sha512", 1).remove(0);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": image::host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }))
    .unwrap();
    let (config_d, layer_d) = (sha512(&config), sha512(&layer.blob));
    let manifest = manifest_of(
        serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()}),
        vec![
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer.blob.len()}),
        ],
    );
    let mut c = Content::default();
    // Served as text/html: the output must say what the manifest is.
    c.manifest("1", "text/html; charset=utf-8", manifest.clone());
    c.blobs.insert(config_d.clone(), config.into());
    c.blobs.insert(layer_d.clone(), layer.blob.clone().into());
    let reg = hostile::start(c, |_| None).await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    for out in ["out.tar", "oci:layout"] {
        let m = measured(
            work.path(),
            &["pull", &name, "-o", out, "--cache-dir", "cache"],
            &[],
            Duration::from_secs(60),
            None,
        )
        .await;
        assert!(m.out.status.success(), "{out}: {}", m.text());
    }
    let mut ar = tar::Archive::new(std::fs::File::open(work.path().join("out.tar")).unwrap());
    let mut names = Vec::new();
    let mut index = serde_json::Value::Null;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let n = e.path().unwrap().to_string_lossy().into_owned();
        if n == "index.json" {
            index = serde_json::from_reader(&mut e).unwrap();
        }
        names.push(n);
    }
    assert!(
        names.contains(&format!("blobs/sha512/{}", &layer_d[7..])),
        "{names:?}"
    );
    assert_eq!(
        index["manifests"][0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("layout/index.json")).unwrap())
            .unwrap();
    assert_eq!(
        layout["manifests"][0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(work
        .path()
        .join("layout/blobs/sha512")
        .join(&layer_d[7..])
        .is_file());
    crate::support::tools::skopeo_copy(
        &format!("docker-archive:{}", work.path().join("out.tar").display()),
        work.path(),
        &[],
    );
    assert_cache_clean(work.path(), "cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_plain_http_registry_is_not_called_a_tls_failure() {
    // The HTTPS probe gets nothing back; plain HTTP is accepted and then
    // silent past stall_timeout.
    let reg = hostile::start(Content::default(), |r: &Request| {
        (r.path() == "/v2/").then(Response::hang)
    })
    .await;
    let name = format!("{}/ns/app:1", reg.host());
    let work = tempdir();
    let env = [("IMGPULL_STALL_TIMEOUT", "2s"), ("IMGPULL_RETRIES", "1")];
    let m = measured(
        work.path(),
        &["pull", &name, "-o", "out.tar"],
        &env,
        Duration::from_secs(60),
        None,
    )
    .await;
    assert_eq!(m.out.status.code(), Some(5), "{}", m.text());
    let err = m.all();
    assert!(
        !err.contains("TLS") && !err.contains("--ca-file"),
        "{}",
        m.text()
    );
    assert!(
        err.contains(&format!("http://{}/v2/", reg.host())),
        "{}",
        m.text()
    );
}

/// A header of `format` (`new_ustar`, `new_old`), checksummed.
fn raw_header(mut h: tar::Header, kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn tars_that_read_one_way_to_the_guard_and_another_to_the_reader_are_refused() {
    // Each puts a huge GNU long name where the `tar` crate reads it but a
    // guard that followed the structure differently would take it for file
    // data (the review's 7.5 GB case): a global header eating a pending
    // PAX size, a PAX record without its newline, an `x` header without
    // magic (an entry, not an extension, to the reader).
    let pax = |rec: &[u8], h: tar::Header| {
        let mut v = raw_header(h, tar::EntryType::XHeader, "pax", rec.len() as u64);
        v.extend_from_slice(rec);
        v.extend(vec![0u8; (512 - rec.len() % 512) % 512]);
        v
    };
    let regular = |size| raw_header(tar::Header::new_ustar(), tar::EntryType::Regular, "f", size);
    // A block the reader takes as data, and a confused guard as a header
    // announcing 8 GiB.
    let mut fake = regular(0);
    fake[124..136].copy_from_slice(b"77777777777\0");
    let mut global = pax(b"10 size=0\n", tar::Header::new_ustar());
    global.extend(raw_header(
        tar::Header::new_ustar(),
        tar::EntryType::XGlobalHeader,
        "g",
        0,
    ));
    global.extend(regular(512));
    global.extend(&fake);
    let mut no_newline = pax(b"11 size=512", tar::Header::new_ustar());
    no_newline.extend(regular(0));
    let mut no_magic = pax(b"13 size=1024\n", tar::Header::new_old());
    no_magic.extend(regular(0));
    let size = 256u64 << 20;
    for (what, mut head) in [
        ("a global header", global),
        ("no newline", no_newline),
        ("no magic", no_magic),
    ] {
        head.extend(raw_header(
            tar::Header::new_gnu(),
            tar::EntryType::GNULongName,
            "././@LongLink",
            size,
        ));
        let mut tail = end(size);
        tail.splice(0..0, regular(0));
        let blob = gzip_bomb(&head, b'a', MIB, (size as usize) / MIB, &tail);
        let (_reg, name) = serve_layers(vec![raw_layer(blob, None)], |_| None).await;
        let work = tempdir();
        let m = refused(
            work.path(),
            &name,
            &["--format", "rootfs", "-o", "out"],
            9,
            "tar",
            60,
        )
        .await;
        eprintln!("{what}: {} KiB", m.max_rss_kib);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
    // A zstd frame whose header asks for a 128 MiB window (windowLog 27),
    // then one RLE block: a few bytes that would make the decoder allocate
    // the whole window.
    let mut blob = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (27 - 10) << 3];
    let n: u32 = 100_000;
    let block = (n << 3) | (1 << 1) | 1;
    blob.extend(&block.to_le_bytes()[..3]);
    blob.push(b'z');
    let layer = Layer {
        media_type: Some("application/vnd.oci.image.layer.v1.tar+zstd".into()),
        ..raw_layer(blob, None)
    };
    let (_reg, name) = serve_layers(vec![layer], |_| None).await;
    for args in [
        &["--format", "rootfs", "-o", "out"][..],
        &["--layer-format", "uncompressed", "-o", "out.tar"][..],
    ] {
        let work = tempdir();
        refused(work.path(), &name, args, 9, "window", 60).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn many_odd_entries_with_long_names_cost_no_memory() {
    // 300 entries of a type rootfs does not unpack, each named by a 1 MiB
    // GNU long name: counted, a few names kept short.
    let mut raw = Vec::new();
    let name = "n".repeat((1 << 20) - 1);
    for _ in 0..300 {
        raw.extend(header(
            tar::EntryType::GNULongName,
            "././@LongLink",
            name.len() as u64 + 1,
        ));
        raw.extend(name.as_bytes());
        raw.push(0);
        raw.extend(vec![0u8; (512 - (name.len() + 1) % 512) % 512]);
        raw.extend(header(tar::EntryType::new(b'V'), "v", 0));
    }
    raw.extend(end(0));
    let layer = image::pack(raw, image::Packing::Gzip);
    let (_reg, name) = serve_layers(vec![layer], |_| None).await;
    let work = tempdir();
    let m = rootfs(work.path(), &name, 60).await;
    assert!(m.out.status.success(), "{}", m.text());
    assert!(m.max_rss_kib < RSS_CAP_KIB, "{}", m.text());
    assert!(m.all().contains("300 tar entries of type"), "{}", m.text());
    assert!(
        m.all().len() < 10_000,
        "warnings stay short: {} bytes",
        m.all().len()
    );
}
