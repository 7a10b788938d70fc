//! Redirects, followed by imgpull itself rather than by reqwest, so that
//! one rule holds on every hop of a chain of any length: `Authorization`
//! goes only to a request for the exact origin (scheme, host, port) it was
//! issued for. (reqwest re-applies the first request's headers on every
//! hop and compares each hop only with the one before it, so `registry →
//! CDN → CDN` carried the registry's credentials to the CDN's second URL.)
//!
//! Other rules: at most [`MAX_REDIRECTS`] hops (a loop is an error, not
//! something to retry); HTTPS is never followed down to plain HTTP unless
//! the caller allows it for content verified by digest (and then without
//! credentials, which never leave their origin anyway); 301/302/303 turn
//! into a GET unless the request was a HEAD; a request with a body (a token
//! POST) is never redirected.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION};
use reqwest::{Method, Response, Url};

/// Hops followed before giving up (as Go's net/http and reqwest's default).
pub const MAX_REDIRECTS: usize = 10;

/// Scheme, host and port: what credentials are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub fn of(url: &Url) -> Origin {
        Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    pub fn parse(url: &str) -> Option<Origin> {
        Url::parse(url).ok().map(|u| Origin::of(&u))
    }

    pub fn matches(&self, url: &Url) -> bool {
        *self == Origin::of(url)
    }
}

/// Credentials for one origin: sent to it, and to nothing else.
#[derive(Clone)]
pub struct Bound {
    pub origin: Origin,
    pub value: HeaderValue,
}

/// Whether a hop from HTTPS down to plain HTTP may be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Downgrade {
    Refuse,
    /// Content checked against its digest (blob bodies): the redirect is
    /// followed without credentials, as docker and containerd do.
    AllowVerified,
}

#[derive(Debug)]
pub enum FollowError {
    /// The request itself failed (connect, TLS, timeout) at `url`.
    Transport { url: String, error: reqwest::Error },
    /// No final answer's headers within the deadline, over all hops.
    TimedOut {
        url: String,
        after: std::time::Duration,
    },
    /// Not worth retrying: a loop, a refused downgrade, a bad `Location`.
    Refused { url: String, why: String },
}

/// Told of each hop: from, to.
pub type OnHop<'a> = dyn Fn(&Url, &Url) + Sync + 'a;

/// One request and where it goes.
pub struct Request<'a> {
    pub http: &'a reqwest::Client,
    pub method: Method,
    pub url: Url,
    /// Sent on every hop (Accept, Range …); never `Authorization`.
    pub headers: HeaderMap,
    /// Credentials, each for its own origin only.
    pub auth: &'a [Bound],
    pub body: Option<(&'static str, String)>,
    pub downgrade: Downgrade,
    /// The final answer's headers must arrive within this, counted from
    /// the first hop (so a chain of slow hops cannot multiply it).
    pub deadline: Option<std::time::Duration>,
    /// Called with each hop's URL after the first (for `-v` notes).
    pub on_hop: Option<&'a OnHop<'a>>,
}

impl Request<'_> {
    /// Send, following redirects by the rules above. The answer is the
    /// first that is not a redirect (its `url()` is where it came from).
    pub async fn send(self) -> Result<Response, FollowError> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let until = self.deadline.map(|d| (tokio::time::Instant::now() + d, d));
        // After a hop over plain HTTP, anyone on that path could send us
        // back to the registry: nothing is attached from then on.
        let mut downgraded = false;
        for hop in 0..=MAX_REDIRECTS {
            let mut req = self.http.request(method.clone(), url.clone());
            let mut headers = self.headers.clone();
            headers.remove(AUTHORIZATION);
            if let Some(b) = self
                .auth
                .iter()
                .find(|b| b.origin.matches(&url) && !downgraded)
            {
                headers.insert(AUTHORIZATION, b.value.clone());
            }
            req = req.headers(headers);
            if let Some((ctype, body)) = &self.body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *ctype)
                    .body(body.clone());
            }
            let sent = match until {
                Some((at, after)) => match tokio::time::timeout_at(at, req.send()).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(FollowError::TimedOut {
                            url: url.to_string(),
                            after,
                        })
                    }
                },
                None => req.send().await,
            };
            let resp = sent.map_err(|error| FollowError::Transport {
                url: url.to_string(),
                error,
            })?;
            let Some(next) = redirect_target(&resp) else {
                return Ok(resp);
            };
            let refused = |why: String| FollowError::Refused {
                url: url.to_string(),
                why,
            };
            let next = next.map_err(refused)?;
            if self.body.is_some() {
                return Err(refused(format!(
                    "answered {} with a redirect; a request carrying credentials in its body is not redirected",
                    resp.status()
                )));
            }
            if hop == MAX_REDIRECTS {
                return Err(refused(format!(
                    "more than {MAX_REDIRECTS} redirects (a redirect loop?)"
                )));
            }
            if url.scheme() == "https" && next.scheme() == "http" {
                downgraded = true;
                if self.downgrade == Downgrade::Refuse {
                    return Err(refused(format!(
                        "redirected from HTTPS to plain HTTP ({}); refused for this request",
                        super::shown_url(next.as_str())
                    )));
                }
            } else if !matches!(next.scheme(), "http" | "https") {
                return Err(refused(format!("redirected to a {} URL", next.scheme())));
            }
            if let Some(f) = self.on_hop {
                f(&url, &next);
            }
            let status = resp.status().as_u16();
            if (301..=303).contains(&status) && method != Method::HEAD {
                method = Method::GET;
            }
            drop(resp);
            url = next;
        }
        unreachable!("the loop returns on its last hop")
    }
}

/// `Some(target)` when `resp` is a redirect; the target resolved against
/// the request's URL (a relative `Location` is allowed).
fn redirect_target(resp: &Response) -> Option<Result<Url, String>> {
    if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let Some(loc) = resp.headers().get(LOCATION) else {
        return Some(Err(format!(
            "answered {} without a Location",
            resp.status()
        )));
    };
    let Ok(loc) = loc.to_str() else {
        return Some(Err("sent a Location that is not text".into()));
    };
    Some(
        resp.url()
            .join(loc)
            .map_err(|e| format!("sent a Location that is not a URL: {e}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let o = Origin::parse("https://Reg.example:443/v2/").unwrap();
        for same in ["https://reg.example/x", "https://REG.example:443/y?z"] {
            assert!(o.matches(&Url::parse(same).unwrap()), "{same}");
        }
        for other in [
            "http://reg.example/x",
            "https://reg.example:444/x",
            "https://cdn.reg.example/x",
            "https://reg.example.evil/x",
        ] {
            assert!(!o.matches(&Url::parse(other).unwrap()), "{other}");
        }
    }
}
