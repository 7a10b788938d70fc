//! Pulls through htpasswd Basic, a Bearer token server and TLS with a
//! private CA; wrong or missing credentials fail cleanly.

use crate::support::image::{self, Format};
use crate::support::registry::{Registry, Variant, BASIC_PASSWORD, BASIC_USER};
use crate::support::{certs, imgpull, tempdir, text, token, tools};

async fn pushed(variant: Variant, repo: &str) -> (Registry, image::TestImage) {
    image::registry_with(variant, repo, Format::Docker, 2).await
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_with_password_stdin() {
    let (reg, _) = pushed(Variant::Basic, "team/app").await;
    let work = tempdir();
    let name = format!("{}/team/app:1", reg.host());
    let stdin = format!("{BASIC_PASSWORD}\n");
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "out.tar",
            "--username",
            BASIC_USER,
            "--password-stdin",
        ],
        Some(&stdin),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(BASIC_PASSWORD));
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));

    // Without credentials: exit 3, the registry named, no output file.
    let out = imgpull(work.path(), &["pull", &name, "-o", "anon.tar"], None).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&reg.host()) && err.contains("unauthorized"),
        "{err}"
    );
    assert!(err.contains("no credentials"), "{err}");
    assert!(!work.path().join("anon.tar").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_fails_cleanly() {
    for variant in [Variant::Basic, Variant::Token] {
        let repo = "private/app";
        let (reg, _) = pushed(variant, repo).await;
        let work = tempdir();
        let name = format!("{}/{repo}:1", reg.host());
        let user = if variant == Variant::Basic {
            BASIC_USER
        } else {
            token::USER
        };
        let out = imgpull(
            work.path(),
            &[
                "pull",
                &name,
                "-o",
                "out.tar",
                "--username",
                user,
                "--password-stdin",
                "-vv",
            ],
            Some("not-the-password\n"),
        )
        .await;
        assert_eq!(out.status.code(), Some(3), "{variant:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&reg.host()), "{err}");
        assert!(err.contains("unauthorized"), "{err}");
        assert!(
            err.contains("--username/--password"),
            "names the credential source: {err}"
        );
        assert!(!text(&out).contains("not-the-password"), "{}", text(&out));
        assert!(!work.path().join("out.tar").exists());
        let leftovers: Vec<_> = crate::support::list_files(work.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("out.tar"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_public_and_private_repos() {
    let reg = Registry::start(Variant::Token).await;
    let public = image::build("public", Format::Oci, image::host_arch(), 3);
    let private = image::build("private", Format::Oci, image::host_arch(), 2);
    image::push(&reg, "open/app", "1", &public).await;
    image::push(&reg, "private/app", "1", &private).await;
    let tokens = reg.token.as_ref().unwrap();
    let work = tempdir();

    // Anonymous pull of a public repo: one token, reused for every request.
    let before = tokens.count();
    let name = format!("{}/open/app:1", reg.host());
    let out = imgpull(work.path(), &["pull", &name, "-o", "open.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tokens.count() - before,
        1,
        "one token for manifest + config + 3 layers"
    );
    tools::check_archive(&work.path().join("open.tar"), work.path(), Some(&name));

    // Private repo: anonymous gets a token without access -> 401, exit 3.
    let name = format!("{}/private/app:1", reg.host());
    let out = imgpull(work.path(), &["pull", &name, "-o", "p.tar"], None).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!work.path().join("p.tar").exists());

    // With credentials it works.
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "p.tar",
            "-u",
            token::USER,
            "--password-stdin",
        ],
        Some(token::PASSWORD),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    tools::check_archive(&work.path().join("p.tar"), work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
    let (reg, _) = pushed(Variant::Tls, "secure/app").await;
    let work = tempdir();
    let name = format!("{}/secure/app:1", reg.host());

    // Unknown CA: a TLS error with a hint, exit 5, no fallback to HTTP.
    let out = imgpull(work.path(), &["pull", &name, "-o", "out.tar"], None).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") && err.contains("--ca-file"), "{err}");
    assert!(!work.path().join("out.tar").exists());

    let ca = certs::get().ca_pem.to_str().unwrap().to_string();
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "out.tar", "--ca-file", &ca],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));

    // The same CA from the config file.
    std::fs::write(
        work.path().join("imgpull.toml"),
        format!("ca_file = {ca:?}\n"),
    )
    .unwrap();
    let out = imgpull(work.path(), &["pull", &name, "-o", "cfg.tar"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    tools::check_archive(&work.path().join("cfg.tar"), work.path(), Some(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_mid_pull_refreshes_the_token_once() {
    use crate::support::proxy::{self, Fault};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let reg = Registry::start(Variant::Token).await;
    let img = image::build("refresh", Format::Docker, image::host_arch(), 2);
    image::push(&reg, "open/app", "1", &img).await;
    let tokens = reg.token.as_ref().unwrap();
    let challenge = format!(
        "Bearer realm=\"{}\",service=\"{}\",scope=\"repository:open/app:pull\",error=\"invalid_token\"",
        tokens.realm(),
        token::SERVICE
    );
    let times = Arc::new(AtomicUsize::new(1));
    let fault = Fault::Unauthorized {
        challenge: challenge.clone(),
        times: times.clone(),
    };
    let proxy = proxy::start(reg.base_url(), fault).await;
    let work = tempdir();
    let name = format!("{}/open/app:1", proxy.host());
    let before = tokens.count();
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "out.tar",
            "--max-concurrent-downloads",
            "1",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tokens.count() - before,
        2,
        "the first token, then one refresh"
    );
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));

    // A registry that keeps refusing: one refresh, then a clean failure.
    times.store(100, std::sync::atomic::Ordering::SeqCst);
    let out = imgpull(
        work.path(),
        &["pull", &name, "-o", "again.tar", "--no-cache"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let refused = 100 - times.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=6).contains(&refused),
        "one retry per blob (3 blobs), got {refused} attempts"
    );
    assert!(!work.path().join("again.tar").exists());
    crate::support::assert_cache_clean(work.path(), "docker_images_cache").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_host_carries_no_authorization() {
    use crate::support::http::{serve_on, Request, Response};
    use crate::support::proxy::{self, Fault};
    use std::sync::{Arc, Mutex};
    let (reg, img) = pushed(Variant::Basic, "team/app").await;

    // The "CDN" on 127.0.0.2 records what it was sent and serves the blob
    // from the registry with its own credentials.
    let cdn_seen: Arc<Mutex<Vec<bool>>> = Arc::new(Mutex::new(Vec::new()));
    let seen = cdn_seen.clone();
    let upstream = reg.base_url();
    let auth = reg.push_auth("team/app").unwrap();
    let http = reg.http();
    let cdn = serve_on("127.0.0.2", move |req: Request| {
        seen.lock()
            .unwrap()
            .push(req.header("authorization").is_some());
        let (http, upstream, auth) = (http.clone(), upstream.clone(), auth.clone());
        async move {
            let r = http
                .get(format!("{upstream}{}", req.target))
                .header("Authorization", auth)
                .send()
                .await
                .unwrap();
            Response::new(r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    })
    .await;
    let proxy = proxy::start(
        reg.base_url(),
        Fault::RedirectBlobs(format!("http://{}", cdn.addr)),
    )
    .await;
    let work = tempdir();
    let name = format!("{}/team/app:1", proxy.host());
    let stdin = format!("{BASIC_PASSWORD}\n");
    let out = imgpull(
        work.path(),
        &[
            "pull",
            &name,
            "-o",
            "out.tar",
            "-u",
            BASIC_USER,
            "--password-stdin",
        ],
        Some(&stdin),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));

    let blob_requests: Vec<bool> = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, _)| p.contains("/blobs/"))
        .map(|(_, _, a)| *a)
        .collect();
    assert_eq!(blob_requests.len(), 1 + img.layers.len());
    assert!(
        blob_requests.iter().all(|a| *a),
        "the registry itself was sent Authorization"
    );
    let cdn_seen = cdn_seen.lock().unwrap().clone();
    assert_eq!(
        cdn_seen.len(),
        1 + img.layers.len(),
        "every blob came through the CDN"
    );
    assert!(
        cdn_seen.iter().all(|a| !a),
        "no Authorization reached the other host: {cdn_seen:?}"
    );
}

/// What a pushing exporter will get through the engine
/// (`export::Registries`): a client for the destination's registry,
/// connected with the credentials the config gives that registry (here a
/// Bearer token server's user), and refused without them.
#[tokio::test(flavor = "multi_thread")]
async fn exporters_reach_a_registry_through_the_engine_with_its_credentials() {
    use imgpull::export::Registries as _;
    let (reg, img) = pushed(Variant::Token, "private/app").await;
    let reference: imgpull::oci::reference::Reference =
        format!("{}/private/app:1", reg.host()).parse().unwrap();
    let read = |engine: imgpull::engine::Engine| {
        let reference = reference.clone();
        async move {
            let access = imgpull::engine::Registries {
                engine: &engine,
                cli: None,
            };
            let client = access.client(&reference).await?;
            let tries = imgpull::registry::Tries::new(2);
            client
                .manifest("private/app", "1", 1 << 20, &tries)
                .await
                .map_err(imgpull::export::ExportError::from)
        }
    };
    let engine = |credentials: Vec<toml::Table>| {
        let mut config = imgpull::config::Config::default();
        let reg_cfg = imgpull::config::RegistryConfig {
            credentials,
            ..Default::default()
        };
        config.registries.insert(reg.host(), reg_cfg);
        imgpull::engine::Engine::new(config, std::sync::Arc::new(imgpull::progress::Silent))
            .unwrap()
    };
    let mut entry = toml::Table::new();
    entry.insert("provider".into(), "static".into());
    entry.insert("username".into(), token::USER.into());
    entry.insert("password".into(), token::PASSWORD.into());
    let got = read(engine(vec![entry])).await.unwrap();
    assert_eq!(got.digest.to_string(), img.manifest_digest);
    // A login file with nothing for this registry: the token server
    // refuses the anonymous request.
    let work = tempdir();
    let empty = work.path().join("config.json");
    std::fs::write(&empty, "{}").unwrap();
    let mut none = toml::Table::new();
    none.insert("provider".into(), "docker-config".into());
    none.insert("path".into(), empty.to_string_lossy().into_owned().into());
    let refused = read(engine(vec![none])).await.unwrap_err();
    assert!(
        refused.to_string().contains("unauthorized") || refused.to_string().contains("denied"),
        "{refused}"
    );
}
