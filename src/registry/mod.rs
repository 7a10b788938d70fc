//! The registry client: one per registry, speaking the OCI distribution API
//! over reqwest + rustls, with challenge-driven auth.
//!
//! - `connect` pings `/v2/` to choose the scheme (HTTPS always; plain HTTP
//!   only for loopback or `insecure` registries, as docker allows) and to
//!   learn the auth challenge.
//! - Every request carries the authorization its scope needs: Basic, or a
//!   Bearer token fetched from the challenge's realm and reused until it
//!   expires. A 401 on a request refreshes once, then fails.
//! - Redirects (blob storage on another host) are followed hop by hop by
//!   [`redirect`]: `Authorization` reaches only the registry's own origin.
//! - Bodies are read under a stall timeout and a minimum speed
//!   ([`body`]); every request for one thing shares one retry budget
//!   ([`Tries`]).
//!
//! Files: `send` (one request: auth, hops, retries, statuses), `auth`
//! (what is sent to whom), `token` (token requests), `redirect`, `body`,
//! `retry` (the policy), `wire` (ranges, URLs, error classification),
//! `error`.

mod auth;
mod body;
pub mod challenge;
pub mod endpoints;
mod error;
pub mod quirks;
pub mod quota;
pub mod redirect;
mod retry;
mod send;
mod token;
pub mod upload;
mod wire;

pub use auth::Deferred;
pub use body::{Body, Pace, Tries};
pub use error::{summarize_body, RegistryError};
pub use retry::RetryPolicy;
pub(crate) use wire::classify;
pub use wire::{error_chain, is_loopback, range_answered, resumed_at, shown_url};

use crate::credentials::Found;
use crate::oci::digest::Digest;
use crate::oci::manifest::media;
use crate::registry::challenge::{Challenge, Token};
use redirect::{Downgrade, Origin};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Method, Response};
use send::{follow_error, Req};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wire::{build_http, challenge_of, looks_like_registry};

pub use crate::oci::manifest::{CONFIG_MAX, MANIFEST_MAX};
/// How long the HTTPS probe of a registry that may be plain HTTP may take.
const FALLBACK_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Error bodies are read up to this size for their message.
const ERROR_BODY_MAX: usize = 64 << 10;
/// A token server's answer may not exceed this.
const TOKEN_MAX: usize = 1 << 20;

/// Where the client's notes go: `-v` lines (a followed downgrade) and
/// warnings (waiting out a rate limit).
#[derive(Clone, Default)]
pub struct Notes(Option<Arc<dyn crate::progress::Reporter>>);

impl Notes {
    pub fn new(reporter: Arc<dyn crate::progress::Reporter>) -> Notes {
        Notes(Some(reporter))
    }

    fn say(&self, message: &str) {
        if let Some(r) = &self.0 {
            r.info(message)
        }
    }

    fn warn(&self, message: &str) {
        if let Some(r) = &self.0 {
            r.warn(message)
        }
    }
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notes")
    }
}

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// The registry name as users write it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Where its API lives (`registry-1.docker.io`).
    pub api_host: String,
    /// Allow plain HTTP and unverified TLS for this registry.
    pub insecure: bool,
    /// Extra trusted CA certificates, PEM.
    pub ca_pem: Vec<Vec<u8>>,
    pub credentials: Option<Found>,
    /// Providers asked only when an anonymous request is refused.
    pub deferred: Option<Deferred>,
    pub retry: RetryPolicy,
    /// No byte for this long fails the attempt (resumed with Range); also
    /// the window of the minimum-speed rule.
    pub stall_timeout: Duration,
    /// Bytes per second a body must average over a `stall_timeout` window
    /// (0: no such rule).
    pub min_speed: u64,
    /// For a mirror: add `?ns=ORIGIN` to requests (containerd style).
    pub ns: Option<String>,
    pub notes: Notes,
}

/// A manifest as fetched, verified against the digest that named it and
/// against `Docker-Content-Digest` when the registry sent one.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// Shared, not copied, by everything that holds the manifest.
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    /// `scheme://api_host`
    base: String,
    /// The origin of `base`: the only one our credentials are sent to.
    origin: Origin,
    insecure: bool,
    /// What we authenticate with: set at connect, or later by `deferred`.
    credentials: std::sync::RwLock<Option<Found>>,
    /// Costly providers (cloud helpers), asked only when the registry
    /// refuses an anonymous request.
    deferred: Option<Deferred>,
    /// Every secret in use, for scrubbing what servers echo back.
    secrets: std::sync::Mutex<Vec<String>>,
    /// Held while deferred providers are asked (once, by one task).
    deferred_lock: tokio::sync::Mutex<()>,
    retry: RetryPolicy,
    pace: Pace,
    ns: Option<String>,
    notes: Notes,
    state: tokio::sync::Mutex<AuthState>,
    /// The registry's `OCI-Chunk-Min-Length`, once it said one.
    chunk_min: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, Token>,
    /// Anonymous tokens for the registries a redirect led to, by (origin,
    /// scope): each sent to its own origin only.
    foreign: HashMap<(String, String), Token>,
    /// `deferred` was asked (it is asked once).
    deferred_asked: bool,
}

/// The scope a pull from `repository` needs.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

impl RegistryClient {
    /// Build the HTTP client and ping `/v2/`.
    pub async fn connect(opts: ClientOptions) -> Result<RegistryClient, RegistryError> {
        let http = build_http(&opts)?;
        let schemes = schemes(&opts);
        // A registry that is down (refused, reset, timed out) is tried again
        // with backoff, as every request is.
        let tries = Tries::new(opts.retry.attempts);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = tries.take() == 0;
            let errors = match ping_round(&http, &opts, schemes).await? {
                Round::Answered { base, resp } => {
                    return Ok(RegistryClient::pinged(http, opts, base, &resp))
                }
                Round::Failed(errors) => errors,
            };
            let err = pick_connect_error(errors);
            let transient = err.is_transient();
            if !transient || last {
                return Err(err);
            }
            tokio::time::sleep(opts.retry.backoff(attempt)).await;
        }
    }

    /// The client of a registry whose `/v2/` at `base` answered `resp`.
    fn pinged(
        http: reqwest::Client,
        opts: ClientOptions,
        base: String,
        resp: &Response,
    ) -> RegistryClient {
        let origin = Origin::parse(&base).expect("parsed above");
        // A challenge counts only from the registry itself, not from
        // wherever a redirect led.
        let challenge = origin
            .matches(resp.url())
            .then(|| challenge_of(resp.headers()))
            .flatten();
        RegistryClient {
            http,
            registry: opts.registry,
            base,
            origin,
            insecure: opts.insecure,
            secrets: std::sync::Mutex::new(
                opts.credentials
                    .iter()
                    .flat_map(|f| f.credential.secrets())
                    .collect(),
            ),
            credentials: std::sync::RwLock::new(opts.credentials),
            deferred: opts.deferred.clone(),
            deferred_lock: tokio::sync::Mutex::new(()),
            retry: opts.retry,
            pace: Pace {
                window: opts.stall_timeout,
                min_speed: opts.min_speed,
            },
            ns: opts.ns.clone(),
            notes: opts.notes.clone(),
            state: tokio::sync::Mutex::new(AuthState {
                challenge,
                ..AuthState::default()
            }),
            chunk_min: Default::default(),
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `BASE/v2/PATH`, with `?ns=ORIGIN` for mirrors that want it.
    fn api_url(&self, path: &str) -> String {
        match &self.ns {
            Some(ns) => format!("{}/v2/{path}?ns={ns}", self.base),
            None => format!("{}/v2/{path}", self.base),
        }
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// A response's body, read under this client's time rules.
    pub fn body(&self, resp: Response) -> Body {
        Body::new(resp, &self.registry, self.pace)
    }

    /// HEAD a manifest: its media type, digest and headers, without a body
    /// (Docker Hub does not count HEADs against the pull quota).
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
        tries: &Tries,
    ) -> Result<reqwest::header::HeaderMap, RegistryError> {
        let url = self.api_url(&format!("{repository}/manifests/{reference}"));
        let what = format!("manifest {}/{repository}:{reference}", self.registry);
        let mut req = Req::get(&url).header(ACCEPT, media::MANIFEST_ACCEPT);
        req.method = Method::HEAD;
        let resp = self.send(repository, &what, &req, tries).await?;
        Ok(resp.headers().clone())
    }

    /// GET a manifest by tag or digest, verified, of at most `max` bytes
    /// (at most [`MANIFEST_MAX`] whatever `max` says). Each try takes from
    /// `tries` (shared with a HEAD of the same manifest).
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        max: usize,
        tries: &Tries,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.api_url(&format!("{repository}/manifests/{reference}"));
        let sep = if reference.contains(':') { '@' } else { ':' };
        let what = format!("manifest {}/{repository}{sep}{reference}", self.registry);
        let req = Req::get(&url).header(ACCEPT, media::MANIFEST_ACCEPT);
        let resp = self.send(repository, &what, &req, tries).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = bytes::Bytes::from(self.read_capped(resp, max.min(MANIFEST_MAX)).await?);
        let wanted: Option<Digest> = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => header_digest.and_then(|d| d.parse().ok()),
        };
        let digest = match &wanted {
            Some(w) => crate::oci::digest::digest_like(&bytes, w),
            None => Digest::of(&bytes),
        };
        if let Some(expected) = wanted.filter(|w| *w != digest) {
            return Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                what,
                expected: expected.to_string(),
                found: digest,
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// GET bytes `start..=end` of a blob (`end` `None`: to the end; `start`
    /// 0 and no end: the whole blob, no `Range`). Check the answer with
    /// [`range_answered`] / [`resumed_at`]. Every request made for it takes
    /// from `tries`.
    pub async fn blob_range(
        &self,
        repository: &str,
        digest: &Digest,
        start: u64,
        end: Option<u64>,
        tries: &Tries,
    ) -> Result<Response, RegistryError> {
        let url = self.api_url(&format!("{repository}/blobs/{digest}"));
        let what = format!("blob {digest} in {}/{repository}", self.registry);
        let mut req = match (start, end) {
            (0, None) => Req::get(&url),
            (s, None) => Req::get(&url).header(RANGE, &format!("bytes={s}-")),
            (s, Some(e)) => Req::get(&url).header(RANGE, &format!("bytes={s}-{e}")),
        };
        req.verified = true;
        self.send(repository, &what, &req, tries).await
    }

    /// GET a small blob (a config) whole, verified against `desc`.
    pub async fn small_blob(
        &self,
        repository: &str,
        desc: &crate::oci::manifest::Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let tries = Tries::new(self.retry.attempts);
        let resp = self
            .blob_range(repository, &desc.digest, 0, None, &tries)
            .await?;
        let bytes = self.read_capped(resp, CONFIG_MAX).await?;
        let found = crate::oci::digest::digest_like(&bytes, &desc.digest);
        if found != desc.digest || bytes.len() as u64 != desc.size {
            return Err(RegistryError::DigestMismatch {
                registry: self.registry.clone(),
                what: format!("blob in {}/{repository}", self.registry),
                expected: desc.digest.to_string(),
                found,
            });
        }
        Ok(bytes)
    }

    /// The error for a refused request; `sent` says whether it carried our
    /// credentials (or a token got with them): a refusal of what was sent
    /// anonymously does not blame them.
    pub(crate) async fn status_error(
        &self,
        resp: Response,
        repository: &str,
        what: &str,
        sent: bool,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let url = shown_url(resp.url().as_str());
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self
            .read_capped(resp, ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        // Scrubbed whole, before the summary cuts it (a secret cut in two
        // would no longer be found).
        let body = self.scrub(&String::from_utf8_lossy(&body));
        let detail = summarize_body(status, body.as_bytes());
        self.error_for(status, url, retry_after, repository, what, detail, sent)
    }

    #[allow(clippy::too_many_arguments)]
    fn error_for(
        &self,
        status: u16,
        url: String,
        retry_after: Option<String>,
        repository: &str,
        what: &str,
        detail: String,
        sent: bool,
    ) -> RegistryError {
        let registry = self.registry.clone();
        let repository = repository.to_string();
        let found = self.found().filter(|_| sent);
        // A server may echo what it was sent: never show our secrets back.
        let detail = self.scrub(&detail);
        match status {
            401 => RegistryError::Unauthorized {
                registry,
                repository,
                credential_source: found.map(|f| f.source),
                detail,
            },
            403 => RegistryError::Denied {
                registry,
                repository,
                anonymous: found.is_none(),
                detail,
            },
            404 => RegistryError::NotFound {
                registry,
                what: what.to_string(),
                detail,
            },
            429 => RegistryError::RateLimited {
                registry,
                retry_after,
                detail,
            },
            _ => RegistryError::Status {
                registry,
                url,
                status,
                detail,
            },
        }
    }

    /// Read a whole body, refusing more than `max` bytes.
    pub(crate) async fn read_capped(
        &self,
        resp: Response,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = shown_url(resp.url().as_str());
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(self.too_big(&url, max));
        }
        let mut out = Vec::new();
        let mut body = self.body(resp);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > max {
                return Err(self.too_big(&url, max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn too_big(&self, url: &str, max: usize) -> RegistryError {
        RegistryError::TooLarge {
            registry: self.registry.clone(),
            url: url.to_string(),
            what: match max {
                CONFIG_MAX => "config",
                ERROR_BODY_MAX => "error message",
                TOKEN_MAX => "token answer",
                _ => "manifest",
            },
            max,
        }
    }
}

/// The schemes a registry is pinged with, in order: HTTPS always; plain
/// HTTP too for loopback or `insecure` registries, as docker allows.
fn schemes(opts: &ClientOptions) -> &'static [&'static str] {
    if opts.insecure || is_loopback(&opts.api_host) {
        &["https", "http"]
    } else {
        &["https"]
    }
}

/// How one round of pings (one per scheme) ended.
enum Round {
    /// A scheme answered as a registry: its `scheme://api_host`, and the
    /// answer.
    Answered { base: String, resp: Response },
    /// Every scheme failed, each with its error.
    Failed(Vec<RegistryError>),
}

/// Ping `/v2/` with each scheme in turn, up to the first that answers as
/// a registry. `Err`: the host makes no URL (nothing to try again).
async fn ping_round(
    http: &reqwest::Client,
    opts: &ClientOptions,
    schemes: &[&str],
) -> Result<Round, RegistryError> {
    let mut errors = Vec::new();
    for scheme in schemes {
        let base = format!("{scheme}://{}", opts.api_host);
        let url = format!("{base}/v2/");
        let Ok(parsed) = reqwest::Url::parse(&url) else {
            return Err(RegistryError::BadResponse {
                registry: opts.registry.clone(),
                detail: format!("{:?} is not a registry host", opts.api_host),
            });
        };
        // A plain-HTTP server may never answer a TLS hello; don't wait the
        // full stall timeout before falling back.
        let deadline = match schemes.len() > 1 && *scheme == "https" {
            true => FALLBACK_PROBE_TIMEOUT,
            false => opts.stall_timeout,
        };
        match ping(http, opts, &url, parsed, deadline).await {
            Ok(resp) => return Ok(Round::Answered { base, resp }),
            Err(e) => errors.push(e),
        }
    }
    Ok(Round::Failed(errors))
}

/// One ping of `url` (`parsed`), anonymous, never down to plain HTTP: the
/// answer, unless it failed or (over plain HTTP) is not a registry API's.
async fn ping(
    http: &reqwest::Client,
    opts: &ClientOptions,
    url: &str,
    parsed: reqwest::Url,
    deadline: Duration,
) -> Result<Response, RegistryError> {
    let plain = parsed.scheme() == "http";
    let ping = redirect::Request {
        http,
        method: Method::GET,
        url: parsed,
        headers: HeaderMap::new(),
        auth: &[],
        body: None,
        downgrade: Downgrade::Refuse,
        deadline: Some(deadline),
        on_hop: None,
    };
    let resp = ping
        .send()
        .await
        .map_err(|e| follow_error(&opts.registry, e))?;
    if plain && !looks_like_registry(&resp) {
        return Err(RegistryError::BadResponse {
            registry: opts.registry.clone(),
            detail: format!(
                "{url} answered HTTP {} and is not a registry API",
                resp.status()
            ),
        });
    }
    Ok(resp)
}

/// Of the errors of one ping round (HTTPS, then plain HTTP for a registry
/// that may speak it), the one that says what is wrong: the HTTPS probe's,
/// unless plain HTTP was accepted and then timed out or broke — a slow
/// plain-HTTP registry answers a TLS hello with nothing, which is no TLS
/// problem (and no `--ca-file` would help).
fn pick_connect_error(mut errors: Vec<RegistryError>) -> RegistryError {
    if errors.len() == 2 {
        let plain = errors.pop().expect("two");
        let first = errors.pop().expect("two");
        return match (&first, &plain) {
            (RegistryError::Tls { .. }, RegistryError::Network { .. }) => plain,
            _ => first,
        };
    }
    errors.pop().expect("at least one scheme was tried")
}
