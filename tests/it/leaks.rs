//! Credentials go only where they were issued. A "CDN" on other loopback
//! origins logs the `Authorization` of every request at every hop of a
//! redirect chain (blobs, manifests, token requests); echoed 401 bodies,
//! credential-helper failures and config errors must show no secret.

use crate::support::hostile::{self, Content, Hostile, Log};
use crate::support::http::{Request, Response};
use crate::support::image::{self, Format};
use crate::support::proxy::{self, Fault};
use crate::support::registry::{Registry, Variant, BASIC_PASSWORD, BASIC_USER};
use crate::support::{measured, tempdir, token, tools, Measured};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A CDN on `ip`: `/hop1/PATH` redirects to `/hop2/PATH` on itself, which
/// serves PATH from `content` (a chain within one other origin).
async fn cdn(ip: &str, content: Content, log: Log) -> Hostile {
    let content = Arc::new(content);
    hostile::start_on(ip, Content::default(), log, move |req: &Request| {
        if let Some(rest) = req.target.strip_prefix("/hop1") {
            return Some(Response::new(307, "").header("Location", &format!("/hop2{rest}")));
        }
        let rest = req.target.strip_prefix("/hop2")?;
        let inner = Request {
            method: req.method.clone(),
            target: rest.to_string(),
            headers: req.headers.clone(),
            body: Vec::new(),
        };
        Some(hostile::plain(&content, &inner))
    })
    .await
}

/// `imgpull.toml` giving `registry` static credentials from `$PW`.
fn credentials_config(work: &Path, registry: &str, user: &str) {
    std::fs::write(
        work.join("imgpull.toml"),
        format!(
            "[registries.\"{registry}\"]\ncredentials = [{{ provider = \"static\", username = \"{user}\", password_env = \"PW\" }}]\n"
        ),
    )
    .unwrap();
}

fn no_secret(m: &Measured, secrets: &[&str]) {
    let all = m.all();
    for s in secrets {
        assert!(!all.contains(s), "{s:?} was shown:\n{}", m.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_authorization_leaves_its_origin_over_redirect_chains() {
    for (variant, cdn_ip) in [
        (Variant::Basic, "127.0.0.2"),
        (Variant::Token, "127.0.0.2"),
        // Same host, another port: another origin too.
        (Variant::Basic, "127.0.0.1"),
    ] {
        let reg = Registry::start(variant).await;
        let img = image::build(
            &format!("leak-{variant:?}-{cdn_ip}"),
            Format::Docker,
            image::host_arch(),
            2,
        );
        image::push(&reg, "team/app", "1", &img).await;
        let (user, password) = match variant {
            Variant::Token => (token::USER, token::PASSWORD),
            _ => (BASIC_USER, BASIC_PASSWORD),
        };
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let content = Content::image(&img, "1");
        let cdn = cdn(cdn_ip, content, log.clone()).await;
        let proxy = proxy::start(
            reg.base_url(),
            Fault::RedirectAll(format!("http://{}/hop1", cdn.host())),
        )
        .await;
        let work = tempdir();
        credentials_config(work.path(), &proxy.host(), user);
        let name = format!("{}/team/app:1", proxy.host());
        let m = measured(
            work.path(),
            &["pull", &name, "-o", "out.tar", "-v"],
            &[("PW", password)],
            LIMIT,
            None,
        )
        .await;
        assert!(
            m.out.status.success(),
            "{variant:?} via {cdn_ip}: {}",
            m.text()
        );
        tools::check_archive(&work.path().join("out.tar"), work.path(), Some(&name));
        let seen = log.lock().unwrap().clone();
        let hops = |h: &str| seen.iter().filter(|s| s.target.starts_with(h)).count();
        // Manifest (HEAD and GET), config and two layers, each over two hops.
        assert!(hops("/hop1") >= 4 && hops("/hop2") >= 4, "{seen:#?}");
        assert!(
            seen.iter().all(|s| s.auth.is_none()),
            "{variant:?}: Authorization reached {cdn_ip}: {seen:#?}"
        );
        // The registry itself was sent credentials (the first hop).
        let to_registry = proxy.seen.lock().unwrap().clone();
        assert!(to_registry
            .iter()
            .any(|(_, p, a)| p.contains("/manifests/") && *a));
        no_secret(&m, &[password]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_request_redirected_elsewhere_carries_no_password() {
    let img = image::build("token-redirect", Format::Oci, image::host_arch(), 1);
    // Q: where the realm redirects (a third party); it redirects again
    // within itself, then answers a token.
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let q = |req: &Request| {
        if let Some(rest) = req.target.strip_prefix("/token?") {
            return Some(Response::new(307, "").header("Location", &format!("/token2?{rest}")));
        }
        req.target
            .starts_with("/token2")
            .then(|| Response::new(200, r#"{"token":"third-party-token"}"#))
    };
    let third = hostile::start_on("127.0.0.2", Content::default(), log.clone(), q).await;
    // T: the realm the registry names; it redirects every token request.
    let to = format!("http://{}", third.host());
    let realm = hostile::start(Content::default(), move |req: &Request| {
        Some(Response::new(307, "").header("Location", &format!("{to}{}", req.target)))
    })
    .await;
    // R: wants a Bearer token for everything.
    let challenge = format!(
        "Bearer realm=\"http://{}/token\",service=\"hostile\"",
        realm.host()
    );
    let content = Content::image(&img, "1");
    let reg = hostile::start(content, move |req: &Request| {
        let bearer = req
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "));
        (!bearer).then(|| {
            Response::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
                .header("WWW-Authenticate", &challenge)
        })
    })
    .await;
    let work = tempdir();
    credentials_config(work.path(), &reg.host(), "carol");
    let name = format!("{}/ns/app:1", reg.host());
    let m = measured(
        work.path(),
        &["pull", &name, "-o", "out.tar"],
        &[("PW", "carols-password")],
        LIMIT,
        None,
    )
    .await;
    assert!(m.out.status.success(), "{}", m.text());
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "both hops were followed: {seen:#?}\n{}",
        m.text()
    );
    assert!(
        seen.iter().all(|s| s.auth.is_none()),
        "the password reached the realm's redirect target: {seen:#?}"
    );
    let at_realm = realm.log.lock().unwrap().clone();
    assert!(
        at_realm
            .iter()
            .all(|s| s.auth.as_deref().is_some_and(|a| a.starts_with("Basic "))),
        "the realm itself is sent the password: {at_realm:#?}"
    );
    no_secret(&m, &["carols-password"]);
}

/// A registry that answers every authenticated request 401 with a body
/// quoting what it was sent, decoded.
async fn echoing_registry() -> Hostile {
    hostile::start(Content::default(), |req: &Request| {
        let body = match req.header("authorization") {
            None => r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                .to_string(),
            Some(a) => {
                use base64::Engine as _;
                let raw = a.strip_prefix("Basic ").unwrap_or(a);
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                format!(
                    r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"bad login {decoded} ({raw}) / {a}"}}]}}"#
                )
            }
        };
        Some(Response::new(401, body).header("WWW-Authenticate", "Basic realm=\"echo\""))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_401_bodies_show_no_secret() {
    let reg = echoing_registry().await;
    let secret = "hunter2/Secret+Pw";
    for json in [false, true] {
        let work = tempdir();
        credentials_config(work.path(), &reg.host(), "dave");
        let name = format!("{}/ns/app:1", reg.host());
        let mut args = vec!["pull", name.as_str(), "-o", "out.tar"];
        if json {
            args.push("--json");
        }
        let m = measured(work.path(), &args, &[("PW", secret)], LIMIT, None).await;
        assert_eq!(m.out.status.code(), Some(3), "{}", m.text());
        assert!(
            m.all().contains("bad login"),
            "the message is kept: {}",
            m.text()
        );
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("dave:{secret}"));
        no_secret(&m, &[secret, &b64, "hunter2%2FSecret%2BPw"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_credential_helper_shows_none_of_its_output() {
    let reg = echoing_registry().await;
    let work = tempdir();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-evil");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho 'fatal: token=HELPER-SECRET-TOKEN is expired' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = work.path().join(".home").join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"evil"}}}}"#, reg.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let name = format!("{}/ns/app:1", reg.host());
    let m = measured(
        work.path(),
        &["pull", &name, "-o", "out.tar"],
        &[("PATH", &path)],
        LIMIT,
        None,
    )
    .await;
    assert_eq!(m.out.status.code(), Some(3), "{}", m.text());
    assert!(m.all().contains("docker-credential-evil"), "{}", m.text());
    no_secret(&m, &["HELPER-SECRET-TOKEN"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_quote_no_value() {
    for (text, says) in [
        ("retries = \"alice:s3cretConfig\"\n", "retries"),
        (
            "[registries.\"h\"]\ncredentials = [{ provider = \"static\", username = \"u\", password = \"s3cretConfig }]\n",
            "line 2",
        ),
    ] {
        let work = tempdir();
        std::fs::write(work.path().join("imgpull.toml"), text).unwrap();
        let m = measured(
            work.path(),
            &["pull", "127.0.0.1:9/x:1", "-o", "out.tar"],
            &[],
            LIMIT,
            None,
        )
        .await;
        assert_eq!(m.out.status.code(), Some(2), "{}", m.text());
        assert!(m.all().contains(says), "{}", m.text());
        no_secret(&m, &["s3cretConfig"]);
    }
}
