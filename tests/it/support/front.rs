//! Real registries' wire behaviour, reproduced in front of the real CNCF
//! distribution registry (shared/REAL-REGISTRIES.md lists each with its
//! sources). A [`Front`] is three servers: the registry (HTTPS, test CA)
//! on 127.0.0.1, its token host on 127.0.0.3 when the registry's realm is
//! elsewhere, and its blob storage ("CDN") on 127.0.0.2 with signed,
//! expiring URLs. The front authenticates requests itself — its own
//! tokens, its own Basic users — and forwards content to the registry
//! behind it (anonymous, plain HTTP). Every request to every server is
//! logged with the `Authorization` it carried.

use super::hostile::{Log, Seen};
use super::http::{serve_on, serve_tls_on, Request, Response, Server};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The user the fronts know, its password, and the identity (refresh)
/// token `az acr login` would have stored for it.
pub const PASSWORD: &str = "front-Pa55word";
pub const REFRESH: &str = "front-refresh-token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    DockerHub,
    Ghcr,
    Quay,
    Ecr,
    Gcr,
    Ar,
    AcrAzure,
    AcrAlibaba,
    AcrAlibabaEe,
    Harbor,
    HarborS3,
    Gitlab,
    GitlabVr,
    Nexus,
    Artifactory,
    Redirector,
    Distribution,
}

pub const ALL: [Kind; 17] = [
    Kind::DockerHub,
    Kind::Ghcr,
    Kind::Quay,
    Kind::Ecr,
    Kind::Gcr,
    Kind::Ar,
    Kind::AcrAzure,
    Kind::AcrAlibaba,
    Kind::AcrAlibabaEe,
    Kind::Harbor,
    Kind::HarborS3,
    Kind::Gitlab,
    Kind::GitlabVr,
    Kind::Nexus,
    Kind::Artifactory,
    Kind::Redirector,
    Kind::Distribution,
];

/// How a token server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `{"token","access_token","expires_in":300,"issued_at"}` (Docker Hub)
    Both,
    /// `{"token"}` only
    TokenOnly,
    /// `{"access_token"}` only (Azure)
    AccessOnly,
    /// `{"access_token":T,"token":T}`, no lifetime (Aliyun)
    BothNoLife,
    /// `{"token","expires_in":1800,"issued_at"}` (Harbor)
    TokenLife,
    /// `{"expires_in":43200,"issued_at":"…-07:00","token"}` (GCR)
    Gcr,
}

/// Where blobs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blobs {
    /// The registry serves them.
    Direct,
    /// A redirect (status) to the CDN on another host (`https` or not).
    Cdn { status: u16, https: bool },
    /// A relative redirect to another path of the registry itself (AR).
    SameHost,
}

/// One registry's behaviour.
#[derive(Clone, Debug)]
pub struct Profile {
    pub kind: Kind,
    /// Bearer tokens (else Basic only).
    bearer: bool,
    /// The realm on the token host (else on the registry).
    realm_elsewhere: bool,
    realm_path: &'static str,
    /// `service=`; `None`: the registry's host.
    service: Option<&'static str>,
    /// The `/v2/` challenge names no service (AR).
    v2_without_service: bool,
    /// The `/v2/` challenge carries a scope (GHCR).
    v2_scope: bool,
    basic_challenge: &'static str,
    shape: Shape,
    /// The user name that goes with [`PASSWORD`].
    pub user: &'static str,
    /// Public content is served without any token.
    anon_public: bool,
    /// Anonymous token requests for a private repository: refused with 403
    /// (GHCR, AR, GitLab) rather than answered with a token lacking it.
    anon_private_403: bool,
    /// A token's scope for a missing repository is dropped (Docker Hub):
    /// the registry then says 401 insufficient_scope.
    drops_missing: bool,
    /// `/v2/` 401 answered as `text/html` `true` (Quay).
    html_401: bool,
    /// 401 bodies typed `application/json;charset=ISO-8859-1`.
    latin1_401: bool,
    /// Wrong credentials: status and body.
    wrong: (u16, &'static str),
    blobs: Blobs,
    /// The CDN answers a forwarded Authorization with 400 (S3, Azure Blob).
    cdn_rejects_auth: Option<&'static str>,
    /// The CDN answers HEAD with 403 (URLs signed for GET).
    cdn_head_403: bool,
    /// Manifests too are redirected to the CDN (GitLab virtual registry).
    manifests_to_cdn: bool,
    chunked_blobs: bool,
    chunked_manifests: bool,
    head_no_digest: bool,
    head_no_length: bool,
    ratelimit: bool,
    /// Body of the blob redirect.
    redirect_body: &'static str,
    /// POST token requests (OAuth2 refresh/password grants) accepted.
    post_grants: bool,
    /// The exit code of a pull of a repository that does not exist.
    pub missing_exit: i32,
    /// What the wrong-password error must say.
    pub wrong_says: &'static str,
}

impl Profile {
    /// No anonymous access at all (ECR): every pull logs in.
    pub fn login_always(&self) -> bool {
        !self.bearer && !self.anon_public
    }

    pub fn of(kind: Kind) -> Profile {
        let base = Profile {
            kind,
            bearer: true,
            realm_elsewhere: true,
            realm_path: "/token",
            service: Some("registry.test"),
            v2_without_service: false,
            v2_scope: false,
            basic_challenge: "",
            shape: Shape::TokenOnly,
            user: "emma",
            anon_public: false,
            anon_private_403: false,
            drops_missing: false,
            html_401: false,
            latin1_401: false,
            wrong: (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            ),
            blobs: Blobs::Direct,
            cdn_rejects_auth: None,
            cdn_head_403: false,
            manifests_to_cdn: false,
            chunked_blobs: false,
            chunked_manifests: false,
            head_no_digest: false,
            head_no_length: false,
            ratelimit: false,
            redirect_body: "",
            post_grants: false,
            missing_exit: 4,
            wrong_says: "unauthorized",
        };
        let s3 = Some(
            "<?xml version=\"1.0\"?><Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified</Message></Error>",
        );
        let azure = Some(
            "<?xml version=\"1.0\"?><Error><Code>InvalidAuthenticationInfo</Code><Message>Authentication information is not given in the correct format. Check the value of Authorization header.</Message></Error>",
        );
        match kind {
            Kind::DockerHub => Profile {
                service: Some("registry.docker.io"),
                shape: Shape::Both,
                drops_missing: true,
                wrong: (401, r#"{"details":"incorrect username or password"}"#),
                wrong_says: "incorrect username or password",
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                ratelimit: true,
                missing_exit: 3,
                ..base
            },
            Kind::Ghcr => Profile {
                realm_elsewhere: false,
                service: Some("ghcr.io"),
                v2_scope: true,
                anon_private_403: true,
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                ..base
            },
            Kind::Quay => Profile {
                realm_elsewhere: false,
                realm_path: "/v2/auth",
                service: Some("quay.io"),
                anon_public: true,
                html_401: true,
                blobs: Blobs::Cdn {
                    status: 302,
                    https: true,
                },
                redirect_body:
                    "<!doctype html>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>",
                ..base
            },
            Kind::Ecr => Profile {
                bearer: false,
                basic_challenge: "Basic realm=\"https://REG/\",service=\"ecr.amazonaws.com\"",
                user: "AWS",
                wrong: (
                    403,
                    r#"{"errors":[{"code":"DENIED","message":"Your authorization token has expired. Reauthenticate and try again."}]}"#,
                ),
                wrong_says: "authorization token has expired",
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                cdn_rejects_auth: s3,
                cdn_head_403: true,
                ..base
            },
            Kind::Gcr => Profile {
                realm_elsewhere: false,
                realm_path: "/v2/token",
                service: Some("gcr.io"),
                shape: Shape::Gcr,
                user: "oauth2accesstoken",
                anon_public: true,
                blobs: Blobs::Cdn {
                    status: 302,
                    https: true,
                },
                redirect_body: r#"{"errors":[]}"#,
                wrong: (
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"Unauthorized access."}]}"#,
                ),
                ..base
            },
            Kind::Ar => Profile {
                // gcloud's access token, as the gcr provider sends it.
                user: "oauth2accesstoken",
                realm_elsewhere: false,
                realm_path: "/v2/token",
                v2_without_service: true,
                anon_private_403: true,
                blobs: Blobs::SameHost,
                ..base
            },
            Kind::AcrAzure => Profile {
                realm_elsewhere: false,
                realm_path: "/oauth2/token",
                service: None,
                shape: Shape::AccessOnly,
                post_grants: true,
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                cdn_rejects_auth: azure,
                ..base
            },
            Kind::AcrAlibaba | Kind::AcrAlibabaEe => Profile {
                realm_path: "/auth",
                service: Some("registry.aliyuncs.com:cn-hangzhou:26842"),
                shape: Shape::BothNoLife,
                blobs: Blobs::Cdn {
                    status: 307,
                    https: kind == Kind::AcrAlibabaEe,
                },
                redirect_body: "<a href=\"http://oss/\">Temporary Redirect</a>.",
                ..base
            },
            Kind::Harbor => Profile {
                realm_elsewhere: false,
                realm_path: "/service/token",
                service: Some("harbor-registry"),
                shape: Shape::TokenLife,
                user: "robot$ci",
                chunked_blobs: true,
                ..base
            },
            Kind::HarborS3 => Profile {
                realm_elsewhere: false,
                realm_path: "/service/token",
                service: Some("harbor-registry"),
                shape: Shape::TokenLife,
                user: "robot$ci",
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                cdn_rejects_auth: s3,
                cdn_head_403: true,
                ..base
            },
            Kind::Gitlab => Profile {
                realm_path: "/jwt/auth",
                service: Some("container_registry"),
                anon_private_403: true,
                blobs: Blobs::Cdn {
                    status: 307,
                    https: true,
                },
                ..base
            },
            Kind::GitlabVr => Profile {
                realm_elsewhere: false,
                realm_path: "/jwt/auth",
                service: Some("dependency_proxy"),
                manifests_to_cdn: true,
                blobs: Blobs::Cdn {
                    status: 302,
                    https: true,
                },
                cdn_rejects_auth: s3,
                cdn_head_403: true,
                ..base
            },
            Kind::Nexus => Profile {
                bearer: false,
                basic_challenge: "BASIC realm=\"Sonatype Nexus Repository Manager\"",
                anon_public: true,
                ..base
            },
            Kind::Artifactory => Profile {
                realm_elsewhere: false,
                realm_path: "/artifactory/api/docker/docker-remote/v2/token",
                service: None,
                latin1_401: true,
                head_no_length: true,
                ..base
            },
            Kind::Redirector | Kind::Distribution => Profile {
                chunked_manifests: true,
                head_no_digest: true,
                ..base
            },
        }
    }
}

/// Repositories the fronts know; anything else does not exist.
const PUBLIC: &str = "ns/app";
const PRIVATE: &str = "private/app";

/// A repository as the registry behind knows it: the name a front door's
/// target serves it under (`mirror/NAME`) is another name for it.
fn logical(repo: &str) -> &str {
    repo.strip_prefix("mirror/").unwrap_or(repo)
}

/// Faults a scenario turns on.
#[derive(Default)]
pub struct Faults {
    /// Cut the body of this blob halfway, this many times (where blobs are
    /// served: the CDN, else the registry).
    pub reset: Option<(String, usize)>,
    /// Send blob bodies at about this many bytes per second.
    pub throttle: Option<u64>,
}

/// Tags the front serves itself (odd manifests), over the blobs behind it.
pub type Overrides = HashMap<String, (String, Vec<u8>)>;

pub struct Front {
    pub profile: Profile,
    pub registry: Server,
    pub auth: Option<Server>,
    pub cdn: Option<Server>,
    pub log: Log,
    pub faults: Arc<Mutex<Faults>>,
    /// The front door's target, for `Redirector`.
    pub target: Option<Box<Front>>,
    state: Arc<State>,
}

struct State {
    profile: Profile,
    upstream: String,
    http: reqwest::Client,
    /// Issued tokens: value -> repositories granted.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    next: AtomicUsize,
    log: Log,
    faults: Arc<Mutex<Faults>>,
    overrides: Overrides,
    /// `https://127.0.0.1:PORT` etc., once known.
    reg_base: Mutex<String>,
    auth_base: Mutex<String>,
    cdn_base: Mutex<String>,
    /// Where every `/v2/` request is sent (Redirector).
    redirect_to: Option<String>,
}

impl Front {
    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.registry.addr.to_string()
    }

    /// The faults of whoever serves the blobs (a front door's target).
    pub fn faults_for_blobs(&self) -> &Arc<Mutex<Faults>> {
        &self.faults
    }

    /// Whether this front issued bearer token `t`.
    pub fn issued(&self, t: &str) -> bool {
        self.state.tokens.lock().unwrap().contains_key(t)
    }

    /// Every request to this front's servers (not its target's).
    pub fn all_requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// Requests to the CDN.
    pub fn cdn_requests(&self) -> Vec<Seen> {
        let cdn = self.cdn.as_ref().map(|c| c.addr.to_string());
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| Some(&s.server) == cdn.as_ref())
            .cloned()
            .collect()
    }
}

pub async fn start(kind: Kind, upstream: &str, overrides: Overrides) -> Front {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let target = match kind {
        Kind::Redirector => Some(Box::new(
            Box::pin(start(Kind::Distribution, upstream, overrides.clone())).await,
        )),
        _ => None,
    };
    let faults = target
        .as_ref()
        .map(|t| t.faults.clone())
        .unwrap_or_default();
    let profile = Profile::of(kind);
    let state = Arc::new(State {
        profile: profile.clone(),
        upstream: upstream.to_string(),
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tokens: Mutex::new(HashMap::new()),
        next: AtomicUsize::new(0),
        log: log.clone(),
        faults: faults.clone(),
        overrides,
        reg_base: Mutex::new(String::new()),
        auth_base: Mutex::new(String::new()),
        cdn_base: Mutex::new(String::new()),
        redirect_to: target.as_ref().map(|t| format!("https://{}", t.host())),
    });
    let st = state.clone();
    let registry = serve_tls_on("127.0.0.1", move |req| {
        let st = st.clone();
        async move { st.registry(req).await }
    })
    .await;
    *state.reg_base.lock().unwrap() = format!("https://{}", registry.addr);
    let auth = match profile.bearer && profile.realm_elsewhere {
        true => {
            let st = state.clone();
            let s = serve_tls_on("127.0.0.3", move |req| {
                let st = st.clone();
                async move {
                    st.seen("auth", &req);
                    st.token(&req)
                }
            })
            .await;
            *state.auth_base.lock().unwrap() = format!("https://{}", s.addr);
            Some(s)
        }
        false => None,
    };
    let cdn = match profile.blobs {
        Blobs::Cdn { https, .. } => {
            let st = state.clone();
            let handler = move |req: Request| {
                let st = st.clone();
                async move { st.cdn(req).await }
            };
            let s = match https {
                true => serve_tls_on("127.0.0.2", handler).await,
                false => serve_on("127.0.0.2", handler).await,
            };
            let scheme = if https { "https" } else { "http" };
            *state.cdn_base.lock().unwrap() = format!("{scheme}://{}", s.addr);
            Some(s)
        }
        _ => None,
    };
    Front {
        profile,
        registry,
        auth,
        cdn,
        log,
        faults,
        target,
        state,
    }
}

fn json(status: u16, body: &str) -> Response {
    Response::new(status, body.to_string()).header("Content-Type", "application/json")
}

fn basic_of(req: &Request) -> Option<(String, String)> {
    use base64::Engine as _;
    let b64 = req.header("authorization")?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let (u, p) = String::from_utf8(raw)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((u, p))
}

impl State {
    fn seen(&self, server: &str, req: &Request) {
        let name = match server {
            "registry" => self.reg_base.lock().unwrap().clone(),
            "auth" => self.auth_base.lock().unwrap().clone(),
            _ => self.cdn_base.lock().unwrap().clone(),
        };
        let addr = name.rsplit("//").next().unwrap_or("").to_string();
        self.log.lock().unwrap().push(Seen {
            server: addr,
            method: req.method.clone(),
            target: req.target.clone(),
            auth: req.header("authorization").map(str::to_string),
        });
    }

    fn realm(&self) -> String {
        let host = match self.profile.realm_elsewhere {
            true => self.auth_base.lock().unwrap().clone(),
            false => self.reg_base.lock().unwrap().clone(),
        };
        format!("{host}{}", self.profile.realm_path)
    }

    fn service(&self) -> String {
        match self.profile.service {
            Some(s) => s.to_string(),
            None => self
                .reg_base
                .lock()
                .unwrap()
                .trim_start_matches("https://")
                .to_string(),
        }
    }

    /// The challenge for `/v2/` (`repo` None) or a repository.
    fn challenge(&self, repo: Option<&str>, insufficient: bool) -> String {
        let p = &self.profile;
        if !p.bearer {
            let reg = self.reg_base.lock().unwrap().clone();
            return p.basic_challenge.replace("https://REG", &reg);
        }
        let mut c = format!("Bearer realm=\"{}\"", self.realm());
        if !(repo.is_none() && p.v2_without_service) {
            c.push_str(&format!(",service=\"{}\"", self.service()));
        }
        let scope_repo = repo.or(p.v2_scope.then_some("user/image"));
        if let Some(r) = scope_repo {
            c.push_str(&format!(",scope=\"repository:{r}:pull\""));
        }
        if insufficient {
            c.push_str(",error=\"insufficient_scope\"");
        }
        c
    }

    fn unauthorized(&self, repo: Option<&str>, insufficient: bool) -> Response {
        let p = &self.profile;
        let resp = if p.html_401 && repo.is_none() {
            Response::new(401, "true").header("Content-Type", "text/html; charset=utf-8")
        } else {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
            let ctype = if p.latin1_401 {
                "application/json;charset=ISO-8859-1"
            } else {
                "application/json"
            };
            Response::new(401, body).header("Content-Type", ctype)
        };
        resp.header("WWW-Authenticate", &self.challenge(repo, insufficient))
    }

    /// The token endpoint.
    fn token(&self, req: &Request) -> Response {
        let p = &self.profile;
        if !req.path().ends_with(p.realm_path) {
            return json(404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#);
        }
        if p.kind == Kind::Gitlab
            && req.query("service").first().map(String::as_str) != Some("container_registry")
        {
            return json(404, r#"{"message":"404 Not Found"}"#);
        }
        let form = |k: &str| req.form(k);
        let user_ok = if req.method == "POST" {
            if !p.post_grants {
                return json(405, r#"{"errors":[{"code":"UNSUPPORTED"}]}"#);
            }
            match form("grant_type").as_deref() {
                Some("refresh_token") if form("refresh_token").as_deref() == Some(REFRESH) => true,
                Some("password") if form("password").as_deref() == Some(PASSWORD) => true,
                _ => {
                    return json(
                        401,
                        r#"{"error":"invalid_grant","error_description":"the refresh token is invalid"}"#,
                    )
                }
            }
        } else {
            match basic_of(req) {
                None => false,
                Some((u, pw)) if u == p.user && pw == PASSWORD => true,
                Some(_) => return json(p.wrong.0, p.wrong.1),
            }
        };
        let scopes = match req.method.as_str() {
            "POST" => form("scope").into_iter().collect(),
            _ => req.query("scope"),
        };
        let mut granted = Vec::new();
        for s in &scopes {
            let Some(repo) = s
                .strip_prefix("repository:")
                .and_then(|r| r.rsplit_once(':'))
                .map(|(r, _)| r)
            else {
                continue;
            };
            let private = logical(repo).starts_with("private/");
            if private && !user_ok {
                if p.anon_private_403 {
                    return json(
                        403,
                        r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
                    );
                }
                continue;
            }
            if p.drops_missing && logical(repo) != PUBLIC && logical(repo) != PRIVATE {
                continue;
            }
            granted.push(repo.to_string());
        }
        let token = format!(
            "tok-{}-{}",
            self.next.fetch_add(1, Ordering::SeqCst),
            p.kind as u8
        );
        self.tokens.lock().unwrap().insert(token.clone(), granted);
        let body = match p.shape {
            Shape::Both => {
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": "2026-12-01T00:00:00Z"})
            }
            Shape::TokenOnly => serde_json::json!({"token": token}),
            Shape::AccessOnly => serde_json::json!({"access_token": token}),
            Shape::BothNoLife => serde_json::json!({"access_token": token, "token": token}),
            Shape::TokenLife => {
                serde_json::json!({"token": token, "expires_in": 1800, "issued_at": "2026-12-01T00:00:00Z"})
            }
            Shape::Gcr => {
                serde_json::json!({"expires_in": 43200, "issued_at": "2026-12-01T00:00:00.000-07:00", "token": token})
            }
        };
        json(200, &body.to_string())
    }

    /// `None` when `req` may read `repo`, else the refusal.
    fn access(&self, req: &Request, repo: &str) -> Option<Response> {
        let p = &self.profile;
        let exists = logical(repo) == PUBLIC || logical(repo) == PRIVATE;
        let public = !logical(repo).starts_with("private/");
        let missing = || {
            json(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
            )
        };
        match req.header("authorization") {
            None if p.anon_public && public => match exists {
                true => None,
                false => Some(missing()),
            },
            // Artifactory names no scope on HEAD challenges.
            None if p.kind == Kind::Artifactory && req.method == "HEAD" => {
                Some(self.unauthorized(None, false))
            }
            None => Some(self.unauthorized(Some(repo), false)),
            Some(a) if a.starts_with("Basic ") => {
                // Basic registries, and AR (Basic on API calls).
                if p.bearer && p.kind != Kind::Ar {
                    return Some(self.unauthorized(Some(repo), false));
                }
                match basic_of(req) {
                    Some((u, pw)) if u == p.user && pw == PASSWORD => match exists {
                        true => None,
                        false => Some(missing()),
                    },
                    _ => Some(
                        Response::new(p.wrong.0, p.wrong.1)
                            .header("Content-Type", "application/json")
                            .header("WWW-Authenticate", &self.challenge(None, false)),
                    ),
                }
            }
            Some(a) => {
                let t = a.strip_prefix("Bearer ").unwrap_or("");
                let granted = self.tokens.lock().unwrap().get(t).cloned();
                match granted {
                    Some(g) if g.iter().any(|r| r == repo) => match exists {
                        true => None,
                        false => Some(missing()),
                    },
                    Some(_) => Some(self.unauthorized(Some(repo), true)),
                    None => Some(self.unauthorized(Some(repo), false)),
                }
            }
        }
    }

    async fn registry(&self, req: Request) -> Response {
        self.seen("registry", &req);
        let path = req.path().to_string();
        if let Some(to) = &self.redirect_to {
            // Under another name there, as registry.k8s.io sends `X` to
            // `…/k8s-artifacts-prod/images/X`: `/v2/X` becomes `/v2/mirror/X`.
            let target = match req.target.strip_prefix("/v2/").filter(|r| !r.is_empty()) {
                Some(rest) => format!("/v2/mirror/{rest}"),
                None => req.target.clone(),
            };
            return Response::new(307, "").header("Location", &format!("{to}{target}"));
        }
        if self.profile.bearer && !self.profile.realm_elsewhere && path == self.profile.realm_path {
            return self.token(&req);
        }
        if path == "/v2/" || path == "/v2" {
            let anon_ok = self.profile.anon_public && !self.profile.bearer;
            if req.header("authorization").is_none() && !anon_ok {
                return self.unauthorized(None, false);
            }
            return json(200, "{}").header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if let Some(rest) = path.strip_prefix("/artifacts-downloads/") {
            // AR's relative blob downloads: `.../downloads/<digest>~<signature>`.
            let digest = rest
                .rsplit('/')
                .next()
                .unwrap_or("")
                .split('~')
                .next()
                .unwrap_or("");
            return self.blob_body(&req, digest).await;
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return json(404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#);
        };
        let (repo, what, reference) = if let Some((r, d)) = rest.rsplit_once("/blobs/") {
            (r.to_string(), "blobs", d.to_string())
        } else if let Some((r, t)) = rest.rsplit_once("/manifests/") {
            (r.to_string(), "manifests", t.to_string())
        } else {
            return json(404, r#"{"errors":[{"code":"NOT_FOUND"}]}"#);
        };
        if let Some(refused) = self.access(&req, &repo) {
            return refused;
        }
        match what {
            "manifests" => self.manifest(&req, logical(&repo), &reference).await,
            _ => self.blob(&req, &reference).await,
        }
    }

    /// A signed, expiring URL for `path` on the CDN.
    fn signed(&self, path: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let sig = super::image::sha256(format!("{path}{exp}").as_bytes())[7..23].to_string();
        let query = match self.profile.kind {
            Kind::DockerHub => format!("verify={exp}-{sig}"),
            Kind::Ghcr | Kind::AcrAzure => format!("se={exp}&sig={sig}&sp=r&sr=b&sv=2019-12-12"),
            Kind::AcrAlibaba | Kind::AcrAlibabaEe => format!("Expires={exp}&OSSAccessKeyId=LTAI&Signature={sig}"),
            Kind::Quay => format!("X-Amz-Expires=600&X-Amz-Signature={sig}&cf_sign={sig}&cf_expiry={exp}&Expires={exp}"),
            Kind::Gcr => format!("Expires={exp}&Signature={sig}"),
            _ => format!("X-Amz-Security-Token=tok&X-Amz-Expires=1200&X-Amz-Signature={sig}&Expires={exp}"),
        };
        format!("{}{path}?{query}", self.cdn_base.lock().unwrap())
    }

    fn check_signature(&self, req: &Request) -> bool {
        let path = req.path();
        let (exp, sig) = match self.profile.kind {
            Kind::DockerHub => {
                let v = req.query("verify").first().cloned().unwrap_or_default();
                let (e, s) = v.split_once('-').unwrap_or(("", ""));
                (e.to_string(), s.to_string())
            }
            Kind::Ghcr | Kind::AcrAzure => (
                req.query("se").first().cloned().unwrap_or_default(),
                req.query("sig").first().cloned().unwrap_or_default(),
            ),
            Kind::AcrAlibaba | Kind::AcrAlibabaEe | Kind::Gcr => (
                req.query("Expires").first().cloned().unwrap_or_default(),
                req.query("Signature").first().cloned().unwrap_or_default(),
            ),
            _ => (
                req.query("Expires").first().cloned().unwrap_or_default(),
                req.query("X-Amz-Signature")
                    .first()
                    .cloned()
                    .unwrap_or_default(),
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let fresh = exp.parse::<u64>().is_ok_and(|e| e > now);
        fresh && super::image::sha256(format!("{path}{exp}").as_bytes())[7..23] == sig
    }

    async fn manifest(&self, req: &Request, repo: &str, reference: &str) -> Response {
        let p = &self.profile;
        if p.manifests_to_cdn && !req.path().starts_with("/cdn/") {
            let loc = self.signed(&format!("/cdn/manifests/{repo}/{reference}"));
            return Response::new(302, "").header("Location", &loc);
        }
        let mut resp = match self.overrides.get(reference) {
            Some((ctype, bytes)) => Response::new(200, bytes.clone())
                .header("Content-Type", ctype)
                .header("Docker-Content-Digest", &super::image::sha256(bytes)),
            None => {
                self.forward(req, &format!("/v2/{repo}/manifests/{reference}"))
                    .await
            }
        };
        if p.ratelimit {
            resp = resp
                .header("ratelimit-limit", "100;w=21600")
                .header("ratelimit-remaining", "99;w=21600")
                .header("docker-ratelimit-source", "127.0.0.1");
        }
        if p.head_no_digest && req.method == "HEAD" {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
        }
        if p.head_no_length && req.method == "HEAD" {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
            resp.unsized_body = true;
        }
        if p.chunked_manifests && resp.body.len() >= 2000 {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
            resp.chunked = true;
        }
        resp
    }

    async fn blob(&self, req: &Request, digest: &str) -> Response {
        let p = &self.profile;
        match p.blobs {
            Blobs::Direct => self.blob_body(req, digest).await,
            Blobs::Cdn { status, .. } => {
                let path = match p.kind {
                    Kind::DockerHub | Kind::AcrAzure | Kind::AcrAlibaba | Kind::AcrAlibabaEe => {
                        format!(
                            "/docker/registry/v2/blobs/sha256/{}/{}/data",
                            &digest[7..9],
                            &digest[7..]
                        )
                    }
                    Kind::Ghcr => format!("/ghcr1/blobs/{digest}"),
                    Kind::Quay => format!(
                        "/quayio-production-s3/sha256/{}/{}",
                        &digest[7..9],
                        &digest[7..]
                    ),
                    Kind::Gcr => format!("/artifacts.p.appspot.com/containers/images/{digest}"),
                    _ => format!("/s3/docker/registry/v2/blobs/{digest}"),
                };
                let mut r =
                    Response::new(status, p.redirect_body).header("Location", &self.signed(&path));
                if p.kind == Kind::Gcr {
                    r = r.header("Accept-Ranges", "none");
                }
                if !p.redirect_body.is_empty() {
                    r = r.header("Content-Type", "text/html; charset=utf-8");
                }
                r
            }
            Blobs::SameHost => {
                let sig = "x".repeat(1000);
                Response::new(302, "").header(
                    "Location",
                    &format!(
                        "/artifacts-downloads/namespaces/p/repositories/r/downloads/{digest}~{sig}"
                    ),
                )
            }
        }
    }

    /// A blob's bytes from the registry behind, with the faults.
    async fn blob_body(&self, req: &Request, digest: &str) -> Response {
        let mut resp = self
            .forward(req, &format!("/v2/{PUBLIC}/blobs/{digest}"))
            .await;
        if resp.status == 404 {
            resp = self
                .forward(req, &format!("/v2/{PRIVATE}/blobs/{digest}"))
                .await;
        }
        let mut f = self.faults.lock().unwrap();
        if let Some((d, n)) = f.reset.as_mut() {
            if d == digest && *n > 0 && req.method == "GET" && resp.body.len() > 1 {
                *n -= 1;
                resp.cut_at = Some(resp.body.len() / 2);
            }
        }
        resp.throttle = f.throttle;
        if self.profile.chunked_blobs && resp.cut_at.is_none() {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
            resp.chunked = true;
        }
        resp
    }

    async fn cdn(&self, req: Request) -> Response {
        self.seen("cdn", &req);
        let p = &self.profile;
        if req.header("authorization").is_some() {
            if let Some(body) = p.cdn_rejects_auth {
                return Response::new(400, body).header("Content-Type", "application/xml");
            }
        }
        if req.method == "HEAD" && p.cdn_head_403 {
            return Response::new(403, "");
        }
        if !self.check_signature(&req) {
            return Response::new(
                403,
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            );
        }
        let path = req.path().to_string();
        let mut resp = if let Some(rest) = path.strip_prefix("/cdn/manifests/") {
            let (repo, reference) = rest.rsplit_once('/').unwrap_or(("", ""));
            let mut inner = Request {
                method: req.method.clone(),
                target: format!("/cdn{}", req.target),
                headers: req.headers.clone(),
                body: Vec::new(),
            };
            inner
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            let mut r = self.manifest(&inner, repo, reference).await;
            // S3 says what it stores, not what a manifest is.
            r.headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("content-type")
                    && !k.eq_ignore_ascii_case("docker-content-digest")
            });
            r.header("Content-Type", "binary/octet-stream")
        } else {
            let digest = path
                .rsplit('/')
                .find(|s| s.starts_with("sha256:") || s.len() == 64)
                .map(|s| {
                    if s.starts_with("sha256:") {
                        s.to_string()
                    } else {
                        format!("sha256:{s}")
                    }
                })
                .unwrap_or_default();
            self.blob_body(&req, &digest).await
        };
        if p.kind == Kind::Quay {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            resp = resp.header("Content-Type", "binary/octet-stream");
        }
        resp
    }

    /// `path` from the registry behind (GET or HEAD, with Accept and Range).
    async fn forward(&self, req: &Request, path: &str) -> Response {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
        let mut up = self
            .http
            .request(method, format!("{}{path}", self.upstream));
        for (k, v) in &req.headers {
            if ["accept", "range"].contains(&k.to_ascii_lowercase().as_str()) {
                up = up.header(k, v);
            }
        }
        let Ok(r) = up.send().await else {
            return json(502, r#"{"errors":[{"code":"UNAVAILABLE"}]}"#);
        };
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .filter(|(k, _)| !["transfer-encoding", "connection"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let mut resp = Response::new(status, body);
        resp.headers = headers;
        resp
    }
}
