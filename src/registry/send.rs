//! Sending one request to the registry: authorization for each origin,
//! redirects followed hop by hop, the retry budget, challenges refreshed
//! once, rate limits waited out, statuses turned into typed errors.

use super::redirect::{self, Downgrade, FollowError};
use super::wire::challenge_of;
use super::{classify, pull_scope, retry, shown_url, RegistryClient, RegistryError, Tries};
use crate::registry::challenge::Challenge;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};

/// One request to the registry, before authorization is added.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    /// Blob content is verified by digest: a redirect from HTTPS down to
    /// plain HTTP may be followed for it (never with credentials).
    pub(super) verified: bool,
}

impl Req {
    pub(super) fn get(url: &str) -> Req {
        Req {
            method: Method::GET,
            url: url.to_string(),
            headers: HeaderMap::new(),
            verified: false,
        }
    }

    pub(super) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

impl RegistryClient {
    /// Send with authorization; on 401 refresh the challenge and token once.
    /// Non-success statuses become typed errors. Each try takes from `tries`.
    pub(super) async fn send(
        &self,
        repository: &str,
        what: &str,
        req: &Req,
        tries: &Tries,
    ) -> Result<Response, RegistryError> {
        let scope = pull_scope(repository);
        let mut refreshed = false;
        let mut attempt = 0;
        let url = reqwest::Url::parse(&req.url).map_err(|e| RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail: format!("{}: not a URL: {e}", shown_url(&req.url)),
        })?;
        let on_hop = |from: &reqwest::Url, to: &reqwest::Url| {
            if from.scheme() == "https" && to.scheme() == "http" {
                self.notes.say(&format!(
                    "{what}: following a redirect from HTTPS to plain HTTP ({}); \
                     no credentials go there and the content is checked against its digest",
                    shown_url(to.as_str())
                ));
            }
        };
        let mut foreign_refreshed = false;
        loop {
            attempt += 1;
            let last = tries.take() == 0;
            // Whether this try goes with our credentials (a later one may,
            // once deferred providers answered).
            let had = self.found().is_some();
            let bounds = match self.bounds(repository, &scope, refreshed).await {
                Ok(b) => b,
                // The token server refused us anonymously (Artifact
                // Registry answers 403): ask the costly providers, once.
                Err(e @ (RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                    if self.ask_deferred(repository, had).await? {
                        refreshed = true;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let follow = redirect::Request {
                http: &self.http,
                method: req.method.clone(),
                url: url.clone(),
                headers: req.headers.clone(),
                auth: &bounds,
                body: None,
                downgrade: if req.verified {
                    Downgrade::AllowVerified
                } else {
                    Downgrade::Refuse
                },
                deadline: Some(self.pace.window),
                on_hop: Some(&on_hop),
            };
            let resp = match follow.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = follow_error(&self.registry, e);
                    // Refusals and TLS failures do not heal by themselves.
                    let transient = err.is_transient();
                    if last || !transient {
                        return Err(err);
                    }
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    continue;
                }
            };
            let status = resp.status();
            // Only the registry itself may send us to a token realm with our
            // credentials: a 401 from a redirect target (another registry,
            // blob storage) gets an anonymous token, for that target only.
            let from_registry = self.origin.matches(resp.url());
            if status == StatusCode::UNAUTHORIZED && !refreshed && from_registry {
                if let Some(c) = challenge_of(resp.headers()) {
                    self.new_challenge(c, &scope).await;
                    refreshed = true;
                    continue;
                }
            }
            if status == StatusCode::UNAUTHORIZED && !foreign_refreshed && !from_registry {
                if let Some(c @ Challenge::Bearer { .. }) = challenge_of(resp.headers()) {
                    self.foreign_token(repository, resp.url(), c, &scope)
                        .await?;
                    foreign_refreshed = true;
                    continue;
                }
            }
            // Refused anonymously: now ask the costly providers, once.
            if matches!(status.as_u16(), 401 | 403)
                && from_registry
                && self.ask_deferred(repository, had).await?
            {
                refreshed = true;
                continue;
            }
            if status.is_success() {
                return Ok(resp);
            }
            let status = status.as_u16();
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
                    // Rate limited without a word on when: back off for
                    // seconds, not milliseconds, and say so.
                    None if status == 429 => {
                        let wait = self.retry.rate_backoff(attempt);
                        self.notes.warn(&format!(
                            "{}: rate limited (429) on {what}, without Retry-After; waiting {:.0} s before try {} of {}",
                            self.registry,
                            wait.as_secs_f64(),
                            attempt + 1,
                            attempt + tries.left()
                        ));
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        continue;
                    }
                }
            }
            return Err(self
                .status_error(resp, repository, what, from_registry && had)
                .await);
        }
    }
}

/// A failed hop as a registry error: transport failures are classified
/// (and may be retried), refusals are final.
pub(super) fn follow_error(registry: &str, e: FollowError) -> RegistryError {
    match e {
        FollowError::Transport { url, error } => classify(registry, &url, &error),
        FollowError::TimedOut { url, after } => RegistryError::Network {
            registry: registry.to_string(),
            url: shown_url(&url),
            detail: format!(
                "no answer within {} s (stall_timeout), redirects included",
                after.as_secs()
            ),
        },
        FollowError::Refused { url, why } => RegistryError::BadResponse {
            registry: registry.to_string(),
            detail: format!("{} {why}", shown_url(&url)),
        },
    }
}
