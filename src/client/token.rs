//! Bearer tokens from a challenge's realm: a GET with optional Basic
//! credentials, or — for an identity (refresh) token from `docker login`
//! — an OAuth2 `refresh_token` POST, as docker does.

use super::{classify, is_loopback, RegistryClient, RegistryError};
use crate::auth::{Token, TokenResponse};
use crate::credentials::Credential;
use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use std::time::Instant;

pub(super) fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

impl RegistryClient {
    pub(super) async fn fetch_token(
        &self,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let bad = |detail: String| RegistryError::BadResponse {
            registry: self.registry.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| bad(format!("token realm {realm:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(format!("token realm {realm:?} is not HTTP(S)")));
        }
        let credential = self.credentials.as_ref().map(|f| &f.credential);
        if credential.is_some() && url.scheme() == "http" {
            let realm_host = url.host_str().unwrap_or("");
            if !self.insecure && !is_loopback(realm_host) {
                return Err(bad(format!(
                    "token realm {realm} is plain HTTP; refusing to send credentials \
                     (mark the registry `insecure` if this is intended)"
                )));
            }
        }
        let req = match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "imgpull"),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                // No redirects for a body holding a refresh token.
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| bad(format!("HTTP client: {e}")))?
                    .post(url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let req = self.http.get(url.clone());
                match other {
                    Some(Credential::Basic { username, password }) => {
                        req.header(AUTHORIZATION, basic(username, password.expose()))
                    }
                    _ => req,
                }
            }
        };
        let what = format!("token for {scope}");
        // Token requests are idempotent: retried like every other request.
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts.max(1);
            let Some(this) = req.try_clone() else {
                break req
                    .send()
                    .await
                    .map_err(|e| classify(&self.registry, realm, &e))?;
            };
            match this.send().await {
                Ok(r) if last || !super::retry::retryable_status(r.status().as_u16()) => break r,
                Ok(_) => {}
                Err(e) if last => return Err(classify(&self.registry, realm, &e)),
                Err(_) => {}
            }
            tokio::time::sleep(self.retry.backoff(attempt)).await;
        };
        if !resp.status().is_success() {
            // Not echoing the body: a token server's error may quote what
            // it was sent.
            return Err(self.status_error_quiet(resp, repository, &what));
        }
        let body = self.read_capped(resp, realm, 1 << 20).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("token server answered invalid JSON: {e}")))?;
        Token::from_response(parsed, Instant::now())
            .ok_or_else(|| bad("token server answered without a token".to_string()))
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
