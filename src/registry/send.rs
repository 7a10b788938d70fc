//! Sending one request to the registry: authorization for each origin,
//! redirects followed hop by hop, the retry budget, challenges refreshed
//! once, rate limits waited out, statuses turned into typed errors.

use super::redirect::{self, Bound, Downgrade, FollowError, OnHop};
use super::wire::challenge_of;
use super::{classify, pull_scope, retry, shown_url, RegistryClient, RegistryError, Tries};
use crate::registry::challenge::Challenge;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::time::Duration;

/// One request to the registry, before authorization is added.
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    /// Blob content is verified by digest: a redirect from HTTPS down to
    /// plain HTTP may be followed for it (never with credentials).
    pub(super) verified: bool,
    /// The token scope it needs (`None`: pulling from the repository).
    pub(super) scope: Option<String>,
    /// What it sends (an upload, a manifest); never redirected.
    pub(super) body: Option<redirect::Payload>,
}

impl Req {
    pub(super) fn get(url: &str) -> Req {
        Req {
            method: Method::GET,
            url: url.to_string(),
            headers: HeaderMap::new(),
            verified: false,
            scope: None,
            body: None,
        }
    }

    /// A request of `method` to `url` in token scope `scope`.
    pub(super) fn to(method: Method, url: &str, scope: &str) -> Req {
        Req {
            method,
            scope: Some(scope.to_string()),
            ..Req::get(url)
        }
    }

    pub(super) fn body(mut self, payload: redirect::Payload) -> Req {
        self.body = Some(payload);
        self
    }

    pub(super) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

/// What a request has done to get authorized, over its tries.
#[derive(Default)]
struct Renewed {
    /// The registry's challenge was renewed, or deferred credentials
    /// arrived: the challenge is renewed once, and every later try asks
    /// for a fresh token.
    registry: bool,
    /// A redirect target's anonymous token was fetched (once).
    foreign: bool,
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
        let scope = req.scope.clone().unwrap_or_else(|| pull_scope(repository));
        let mut renewed = Renewed::default();
        let mut attempt = 0;
        let url = reqwest::Url::parse(&req.url).map_err(|e| RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail: format!("{}: not a URL: {e}", shown_url(&req.url)),
        })?;
        let on_hop = |from: &reqwest::Url, to: &reqwest::Url| self.note_hop(what, from, to);
        loop {
            attempt += 1;
            let last = tries.take() == 0;
            // Whether this try goes with our credentials (a later one may,
            // once deferred providers answered).
            let had = self.found().is_some();
            let Some(bounds) = self
                .bounds_or_deferred(repository, &scope, had, &mut renewed)
                .await?
            else {
                continue;
            };
            let resp = match self.follow(req, &url, &bounds, &on_hop).send().await {
                Ok(r) => r,
                Err(e) => {
                    self.after_failed_hop(e, last, attempt).await?;
                    continue;
                }
            };
            let from_registry = self.origin.matches(resp.url());
            if self
                .reauthorize(repository, &scope, &resp, from_registry, had, &mut renewed)
                .await?
            {
                continue;
            }
            if resp.status().is_success() {
                return Ok(resp);
            }
            if !last && self.wait_to_retry(&resp, what, attempt, tries).await {
                continue;
            }
            return Err(self
                .status_error(resp, repository, what, from_registry && had)
                .await);
        }
    }

    /// `req` to `url`, to be followed hop by hop with `bounds`: a redirect
    /// down to plain HTTP is followed only for content verified by digest.
    fn follow<'a>(
        &'a self,
        req: &Req,
        url: &reqwest::Url,
        bounds: &'a [Bound],
        on_hop: &'a OnHop<'a>,
    ) -> redirect::Request<'a> {
        redirect::Request {
            http: &self.http,
            method: req.method.clone(),
            url: url.clone(),
            headers: req.headers.clone(),
            auth: bounds,
            body: req.body.clone(),
            downgrade: if req.verified {
                Downgrade::AllowVerified
            } else {
                Downgrade::Refuse
            },
            deadline: Some(self.pace.window),
            on_hop: Some(on_hop),
        }
    }

    /// The `-v` note for a hop from HTTPS down to plain HTTP.
    fn note_hop(&self, what: &str, from: &reqwest::Url, to: &reqwest::Url) {
        if from.scheme() == "https" && to.scheme() == "http" {
            self.notes.say(&format!(
                "{what}: following a redirect from HTTPS to plain HTTP ({}); \
                 no credentials go there and the content is checked against its digest",
                shown_url(to.as_str())
            ));
        }
    }

    /// The authorization of this try; `None`: the token server refused us
    /// anonymously (Artifact Registry answers 403) and the costly providers,
    /// asked once, brought credentials to try again with.
    async fn bounds_or_deferred(
        &self,
        repository: &str,
        scope: &str,
        had: bool,
        renewed: &mut Renewed,
    ) -> Result<Option<Vec<Bound>>, RegistryError> {
        match self.bounds(repository, scope, renewed.registry).await {
            Ok(b) => Ok(Some(b)),
            Err(e @ (RegistryError::Unauthorized { .. } | RegistryError::Denied { .. })) => {
                if self.ask_deferred(repository, had).await? {
                    renewed.registry = true;
                    return Ok(None);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// After a failed hop: `Ok` once the backoff is waited out, when the
    /// failure may heal and this was not the last try; else its error
    /// (refusals and TLS failures do not heal by themselves).
    async fn after_failed_hop(
        &self,
        e: FollowError,
        last: bool,
        attempt: u32,
    ) -> Result<(), RegistryError> {
        let err = follow_error(&self.registry, e);
        if last || !err.is_transient() {
            return Err(err);
        }
        tokio::time::sleep(self.retry.backoff(attempt)).await;
        Ok(())
    }

    /// Whether a refusal is worth trying again with new authorization: a
    /// new challenge from the registry (once), an anonymous token for a
    /// redirect target that asks for one (once), or credentials from the
    /// deferred providers after an anonymous refusal.
    async fn reauthorize(
        &self,
        repository: &str,
        scope: &str,
        resp: &Response,
        from_registry: bool,
        had: bool,
        renewed: &mut Renewed,
    ) -> Result<bool, RegistryError> {
        let status = resp.status();
        // Only the registry itself may send us to a token realm with our
        // credentials: a 401 from a redirect target (another registry,
        // blob storage) gets an anonymous token, for that target only.
        if status == StatusCode::UNAUTHORIZED && !renewed.registry && from_registry {
            if let Some(c) = challenge_of(resp.headers()) {
                self.new_challenge(c, scope).await;
                renewed.registry = true;
                return Ok(true);
            }
        }
        if status == StatusCode::UNAUTHORIZED && !renewed.foreign && !from_registry {
            if let Some(c @ Challenge::Bearer { .. }) = challenge_of(resp.headers()) {
                self.foreign_token(repository, resp.url(), c, scope).await?;
                renewed.foreign = true;
                return Ok(true);
            }
        }
        // Refused anonymously: now ask the costly providers, once.
        if matches!(status.as_u16(), 401 | 403)
            && from_registry
            && self.ask_deferred(repository, had).await?
        {
            renewed.registry = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// For a retryable status (a try being left): `true` once the wait
    /// before the next try is over — `Retry-After` (at least the backoff),
    /// seconds for a 429 without it, else the backoff. `false`: the status
    /// is final, or `Retry-After` is longer than we wait (fail now, saying
    /// when it resets).
    pub(super) async fn wait_to_retry(
        &self,
        resp: &Response,
        what: &str,
        attempt: u32,
        tries: &Tries,
    ) -> bool {
        let status = resp.status().as_u16();
        if !retry::retryable_status(status) {
            return false;
        }
        let wait = match retry_after(resp) {
            Some(d) if d > self.retry.retry_after_cap => return false,
            Some(d) => d.max(self.retry.backoff(attempt)),
            None if status == 429 => self.rate_limit_wait(what, attempt, tries),
            None => self.retry.backoff(attempt),
        };
        tokio::time::sleep(wait).await;
        true
    }

    /// Rate limited without a word on when: the wait (seconds, not
    /// milliseconds), said in a warning.
    fn rate_limit_wait(&self, what: &str, attempt: u32, tries: &Tries) -> Duration {
        let wait = self.retry.rate_backoff(attempt);
        self.notes.warn(&format!(
            "{}: rate limited (429) on {what}, without Retry-After; waiting {:.0} s before try {} of {}",
            self.registry,
            wait.as_secs_f64(),
            attempt + 1,
            attempt + tries.left()
        ));
        wait
    }
}

/// The `Retry-After` of an answer, as a wait from now.
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()))
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
