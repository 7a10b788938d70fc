//! Chunked parallel download of big blobs, and `--limit-rate`.

use crate::support::image::{self, Format, TestImage};
use crate::support::proxy::{self, Fault, Proxy};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text, tools};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

const MIB: u64 = 1024 * 1024;

async fn big_image(reg: &Registry, seed: &str, size: usize) -> TestImage {
    let mut layers = vec![image::big_layer(seed, size)];
    layers.extend(image::layers(&format!("{seed}-small"), 1));
    let img = image::build_from(seed, Format::Oci, image::host_arch(), layers);
    image::push(reg, "ns/big", "1", &img).await;
    img
}

/// (start, end) of every Range asked for `digest`, with the status.
fn asks(proxy: &Proxy, digest: &str) -> Vec<(Option<(u64, u64)>, u16)> {
    proxy
        .ranges
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p.ends_with(digest))
        .map(|(_, r, status)| {
            let span = r.as_deref().and_then(|r| {
                let (s, e) = r.strip_prefix("bytes=")?.split_once('-')?;
                Some((s.parse().ok()?, e.parse().ok()?))
            });
            (span, *status)
        })
        .collect()
}

async fn pull_chunked(work: &std::path::Path, name: &str) -> std::process::Output {
    pull_chunked_with(work, name, &["-o", "out.tar", "--cache-dir", "cache"]).await
}

/// A pull with pieces of 1 MiB, 3 connections at most, and `args`.
async fn pull_chunked_with(
    work: &std::path::Path,
    name: &str,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec![
        "pull",
        name,
        "-v",
        "--chunk-size",
        "1MiB",
        "--max-chunks",
        "3",
    ];
    all.extend(args);
    imgpull(work, &all, None).await
}

fn no_pieces_left(work: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(work.join("cache/ingest/chunks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".chunk"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The asks for a chunked blob of `size` bytes: the first is the stream
/// from byte 0 to the end; the rest (sorted) are pieces.
fn stream_then_pieces(asks: Vec<(Option<(u64, u64)>, u16)>, size: u64) -> Vec<(u64, u64)> {
    let spans: Vec<(u64, u64)> = asks
        .into_iter()
        .map(|(span, status)| {
            assert_eq!(status, 206);
            span.expect("every request carries an ending Range")
        })
        .collect();
    assert_eq!(spans[0], (0, size - 1), "{spans:?}");
    let mut pieces = spans[1..].to_vec();
    pieces.sort();
    pieces
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_blob_on_a_slow_link_comes_in_parallel_ranges() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = big_image(&reg, "chunky", 6 * MIB as usize).await;
    let big = &img.layers[0];
    let proxy = proxy::start(reg.base_url(), Fault::None).await;
    // 2 MiB/s per connection: one stream would take 3 s.
    *proxy.throttle.lock().unwrap() = Some(2 * MIB);
    let work = tempdir();
    let name = format!("{}/ns/big:1", proxy.host());
    let out = pull_chunked(work.path(), &name).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("pieces of up to 1 MiB"),
        "{}",
        text(&out)
    );
    let size = big.blob.len() as u64;
    let pieces = stream_then_pieces(asks(&proxy, &big.digest), size);
    // The stream stopped where the pieces start; they cover the rest,
    // one chunk each.
    assert!(pieces.len() >= 2, "{pieces:?}");
    let mut next = pieces[0].0;
    assert!(next > 0 && next < size, "{pieces:?}");
    for (s, e) in &pieces {
        assert_eq!(*s, next, "{pieces:?}");
        assert!(e - s < MIB);
        next = e + 1;
    }
    assert_eq!(next, size);
    // The small layer is below the chunk size: one plain request.
    assert_eq!(asks(&proxy, &img.layers[1].digest), vec![(None, 200)]);
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    no_pieces_left(work.path());
    crate::support::assert_cache_clean(work.path(), "cache").await;

    // The same with a throwaway cache: the stream and the pieces go
    // straight into their places in the tar, which comes out the same.
    let before = asks(&proxy, &big.digest).len();
    let again = pull_chunked_with(work.path(), &name, &["-o", "nocache.tar", "--no-cache"]).await;
    assert!(again.status.success(), "{}", text(&again));
    let more = asks(&proxy, &big.digest).len() - before;
    assert!(more >= 3, "a stream and pieces: {more} requests");
    assert!(
        std::fs::read(work.path().join("out.tar")).unwrap()
            == std::fs::read(work.path().join("nocache.tar")).unwrap(),
        "the --no-cache tar differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_ignoring_range_gets_one_stream() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = big_image(&reg, "norange", 3 * MIB as usize).await;
    let proxy = proxy::start(reg.base_url(), Fault::None).await;
    *proxy.ignore_range.lock().unwrap() = true;
    let work = tempdir();
    let name = format!("{}/ns/big:1", proxy.host());
    let out = pull_chunked(work.path(), &name).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("does not serve ranges"),
        "{}",
        text(&out)
    );
    // The stream's Range request (answered whole, dropped), then one plain
    // stream.
    assert_eq!(
        asks(&proxy, &img.layers[0].digest),
        vec![(None, 200), (None, 200)]
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    no_pieces_left(work.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_piece_cut_mid_way_is_retried_alone() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = big_image(&reg, "cutpiece", 6 * MIB as usize).await;
    let big = img.layers[0].digest.clone();
    let fault = Fault::ResetPiece {
        digest: big.clone(),
        after: 300_000,
        times: Arc::new(AtomicUsize::new(1)),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    *proxy.throttle.lock().unwrap() = Some(2 * MIB);
    let work = tempdir();
    let name = format!("{}/ns/big:1", proxy.host());
    let out = pull_chunked(work.path(), &name).await;
    assert!(out.status.success(), "{}", text(&out));
    let size = img.layers[0].blob.len() as u64;
    let asked = stream_then_pieces(asks(&proxy, &big), size);
    // Exactly one piece was asked twice: whole, then from where it was cut.
    let mut by_end: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for (s, e) in &asked {
        by_end.entry(*e).or_default().push(*s);
    }
    let twice: Vec<_> = by_end.values().filter(|starts| starts.len() > 1).collect();
    assert_eq!(twice.len(), 1, "{asked:?}");
    assert_eq!(twice[0].len(), 2, "{asked:?}");
    assert_eq!(twice[0][1] - twice[0][0], 300_000, "{asked:?}");
    assert_eq!(asked.len(), by_end.len() + 1, "{asked:?}");
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    no_pieces_left(work.path());
    crate::support::assert_cache_clean(work.path(), "cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_rate_holds_the_average_across_connections() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = big_image(&reg, "capped", 3 * MIB as usize).await;
    let work = tempdir();
    let name = format!("{}/ns/big:1", reg.host());
    let total: u64 =
        img.layers.iter().map(|l| l.blob.len() as u64).sum::<u64>() + img.config.len() as u64;
    let started = Instant::now();
    let out = pull_chunked_with(
        work.path(),
        &name,
        &[
            "-o",
            "out.tar",
            "--cache-dir",
            "cache",
            "--limit-rate",
            "1MiB",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let want = MIB as f64;
    assert!(
        (0.8 * want..=1.2 * want).contains(&rate),
        "{rate:.0} B/s for a cap of {want} B/s"
    );
    tools::skopeo_copy_to_oci(&work.path().join("out.tar"), work.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn pieces_fall_back_to_one_stream_when_the_next_endpoint_ignores_range() {
    let reg = Registry::start(Variant::Anonymous).await;
    let img = big_image(&reg, "fallback", 6 * MIB as usize).await;
    // The mirror is slow (so the stream splits) and cuts every piece; the
    // origin (behind its own proxy) ignores Range altogether.
    let mirror = proxy::start(
        reg.base_url(),
        Fault::ResetPiece {
            digest: img.layers[0].digest.clone(),
            after: 500_000,
            times: Arc::new(AtomicUsize::new(1000)),
        },
    )
    .await;
    *mirror.throttle.lock().unwrap() = Some(2 * MIB);
    let origin = proxy::start(reg.base_url(), Fault::None).await;
    *origin.ignore_range.lock().unwrap() = true;
    let work = tempdir();
    std::fs::write(
        work.path().join("imgpull.toml"),
        format!(
            "[registries.\"{}\"]\nmirrors = [\"http://{}\"]\n",
            origin.host(),
            mirror.host()
        ),
    )
    .unwrap();
    let name = format!("{}/ns/big:1", origin.host());
    let out = pull_chunked(work.path(), &name).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("one stream"), "{}", text(&out));
    let size = img.layers[0].blob.len() as u64;
    let mirror_asks = asks(&mirror, &img.layers[0].digest);
    assert!(
        mirror_asks
            .iter()
            .any(|(span, _)| span.is_some_and(|(_, e)| e + 1 < size)),
        "pieces were asked of the mirror: {mirror_asks:?}"
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
    no_pieces_left(work.path());
    crate::support::assert_cache_clean(work.path(), "cache").await;
}
