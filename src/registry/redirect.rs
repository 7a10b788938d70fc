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
use reqwest::{Method, Response, StatusCode, Url};

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

/// A request body, made anew for each try (a stream is read once).
#[derive(Clone)]
pub struct Payload {
    pub content_type: &'static str,
    /// Sent as `Content-Length` (`None`: chunked transfer encoding).
    pub len: Option<u64>,
    make: std::sync::Arc<dyn Fn() -> reqwest::Body + Send + Sync>,
    /// For a streamed body: when its last piece was taken. The deadline
    /// then counts from it (a big upload on a slow link is not cut for
    /// taking long, only for standing still).
    pub taken: Option<Taken>,
}

/// When a streamed body's last piece was taken by the connection.
#[derive(Clone, Default)]
pub struct Taken(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Taken {
    fn base() -> tokio::time::Instant {
        static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(tokio::time::Instant::now)
    }

    /// A piece was taken now.
    pub fn touch(&self) {
        let ms = Self::base().elapsed().as_millis() as u64;
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the last piece was taken.
    fn idle(&self) -> std::time::Duration {
        let then = self.0.load(std::sync::atomic::Ordering::Relaxed);
        let now = Self::base().elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(then))
    }
}

impl Payload {
    /// Bytes in memory.
    pub fn bytes(content_type: &'static str, bytes: bytes::Bytes) -> Payload {
        Payload {
            content_type,
            len: Some(bytes.len() as u64),
            make: std::sync::Arc::new(move || reqwest::Body::from(bytes.clone())),
            taken: None,
        }
    }

    /// A body of `len` bytes made by `make` each time it is sent, which
    /// touches `taken` as its pieces are taken.
    pub fn stream(
        content_type: &'static str,
        len: u64,
        taken: Taken,
        make: impl Fn() -> reqwest::Body + Send + Sync + 'static,
    ) -> Payload {
        Payload {
            content_type,
            len: Some(len),
            make: std::sync::Arc::new(make),
            taken: Some(taken),
        }
    }
}

/// `send`, unless the body stands still for `window` (nothing taken, or
/// no answer that long after the last piece): then `None`.
async fn watched(
    send: impl std::future::Future<Output = Result<Response, reqwest::Error>>,
    taken: &Taken,
    window: std::time::Duration,
) -> Option<Result<Response, reqwest::Error>> {
    tokio::pin!(send);
    let tick = std::time::Duration::from_millis(250).min(window);
    loop {
        tokio::select! {
            r = &mut send => return Some(r),
            _ = tokio::time::sleep(tick) => {
                if taken.idle() > window {
                    return None;
                }
            }
        }
    }
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
    pub body: Option<Payload>,
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
            let resp = self.hop(&method, &url, until, downgraded).await?;
            let Some(next) = redirect_target(&resp) else {
                return Ok(resp);
            };
            let next = next.map_err(|why| refused(&url, why))?;
            if self.may_follow(hop, &url, &next, resp.status())? {
                downgraded = true;
            }
            if let Some(f) = self.on_hop {
                f(&url, &next);
            }
            method = method_after(method, resp.status().as_u16());
            drop(resp);
            url = next;
        }
        unreachable!("the loop returns on its last hop")
    }

    /// One hop: `url` asked with [`Self::headers_for`] (and the body, if
    /// any), its answer due by the deadline of the whole chain.
    async fn hop(
        &self,
        method: &Method,
        url: &Url,
        until: Option<(tokio::time::Instant, std::time::Duration)>,
        downgraded: bool,
    ) -> Result<Response, FollowError> {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .headers(self.headers_for(url, downgraded));
        if let Some(p) = &self.body {
            // The caller's own type (a manifest's media type) wins.
            if !self.headers.contains_key(reqwest::header::CONTENT_TYPE) {
                req = req.header(reqwest::header::CONTENT_TYPE, p.content_type);
            }
            if let Some(len) = p.len {
                req = req.header(reqwest::header::CONTENT_LENGTH, len);
            }
            req = req.body((p.make)());
        }
        let taken = self.body.as_ref().and_then(|p| p.taken.clone());
        let sent = match (until, taken) {
            (Some((_, after)), Some(taken)) => {
                taken.touch();
                match watched(req.send(), &taken, after).await {
                    Some(r) => r,
                    None => {
                        return Err(FollowError::TimedOut {
                            url: url.to_string(),
                            after,
                        })
                    }
                }
            }
            (Some((at, after)), None) => match tokio::time::timeout_at(at, req.send()).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(FollowError::TimedOut {
                        url: url.to_string(),
                        after,
                    })
                }
            },
            (None, _) => req.send().await,
        };
        sent.map_err(|error| FollowError::Transport {
            url: url.to_string(),
            error,
        })
    }

    /// The headers of a hop to `url`: the caller's, never with their own
    /// `Authorization`; ours only if bound to exactly `url`'s origin, and
    /// none once a hop went over plain HTTP.
    fn headers_for(&self, url: &Url, downgraded: bool) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.remove(AUTHORIZATION);
        if let Some(b) = self
            .auth
            .iter()
            .find(|b| b.origin.matches(url) && !downgraded)
        {
            headers.insert(AUTHORIZATION, b.value.clone());
        }
        headers
    }

    /// Whether the redirect from `url` to `next` may be followed: refused
    /// for a request with a body, past [`MAX_REDIRECTS`], down to plain
    /// HTTP unless allowed, or to a scheme other than HTTP(S). `Ok(true)`:
    /// followed, but it is a downgrade to plain HTTP.
    fn may_follow(
        &self,
        hop: usize,
        url: &Url,
        next: &Url,
        status: StatusCode,
    ) -> Result<bool, FollowError> {
        if self.body.is_some() {
            return Err(refused(url, format!(
                "answered {status} with a redirect; a request carrying credentials in its body is not redirected"
            )));
        }
        if hop == MAX_REDIRECTS {
            return Err(refused(
                url,
                format!("more than {MAX_REDIRECTS} redirects (a redirect loop?)"),
            ));
        }
        if url.scheme() == "https" && next.scheme() == "http" {
            if self.downgrade == Downgrade::Refuse {
                return Err(refused(
                    url,
                    format!(
                        "redirected from HTTPS to plain HTTP ({}); refused for this request",
                        super::shown_url(next.as_str())
                    ),
                ));
            }
            return Ok(true);
        }
        if !matches!(next.scheme(), "http" | "https") {
            return Err(refused(
                url,
                format!("redirected to a {} URL", next.scheme()),
            ));
        }
        Ok(false)
    }
}

/// A redirect from `url` that is not followed, and why.
fn refused(url: &Url, why: String) -> FollowError {
    FollowError::Refused {
        url: url.to_string(),
        why,
    }
}

/// The method of the next hop: 301, 302 and 303 turn it into a GET,
/// unless it was a HEAD.
fn method_after(method: Method, status: u16) -> Method {
    if (301..=303).contains(&status) && method != Method::HEAD {
        Method::GET
    } else {
        method
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

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn request<'a>(http: &'a reqwest::Client, auth: &'a [Bound]) -> Request<'a> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("caller's"));
        Request {
            http,
            method: Method::GET,
            url: url("https://reg.example/v2/"),
            headers,
            auth,
            body: None,
            downgrade: Downgrade::Refuse,
            deadline: None,
            on_hop: None,
        }
    }

    #[test]
    fn authorization_goes_to_its_own_origin_only() {
        let http = reqwest::Client::new();
        let auth = [Bound {
            origin: Origin::parse("https://reg.example").unwrap(),
            value: HeaderValue::from_static("Bearer ours"),
        }];
        let req = request(&http, &auth);
        let sent = |to: &str, downgraded| {
            req.headers_for(&url(to), downgraded)
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(sent("https://reg.example/v2/x", false), ["Bearer ours"]);
        assert!(sent("https://cdn.example/x", false).is_empty());
        assert!(sent("http://reg.example/x", false).is_empty());
        assert!(
            sent("https://reg.example/v2/x", true).is_empty(),
            "nothing after a plain-HTTP hop"
        );
    }

    #[test]
    fn redirects_followed_by_the_rules() {
        let http = reqwest::Client::new();
        let mut req = request(&http, &[]);
        let (https, http_url) = (url("https://a.example/"), url("http://b.example/"));
        let found = StatusCode::FOUND;
        assert!(!req.may_follow(0, &https, &https, found).unwrap());
        assert!(req.may_follow(0, &https, &http_url, found).is_err());
        assert!(req
            .may_follow(MAX_REDIRECTS, &https, &https, found)
            .is_err());
        assert!(req
            .may_follow(0, &https, &url("ftp://c.example/"), found)
            .is_err());
        req.downgrade = Downgrade::AllowVerified;
        assert!(req.may_follow(0, &https, &http_url, found).unwrap());
        req.body = Some(Payload::bytes("text/plain", "secret".into()));
        assert!(req.may_follow(0, &https, &https, found).is_err());
    }

    #[test]
    fn see_other_and_friends_turn_into_get() {
        for status in [301, 302, 303] {
            assert_eq!(method_after(Method::POST, status), Method::GET);
            assert_eq!(method_after(Method::HEAD, status), Method::HEAD);
        }
        assert_eq!(method_after(Method::HEAD, 307), Method::HEAD);
        assert_eq!(method_after(Method::POST, 308), Method::POST);
    }

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
