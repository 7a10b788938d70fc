//! The `object-store` cache: a fleet's runners (each its own local cache
//! directory) sharing one S3 bucket served by moto on loopback, in front
//! of the real distribution registry. Faults come from the test proxy in
//! front of moto, from stopping moto, and from a listener that never
//! answers.

use crate::support::cloud::{start_moto, Moto};
use crate::support::image::{self, Format};
use crate::support::proxy::{self, Fault};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull_env, tempdir, text, tools};
use std::path::Path;
use std::time::{Duration, Instant};

const AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

/// A bucket in moto (its S3 API takes unsigned requests).
async fn bucket(moto: &Moto, name: &str) {
    let r = reqwest::Client::new()
        .put(format!("{}/{name}", moto.endpoint()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

/// Write an object behind imgpull's back (boto3, which moto brings).
fn put_object(moto: &Moto, bucket: &str, key: &str, body: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let script = "import boto3, sys\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
            aws_access_key_id='testing', aws_secret_access_key='testing')\n\
        s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=open(sys.argv[4], 'rb').read())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &moto.endpoint(), bucket, key])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A runner: its own working directory and local cache, the store at
/// `endpoint`.
fn runner(endpoint: &str) -> tempfile::TempDir {
    runner_of(&format!(
        "url = \"s3://fleet/imgpull\"\nendpoint = \"{endpoint}\"\nallow_http = true\ntimeout = \"2s\"\n"
    ))
}

/// A runner whose `[caches.object-store]` table is `table`.
fn runner_of(table: &str) -> tempfile::TempDir {
    let dir = tempdir();
    let config = format!(
        "cache = \"object-store\"\n[caches.local]\ndir = \"cache\"\n[caches.object-store]\n{table}"
    );
    std::fs::write(dir.path().join("imgpull.toml"), config).unwrap();
    dir
}

async fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    imgpull_env(dir, args, None, AWS).await
}

async fn pull(dir: &Path, name: &str) -> std::process::Output {
    let out = run(dir, &["pull", name, "-o", "app.tar"]).await;
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// `cache verify --store` of a runner: (objects checked, bad).
async fn verify_store(dir: &Path) -> (u64, u64) {
    let out = run(dir, &["cache", "verify", "--store", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = (
        v["store"]["checked"].as_u64().unwrap(),
        v["store"]["bad"].as_u64().unwrap(),
    );
    // Bad objects are an integrity failure (exit 7), as bad local blobs.
    let want = if found.1 == 0 { 0 } else { 7 };
    assert_eq!(out.status.code(), Some(want), "{}", text(&out));
    found
}

async fn store_stats(dir: &Path) -> serde_json::Value {
    let out = run(dir, &["cache", "stats", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["store"].clone()
}

/// A registry with a 3-layer image (one of 12 MiB), moto with an empty bucket: (the
/// registry, moto, the image's name, its blobs, its first layer).
async fn setup() -> (Registry, Moto, String, usize, image::Layer) {
    let reg = Registry::start(Variant::Anonymous).await;
    // One layer above the single-PUT size: uploaded in parts.
    let mut layers = vec![image::big_layer("fleet-big", 12 * 1024 * 1024)];
    layers.extend(image::layers("fleet", 2));
    let img = image::build_from("fleet", Format::Oci, image::host_arch(), layers);
    image::push(&reg, "team/app", "1", &img).await;
    let moto = start_moto().await;
    bucket(&moto, "fleet").await;
    let name = format!("{}/team/app:1", reg.host());
    // The layers and the config.
    let blobs = img.layers.len() + 1;
    (reg, moto, name, blobs, img.layers[0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_runner_gets_every_blob_from_the_store_and_none_from_the_registry() {
    let (reg, moto, name, blobs, _) = setup().await;
    let a = runner(&moto.endpoint());
    pull(a.path(), &name).await;
    assert_eq!(
        reg.blob_gets().len(),
        blobs,
        "runner A fetched each blob once"
    );
    let st = store_stats(a.path()).await;
    assert_eq!(
        st["uploaded"],
        blobs as u64 + 1,
        "the blobs and the manifest: {st}"
    );
    assert_eq!(verify_store(a.path()).await, (blobs as u64 + 1, 0));

    let b = runner(&moto.endpoint());
    let before = reg.blob_gets().len();
    pull(b.path(), &name).await;
    assert_eq!(
        reg.blob_gets().len(),
        before,
        "runner B made no blob GET at the registry: {:?}",
        &reg.blob_gets()[before..]
    );
    let st = store_stats(b.path()).await;
    assert_eq!(
        st["fetched"],
        blobs as u64 + 1,
        "the blobs and the manifest: {st}"
    );
    assert_eq!(st["uploaded"], 0, "{st}");
    for r in [&a, &b] {
        tools::check_archive(&r.path().join("app.tar"), r.path(), Some(&name));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_is_down_slow_or_dies_mid_object_costs_one_warning_not_the_pull() {
    let (reg, moto, name, blobs, _) = setup().await;
    let a = runner(&moto.endpoint());
    pull(a.path(), &name).await;

    // Dies halfway through every object it serves.
    let dying = proxy::start(moto.endpoint(), Fault::ResetEveryBlob).await;
    let c = runner(&format!("http://{}", dying.host()));
    let before = reg.blob_gets().len();
    let out = pull(c.path(), &name).await;
    let warned = text(&out)
        .matches("using the registry for the rest")
        .count();
    assert_eq!(warned, 1, "one warning: {}", text(&out));
    assert!(
        reg.blob_gets().len() > before,
        "the registry served the rest"
    );
    tools::check_archive(&c.path().join("app.tar"), c.path(), Some(&name));

    // Accepts connections and never answers: bounded by `timeout`.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let d = runner(&format!("http://{}", silent.local_addr().unwrap()));
    let started = Instant::now();
    let out = pull(d.path(), &name).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        text(&out)
            .matches("using the registry for the rest")
            .count(),
        1,
        "{}",
        text(&out)
    );
    tools::check_archive(&d.path().join("app.tar"), d.path(), Some(&name));

    // Nothing half-written reached the bucket.
    assert_eq!(verify_store(a.path()).await, (blobs as u64 + 1, 0));

    // Stopped.
    let endpoint = moto.endpoint();
    drop(moto);
    let e = runner(&endpoint);
    let out = pull(e.path(), &name).await;
    assert!(
        text(&out).contains("object store s3://fleet/imgpull"),
        "{}",
        text(&out)
    );
    tools::check_archive(&e.path().join("app.tar"), e.path(), Some(&name));
    assert_eq!(
        reg.blob_gets().len() - before,
        3 * blobs,
        "each of the three runners got every blob from the registry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_object_is_not_used_and_is_replaced() {
    let (reg, moto, name, blobs, first) = setup().await;
    let a = runner(&moto.endpoint());
    pull(a.path(), &name).await;
    // Spoil one layer's object in the bucket: same size, other bytes.
    let (layer, size) = (first.digest.clone(), first.blob.len());
    let key = format!("imgpull/blobs/sha256/{}", &layer["sha256:".len()..]);
    put_object(&moto, "fleet", &key, &vec![b'x'; size]);
    assert_eq!(
        verify_store(a.path()).await.1,
        1,
        "the store holds one bad object"
    );

    let b = runner(&moto.endpoint());
    let before = reg.blob_gets().len();
    let out = pull(b.path(), &name).await;
    assert!(
        text(&out).contains(&format!("the object for {layer} hashes to")),
        "{}",
        text(&out)
    );
    assert_eq!(
        reg.blob_gets().len() - before,
        1,
        "only the spoilt layer came from the registry"
    );
    tools::check_archive(&b.path().join("app.tar"), b.path(), Some(&name));
    assert_eq!(
        verify_store(b.path()).await,
        (blobs as u64 + 1, 0),
        "the upload replaced it"
    );
    assert_eq!(store_stats(b.path()).await["bad_objects"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runners_filling_one_bucket_at_once_both_get_sound_images() {
    let (_reg, moto, name, blobs, _) = setup().await;
    let (a, b) = (runner(&moto.endpoint()), runner(&moto.endpoint()));
    let (x, y) = tokio::join!(pull(a.path(), &name), pull(b.path(), &name));
    drop((x, y));
    for r in [&a, &b] {
        tools::check_archive(&r.path().join("app.tar"), r.path(), Some(&name));
    }
    assert_eq!(verify_store(a.path()).await, (blobs as u64 + 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_directory_serves_as_the_store_too() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = image::build("share", Format::Oci, image::host_arch(), 2);
    image::push(&reg, "team/app", "1", &img).await;
    let name = format!("{}/team/app:1", reg.host());
    let share = tempdir();
    let table = format!("url = \"file://{}\"\n", share.path().display());
    let (a, b) = (runner_of(&table), runner_of(&table));
    pull(a.path(), &name).await;
    let before = reg.blob_gets().len();
    pull(b.path(), &name).await;
    assert_eq!(
        reg.blob_gets().len(),
        before,
        "runner B: nothing from the registry"
    );
    tools::check_archive(&b.path().join("app.tar"), b.path(), Some(&name));
    assert_eq!(
        verify_store(b.path()).await,
        (img.layers.len() as u64 + 2, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_local_cache_fills_an_empty_store_when_it_is_switched_on() {
    let (reg, moto, name, blobs, _) = setup().await;
    let w = runner(&moto.endpoint());
    // First with the local cache alone, then with the store behind it.
    let config = std::fs::read_to_string(w.path().join("imgpull.toml")).unwrap();
    std::fs::write(
        w.path().join("imgpull.toml"),
        "[caches.local]\ndir = \"cache\"\n",
    )
    .unwrap();
    pull(w.path(), &name).await;
    std::fs::write(w.path().join("imgpull.toml"), config).unwrap();
    let before = reg.blob_gets().len();
    pull(w.path(), &name).await;
    assert_eq!(
        reg.blob_gets().len(),
        before,
        "warm: nothing from the registry"
    );
    let st = store_stats(w.path()).await;
    assert!(st["uploaded"].as_u64().unwrap() >= blobs as u64, "{st}");
    // Another runner is now served by the store.
    let b = runner(&moto.endpoint());
    pull(b.path(), &name).await;
    assert_eq!(
        reg.blob_gets().len(),
        before,
        "runner B: nothing from the registry"
    );
    assert_eq!(verify_store(b.path()).await.1, 0);
}
