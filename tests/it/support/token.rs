//! A token server like Docker Hub's auth endpoint: issues RS256 JWTs the
//! registry trusts (`auth.token.rootcertbundle`), with an `x5c` header.
//!
//! Policy: repositories under `private/` are pullable only by `alice` with
//! the right password; everything else by anyone. Wrong credentials get a
//! 401; a scope the caller may not have is answered with a token that
//! lacks it (as Docker Hub does).

use super::certs;
use super::http::{serve, Request, Response, Server};
use base64::Engine as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const SERVICE: &str = "imgpull-test-registry";
pub const ISSUER: &str = "imgpull-test-issuer";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pass";
/// A user who may pull everything (`private/` too) but push nothing.
pub const READER: &str = "reader";
pub const READER_PASSWORD: &str = "read-0nly";
/// The identity (refresh) token `docker login` would have stored for USER.
pub const REFRESH_TOKEN: &str = "alice-refresh-token";

pub struct TokenServer {
    pub server: Server,
    /// Token requests answered.
    pub requests: Arc<AtomicUsize>,
    /// Every scope asked for, in order.
    pub scopes: Arc<std::sync::Mutex<Vec<String>>>,
    /// The next this many token requests are answered `429` with
    /// `Retry-After: 1` (auth.docker.io rate limits its token endpoint).
    pub rate_limited: Arc<AtomicUsize>,
}

impl TokenServer {
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr)
    }
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

pub async fn start() -> TokenServer {
    let requests = Arc::new(AtomicUsize::new(0));
    let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rate_limited = Arc::new(AtomicUsize::new(0));
    let (counter, seen, limited) = (requests.clone(), scopes.clone(), rate_limited.clone());
    let server = serve(move |req: Request| {
        counter.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().extend(req.query("scope"));
        let limit = limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        async move {
            if limit {
                return Response::new(429, r#"{"details":"too many requests"}"#)
                    .header("Retry-After", "1");
            }
            answer(req)
        }
    })
    .await;
    TokenServer {
        server,
        requests,
        scopes,
        rate_limited,
    }
}

fn answer(req: Request) -> Response {
    if req.path() != "/token" {
        return Response::new(404, "not found");
    }
    if req.method == "POST" {
        return refresh_grant(&req);
    }
    let user = match req.header("authorization") {
        None => None,
        Some(h) => match check_basic(h) {
            Some(u) => Some(u),
            None => {
                return Response::new(401, r#"{"details":"incorrect username or password"}"#)
                    .header("Content-Type", "application/json")
            }
        },
    };
    let token = mint(
        user.as_deref().unwrap_or(""),
        grant(user.as_deref(), req.query("scope")),
    );
    Response::new(
        200,
        serde_json::json!({"token": token, "expires_in": 300, "issued_at": "2026-11-28T00:00:00Z"})
            .to_string(),
    )
    .header("Content-Type", "application/json")
}

/// OAuth2 `grant_type=refresh_token` (docker's identity tokens).
fn refresh_grant(req: &Request) -> Response {
    let get = |k: &str| req.form(k);
    if get("grant_type").as_deref() != Some("refresh_token")
        || get("refresh_token").as_deref() != Some(REFRESH_TOKEN)
    {
        return Response::new(401, r#"{"error":"invalid_grant"}"#);
    }
    let scopes: Vec<String> = get("scope").into_iter().collect();
    let token = mint(USER, grant(Some(USER), scopes));
    Response::new(
        200,
        serde_json::json!({"access_token": token, "expires_in": 300}).to_string(),
    )
    .header("Content-Type", "application/json")
}

fn grant(user: Option<&str>, scopes: Vec<String>) -> Vec<serde_json::Value> {
    let pusher = user == Some(USER);
    let mut access = Vec::new();
    for scope in scopes {
        // repository:NAME:ACTIONS
        let parts: Vec<&str> = scope.splitn(3, ':').collect();
        if parts.len() != 3 || parts[0] != "repository" {
            continue;
        }
        let name = parts[1];
        let allowed = !name.starts_with("private/") || user.is_some();
        if allowed {
            let actions: Vec<&str> = parts[2]
                .split(',')
                .filter(|a| *a == "pull" || pusher)
                .collect();
            access
                .push(serde_json::json!({"type": "repository", "name": name, "actions": actions}));
        }
    }
    access
}

fn check_basic(h: &str) -> Option<String> {
    let b64 = h.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    ((u == USER && p == PASSWORD) || (u == READER && p == READER_PASSWORD)).then(|| u.to_string())
}

/// A signed token granting `access`.
pub fn mint(subject: &str, access: Vec<serde_json::Value>) -> String {
    let c = certs::get();
    let pem = std::fs::read_to_string(&c.token_pem).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(vec![der_b64]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", rand_id()),
        "access": access,
    });
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&c.token_key).unwrap()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    h.finish()
}

/// A token with push and pull on `repository` (for pushing test images).
pub fn push_token(repository: &str) -> String {
    mint(
        USER,
        vec![
            serde_json::json!({"type": "repository", "name": repository, "actions": ["pull", "push"]}),
        ],
    )
}
