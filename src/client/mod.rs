//! The registry client: one per registry, speaking the OCI distribution API
//! over reqwest + rustls, with challenge-driven auth.
//!
//! - `connect` pings `/v2/` to choose the scheme (HTTPS always; plain HTTP
//!   only for loopback or `insecure` registries, as docker allows) and to
//!   learn the auth challenge.
//! - Every request carries the authorization its scope needs: Basic, or a
//!   Bearer token fetched from the challenge's realm and reused until it
//!   expires. A 401 on a request refreshes once, then fails.
//! - Redirects (blob storage on another host) are followed by reqwest, which
//!   drops `Authorization` whenever host, port or scheme change.

mod error;
mod retry;
mod token;

pub use error::{summarize_body, RegistryError};
pub use retry::RetryPolicy;

use crate::auth::{parse_challenge, Challenge, Token};
use crate::credentials::{Credential, Found};
use crate::digest::Digest;
use crate::manifest::media;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Manifests larger than this are refused (the distribution spec's and
/// containerd's limit).
const MANIFEST_MAX: usize = 4 << 20;
/// A config read whole (inspect) may not exceed this.
const CONFIG_MAX: usize = 16 << 20;
/// How long the HTTPS probe of a registry that may be plain HTTP may take.
const FALLBACK_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Error bodies are read up to this size for their message.
const ERROR_BODY_MAX: usize = 64 << 10;

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
    pub retry: RetryPolicy,
    /// No byte for this long fails the attempt (resumed with Range).
    pub stall_timeout: Duration,
    /// For a mirror: add `?ns=ORIGIN` to requests (containerd style).
    pub ns: Option<String>,
}

/// A manifest as fetched, verified against the digest that named it and
/// against `Docker-Content-Digest` when the registry sent one.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    /// `scheme://api_host`
    base: String,
    insecure: bool,
    credentials: Option<Found>,
    retry: RetryPolicy,
    ns: Option<String>,
    state: tokio::sync::Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, Token>,
}

/// The scope a pull from `repository` needs.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

impl RegistryClient {
    /// Build the HTTP client and ping `/v2/`.
    pub async fn connect(opts: ClientOptions) -> Result<RegistryClient, RegistryError> {
        let http = build_http(&opts)?;
        let schemes: &[&str] = if opts.insecure || is_loopback(&opts.api_host) {
            &["https", "http"]
        } else {
            &["https"]
        };
        // A registry that is down (refused, reset, timed out) is tried again
        // with backoff, as every request is.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut first_err = None;
            for scheme in schemes {
                let url = format!("{scheme}://{}/v2/", opts.api_host);
                let mut ping = http.get(&url);
                if schemes.len() > 1 && *scheme == "https" {
                    // A plain-HTTP server may never answer a TLS hello; don't
                    // wait the full read timeout before falling back.
                    ping = ping.timeout(FALLBACK_PROBE_TIMEOUT);
                }
                match ping.send().await {
                    Ok(resp) if *scheme == "http" && !looks_like_registry(&resp) => {
                        first_err.get_or_insert(RegistryError::BadResponse {
                            registry: opts.registry.clone(),
                            detail: format!(
                                "{url} answered HTTP {} and is not a registry API",
                                resp.status()
                            ),
                        });
                    }
                    Ok(resp) => {
                        // A challenge counts only from the registry itself, not
                        // from wherever a redirect led.
                        let base = format!("{scheme}://{}", opts.api_host);
                        let challenge = same_origin(resp.url(), &base)
                            .then(|| challenge_of(resp.headers()))
                            .flatten();
                        return Ok(RegistryClient {
                            http,
                            registry: opts.registry,
                            base: format!("{scheme}://{}", opts.api_host),
                            insecure: opts.insecure,
                            credentials: opts.credentials,
                            retry: opts.retry,
                            ns: opts.ns.clone(),
                            state: tokio::sync::Mutex::new(AuthState {
                                challenge,
                                tokens: HashMap::new(),
                            }),
                        });
                    }
                    Err(e) => {
                        first_err.get_or_insert(classify(&opts.registry, &url, &e));
                    }
                }
            }
            let err = first_err.expect("at least one scheme was tried");
            let transient = matches!(
                err,
                RegistryError::Connect { .. } | RegistryError::Network { .. }
            );
            if !transient || attempt >= opts.retry.attempts.max(1) {
                return Err(err);
            }
            tokio::time::sleep(opts.retry.backoff(attempt)).await;
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

    /// HEAD a manifest: its media type, digest and headers, without a body
    /// (Docker Hub does not count HEADs against the pull quota).
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<reqwest::header::HeaderMap, RegistryError> {
        let url = self.api_url(&format!("{repository}/manifests/{reference}"));
        let what = format!("manifest {}/{repository}:{reference}", self.registry);
        let resp = self
            .send(repository, &what, || {
                self.http.head(&url).header(ACCEPT, media::MANIFEST_ACCEPT)
            })
            .await?;
        Ok(resp.headers().clone())
    }

    /// GET a manifest by tag or digest, verified.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.api_url(&format!("{repository}/manifests/{reference}"));
        let sep = if reference.contains(':') { '@' } else { ':' };
        let what = format!("manifest {}/{repository}{sep}{reference}", self.registry);
        let resp = self
            .send(repository, &what, || {
                self.http.get(&url).header(ACCEPT, media::MANIFEST_ACCEPT)
            })
            .await?;
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
        let bytes = self.read_capped(resp, &url, MANIFEST_MAX).await?;
        let digest = Digest::of(&bytes);
        let wanted: Option<String> = reference
            .contains(':')
            .then(|| reference.to_string())
            .or(header_digest.filter(|d| d.starts_with("sha256:")));
        if let Some(expected) = wanted {
            if expected != digest.to_string() {
                return Err(RegistryError::DigestMismatch {
                    registry: self.registry.clone(),
                    what,
                    expected,
                    found: digest,
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// GET a blob; the caller streams and verifies the body.
    pub async fn blob(&self, repository: &str, digest: &Digest) -> Result<Response, RegistryError> {
        self.blob_from(repository, digest, 0).await
    }

    /// GET a blob from byte `offset` on (`Range: bytes=N-` when N > 0). The
    /// server may ignore the range: check [`resumed_at`] on the answer.
    pub async fn blob_from(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response, RegistryError> {
        self.blob_range(repository, digest, offset, None).await
    }

    /// GET bytes `start..=end` of a blob (`end` `None`: to the end). Check
    /// the answer with [`range_answered`] / [`resumed_at`].
    pub async fn blob_range(
        &self,
        repository: &str,
        digest: &Digest,
        start: u64,
        end: Option<u64>,
    ) -> Result<Response, RegistryError> {
        let url = self.api_url(&format!("{repository}/blobs/{digest}"));
        let what = format!("blob {digest} in {}/{repository}", self.registry);
        self.send(repository, &what, || {
            let req = self.http.get(&url);
            match (start, end) {
                (0, None) => req,
                (s, None) => req.header(reqwest::header::RANGE, format!("bytes={s}-")),
                (s, Some(e)) => req.header(reqwest::header::RANGE, format!("bytes={s}-{e}")),
            }
        })
        .await
    }

    /// GET a small blob (a config) whole, verified against `desc`.
    pub async fn small_blob(
        &self,
        repository: &str,
        desc: &crate::manifest::Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let resp = self.blob(repository, &desc.digest).await?;
        let url = shown_url(resp.url().as_str());
        let bytes = self.read_capped(resp, &url, CONFIG_MAX).await?;
        let found = Digest::of(&bytes);
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

    /// Map an error met while reading a response body.
    pub fn body_error(&self, url: &str, e: &reqwest::Error) -> RegistryError {
        classify(&self.registry, url, e)
    }

    /// Send with authorization; on 401 refresh the challenge and token once.
    /// Non-success statuses become typed errors.
    async fn send(
        &self,
        repository: &str,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let scope = pull_scope(repository);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts;
            let auth = self.authorization(repository, &scope, refreshed).await?;
            let mut req = build();
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let url = build()
                .build()
                .map(|r| shown_url(r.url().as_str()))
                .unwrap_or_default();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = classify(&self.registry, &url, &e);
                    // TLS failures do not heal by themselves.
                    if last || matches!(err, RegistryError::Tls { .. }) {
                        return Err(err);
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    continue;
                }
            };
            // Only the registry itself may send us to a token realm: a 401
            // from a redirect target (blob storage) must not learn our
            // credentials by naming a realm of its own.
            let from_registry = same_origin(resp.url(), &self.base);
            if resp.status() == StatusCode::UNAUTHORIZED && !refreshed && from_registry {
                if let Some(c) = challenge_of(resp.headers()) {
                    let mut st = self.state.lock().await;
                    st.challenge = Some(c);
                    st.tokens.remove(&scope);
                    refreshed = true;
                    continue;
                }
            }
            if resp.status().is_success() {
                return Ok(resp);
            }
            let status = resp.status().as_u16();
            if retry::retryable_status(status) && !last {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()));
                match after {
                    // Longer than we wait: fail now, saying when it resets.
                    Some(d) if d > self.retry.retry_after_cap => {}
                    Some(d) => {
                        tokio::time::sleep(d.max(self.retry.backoff(attempt))).await;
                        continue;
                    }
                    None => {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        continue;
                    }
                }
            }
            return Err(self.status_error(resp, repository, what).await);
        }
    }

    /// The `Authorization` value for `scope`, fetching a token if needed.
    async fn authorization(
        &self,
        repository: &str,
        scope: &str,
        refresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        let mut st = self.state.lock().await;
        let cred = self.credentials.as_ref().map(|f| &f.credential);
        let (realm, service) = match (&st.challenge, cred) {
            (None, _) => return Ok(None),
            (Some(_), Some(Credential::Bearer(t))) => {
                return Ok(Some(format!("Bearer {}", t.expose())))
            }
            (Some(Challenge::Basic), Some(Credential::Basic { username, password })) => {
                return Ok(Some(token::basic(username, password.expose())))
            }
            (Some(Challenge::Basic), None | Some(Credential::IdentityToken(_))) => return Ok(None),
            (Some(Challenge::Bearer { realm, service, .. }), _) => (realm.clone(), service.clone()),
        };
        let now = Instant::now();
        if !refresh {
            if let Some(t) = st.tokens.get(scope).filter(|t| t.is_fresh(now)) {
                return Ok(Some(format!("Bearer {}", t.value.expose())));
            }
        }
        let token = self
            .fetch_token(repository, &realm, service.as_deref(), scope)
            .await?;
        let header = format!("Bearer {}", token.value.expose());
        st.tokens.insert(scope.to_string(), token);
        Ok(Some(header))
    }

    /// As [`status_error`], without reading or quoting the body.
    pub(crate) fn status_error_quiet(
        &self,
        resp: Response,
        repository: &str,
        what: &str,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let detail = summarize_body(status, b"");
        self.error_for(
            status,
            shown_url(resp.url().as_str()),
            None,
            repository,
            what,
            detail,
        )
    }

    pub(crate) async fn status_error(
        &self,
        resp: Response,
        repository: &str,
        what: &str,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let url = shown_url(resp.url().as_str());
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self
            .read_capped(resp, &url, ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        let detail = summarize_body(status, &body);
        self.error_for(status, url, retry_after, repository, what, detail)
    }

    fn error_for(
        &self,
        status: u16,
        url: String,
        retry_after: Option<String>,
        repository: &str,
        what: &str,
        detail: String,
    ) -> RegistryError {
        let registry = self.registry.clone();
        let repository = repository.to_string();
        match status {
            401 => RegistryError::Unauthorized {
                registry,
                repository,
                credential_source: self.credentials.as_ref().map(|f| f.source.clone()),
                detail,
            },
            403 => RegistryError::Denied {
                registry,
                repository,
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
        url: &str,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&self.registry, url, &e))?;
            if out.len() + chunk.len() > max {
                return Err(RegistryError::BadResponse {
                    registry: self.registry.clone(),
                    detail: format!("{url} sent more than {max} bytes"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Where a blob answer starts: `Some(offset)` for a `206` whose
/// `Content-Range` begins at `offset` (and, when it says, ends at the
/// blob's last byte); `None` for anything else (start over).
pub fn resumed_at(resp: &Response, offset: u64, size: u64) -> Option<u64> {
    let end = size.checked_sub(1)?;
    range_answered(resp, offset, end, size).then_some(offset)
}

/// Whether `resp` is a `206` for exactly bytes `start..=end` of a blob of
/// `size` bytes (a `Content-Range` total of `*` is accepted).
pub fn range_answered(resp: &Response, start: u64, end: u64, size: u64) -> bool {
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        return false;
    }
    let Some(range) = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    parse_content_range(range) == Some((start, end, Some(size)))
        || parse_content_range(range) == Some((start, end, None))
}

/// `bytes START-END/TOTAL` (TOTAL `*`: `None`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let spec = v.strip_prefix("bytes ")?;
    let (span, total) = spec.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

/// A URL fit for messages: no query or fragment (signed download URLs
/// carry credentials there) and no user:password.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u)
            if u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            url.to_string()
        }
        Ok(mut u) => {
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or("").to_string(),
    }
}

/// Same scheme, host and port.
fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|b| {
        b.scheme() == url.scheme()
            && b.host_str() == url.host_str()
            && b.port_or_known_default() == url.port_or_known_default()
    })
}

fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .min_by_key(|c| matches!(c, Challenge::Basic))
}

/// A plain-HTTP answer counts only if it looks like the registry API (a TLS
/// server answers plain HTTP with 400, which must not be mistaken for one).
fn looks_like_registry(resp: &Response) -> bool {
    resp.headers()
        .contains_key("docker-distribution-api-version")
        || matches!(resp.status().as_u16(), 200 | 401)
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn build_http(opts: &ClientOptions) -> Result<reqwest::Client, RegistryError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("imgpull/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(opts.stall_timeout)
        .redirect(redirect_policy());
    for pem in &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Tls {
            registry: opts.registry.clone(),
            url: String::new(),
            detail: format!("cannot read CA certificate: {e}"),
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if opts.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| RegistryError::Tls {
        registry: opts.registry.clone(),
        url: String::new(),
        detail: error_chain(&e),
    })
}

/// Follow up to 10 redirects, never from HTTPS down to plain HTTP (reqwest
/// drops `Authorization` when the host or port changes, not the scheme).
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|p| p.scheme() == "https" && attempt.url().scheme() == "http");
        if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else if downgrade {
            attempt.error("refusing a redirect from HTTPS to plain HTTP")
        } else {
            attempt.follow()
        }
    })
}

/// Every message in an error's source chain, joined.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    parts.join(": ")
}

pub(crate) fn classify(registry: &str, url: &str, e: &reqwest::Error) -> RegistryError {
    // reqwest's own message repeats the URL we already name; its sources
    // say what went wrong.
    let detail = match std::error::Error::source(e) {
        Some(src) if e.is_request() || e.is_connect() => error_chain(src),
        _ => error_chain(e),
    };
    let lower = detail.to_lowercase();
    let registry = registry.to_string();
    // Signed download URLs (S3, CloudFront) carry credentials in the
    // query: never in a message.
    let shown = shown_url(url);
    let detail = if url.is_empty() {
        detail
    } else {
        detail.replace(url, &shown)
    };
    let url = shown;
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        RegistryError::Tls {
            registry,
            url,
            detail,
        }
    } else if e.is_connect() {
        RegistryError::Connect {
            registry,
            url,
            detail,
        }
    } else {
        RegistryError::Network {
            registry,
            url,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials() {
        let signed = "https://user:pw@bucket.s3.amazonaws.com/blob?X-Amz-Signature=abc&X-Amz-Security-Token=t#f";
        let shown = shown_url(signed);
        assert_eq!(shown, "https://bucket.s3.amazonaws.com/blob?…");
        assert_eq!(
            shown_url("http://h:5000/v2/x/blobs/sha256:1"),
            "http://h:5000/v2/x/blobs/sha256:1"
        );
        assert!(!shown_url("not a url?token=secret").contains("secret"));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "128.0.0.1",
            "localhost.evil.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
