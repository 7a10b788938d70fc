//! A pull-through cache as a mirror: the real CNCF distribution registry in
//! proxy mode in front of a token-auth origin (with its upstream
//! credentials), configured as imgpull's mirror. The origin's log shows
//! what reached it.

use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant};
use crate::support::{imgpull, tempdir, text, token, tools};

/// The origin's access-log lines so far.
fn origin_requests(origin: &Registry) -> Vec<String> {
    origin
        .log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_through_cache_serves_the_second_machine_without_the_origin() {
    let origin = Registry::start(Variant::Token).await;
    let img = image::build("pullthrough", Format::Oci, image::host_arch(), 3);
    image::push(&origin, "team/app", "1", &img).await;
    let proxy = Registry::start_proxy(&origin, token::USER, token::PASSWORD).await;
    let config = format!(
        "[registries.\"{}\"]\nmirrors = [\"http://{}\"]\n",
        origin.host(),
        proxy.host()
    );
    let name = format!("{}/team/app:1", origin.host());
    // The first machine fills the proxy.
    let first = tempdir();
    std::fs::write(first.path().join("imgpull.toml"), &config).unwrap();
    let out = imgpull(first.path(), &["pull", &name, "-o", "app.tar", "-v"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{} (", proxy.host())) || text(&out).contains("Served by"),
        "{}",
        text(&out)
    );
    // Blob GETs answered with content (a token registry answers the first
    // try of each with 401).
    let blob_gets = |r: &Registry| {
        r.blob_gets()
            .iter()
            .filter(|l| l.contains("\" 200 ") || l.contains("\" 307 "))
            .count()
    };
    // (distribution's proxy fetches a blob it lacks twice: to serve it and,
    // in the background, to store it. Wait for the second to be done.)
    let mut filled = blob_gets(&origin);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let now = blob_gets(&origin);
        if now == filled || std::time::Instant::now() > until {
            break;
        }
        filled = now;
    }
    let log = origin.log();
    for l in img
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([&img.config_digest])
    {
        assert!(
            log.contains(l.as_str()),
            "the proxy fetched {l} from the origin"
        );
    }
    tools::check_archive(&first.path().join("app.tar"), first.path(), Some(&name));
    // A second machine, empty cache: by tag, the proxy asks the origin
    // only whether the tag moved; no blob comes from there.
    let seen = origin_requests(&origin).len();
    let second = tempdir();
    std::fs::write(second.path().join("imgpull.toml"), &config).unwrap();
    let out = imgpull(second.path(), &["pull", &name, "-o", "app.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let by_tag: Vec<String> = origin_requests(&origin).split_off(seen);
    assert!(
        by_tag
            .iter()
            .all(|l| l.contains("/manifests/") && !l.contains("imgpull")),
        "only the tag was looked up at the origin, by the proxy; imgpull sent it nothing: {by_tag:#?}"
    );
    assert_eq!(blob_gets(&origin), filled, "no blob from the origin");
    tools::check_archive(&second.path().join("app.tar"), second.path(), Some(&name));
    // By digest, nothing at all reaches the origin.
    let seen = origin_requests(&origin).len();
    let third = tempdir();
    std::fs::write(third.path().join("imgpull.toml"), &config).unwrap();
    let pinned = format!("{}/team/app@{}", origin.host(), img.manifest_digest);
    let out = imgpull(third.path(), &["pull", &pinned, "-o", "app.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let by_digest: Vec<String> = origin_requests(&origin).split_off(seen);
    assert!(by_digest.is_empty(), "the origin saw: {by_digest:#?}");
    assert_eq!(blob_gets(&origin), filled);
    assert!(
        blob_gets(&proxy) >= 12,
        "the proxy served the three machines"
    );
}
