//! A fault-injecting proxy in front of a real registry: forwards requests
//! (uploads too, with `Location` pointed back at the proxy) and, when
//! told, corrupts the body of one blob or cuts an upload.

use super::http::{serve, Request, Response, Server};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub enum Fault {
    #[default]
    None,
    /// Flip one byte in the body of blob `digest` (same length).
    CorruptBlob(String),
    /// Answer blob GETs with `307` to the same path under this base URL (a
    /// CDN on another host).
    RedirectBlobs(String),
    /// The same for manifest GETs and HEADs too.
    RedirectAll(String),
    /// Answer blob and manifest GETs with `status` (and `Retry-After`)
    /// while the counter is above zero.
    Status {
        status: u16,
        retry_after: Option<String>,
        times: Arc<AtomicUsize>,
    },
    /// Close the connection after `after` bytes of blob `digest`'s body,
    /// while the counter is above zero.
    Reset {
        digest: String,
        after: usize,
        times: Arc<AtomicUsize>,
    },
    /// Send `after` bytes of blob `digest`'s body, then stall (no more
    /// bytes, connection open), while the counter is above zero.
    Stall {
        digest: String,
        after: usize,
        times: Arc<AtomicUsize>,
    },
    /// Answer blob `digest` with half its body and a matching
    /// Content-Length (a clean but short response), while the counter is
    /// above zero.
    Truncate {
        digest: String,
        times: Arc<AtomicUsize>,
    },
    /// Answer blob `digest` with half its body, announcing no length, and
    /// close: a clean end, too early, while the counter is above zero.
    TruncateUnsized {
        digest: String,
        times: Arc<AtomicUsize>,
    },
    /// Like `Reset`, but only for a request of a range that ends before
    /// the blob does (a piece of a chunked download, not a stream to the
    /// end).
    ResetPiece {
        digest: String,
        after: usize,
        times: Arc<AtomicUsize>,
    },
    /// Close the connection halfway through every blob body.
    ResetEveryBlob,
    /// Flip a byte of blob `digest` while the counter is above zero.
    CorruptTimes {
        digest: String,
        times: Arc<AtomicUsize>,
    },
    /// Close the connection on the `nth` (1-based) blob upload PATCH,
    /// before the registry sees any of it (a link cut between chunks).
    DropPatch { nth: usize, seen: Arc<AtomicUsize> },
    /// On the `nth` blob upload PATCH, forward only the first half of its
    /// bytes (the registry keeps them), then close the connection.
    HalfPatch { nth: usize, seen: Arc<AtomicUsize> },
    /// Send blob bodies at about this many bytes per second.
    SlowBlobs(u64),
    /// Add Docker Hub's quota headers (`ratelimit-limit: 100;w=21600`,
    /// `ratelimit-remaining: N;w=21600`) to manifest responses.
    RateLimit(u64),
    /// Replace the `Docker-Content-Digest` header of manifest responses.
    WrongDigestHeader(String),
    /// Each bearer token works for `after` requests, then is answered with
    /// 401 and this `WWW-Authenticate` (tokens that expire after K uses).
    ExpireTokens {
        after: usize,
        challenge: String,
        uses: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    },
    /// Answer blob requests with 401 and this `WWW-Authenticate` while the
    /// counter is above zero (a token that expired mid-pull).
    Unauthorized {
        challenge: String,
        times: Arc<AtomicUsize>,
    },
}

/// A blob GET seen: path, `Range` header, status answered.
pub type BlobGet = (String, Option<String>, u16);

pub struct Proxy {
    pub server: Server,
    pub fault: Arc<Mutex<Fault>>,
    /// (method, path, had Authorization) of every request seen.
    pub seen: Arc<Mutex<Vec<(String, String, bool)>>>,
    /// (path, Range header, status answered) of every blob GET.
    pub ranges: Arc<Mutex<Vec<BlobGet>>>,
    /// Drop `Range` headers (a server that does not resume).
    pub ignore_range: Arc<Mutex<bool>>,
    /// Send every blob body at about this many bytes per second (a slow
    /// link per connection), whatever the fault.
    pub throttle: Arc<Mutex<Option<u64>>>,
}

impl Proxy {
    /// `127.0.0.1:PORT` — a loopback registry name, so plain HTTP.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.addr.port())
    }
}

pub async fn start(upstream: String, fault: Fault) -> Proxy {
    let fault = Arc::new(Mutex::new(fault));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let ignore_range = Arc::new(Mutex::new(false));
    let (f, log, range_log) = (fault.clone(), seen.clone(), ranges.clone());
    let ignore = ignore_range.clone();
    let throttle = Arc::new(Mutex::new(None));
    let slow = throttle.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let server = serve(move |req: Request| {
        log.lock().unwrap().push((
            req.method.clone(),
            req.path().to_string(),
            req.header("authorization").is_some(),
        ));
        let http = http.clone();
        let upstream = upstream.clone();
        let fault = f.lock().unwrap().clone();
        let range_log = range_log.clone();
        let slow = *slow.lock().unwrap();
        let mut req = req;
        if *ignore.lock().unwrap() {
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
        }
        async move {
            let blob = (req.method == "GET" && req.path().contains("/blobs/")).then(|| {
                (
                    req.path().to_string(),
                    req.header("range").map(str::to_string),
                )
            });
            let mut resp = forward(&http, &upstream, req, fault).await;
            if blob.is_some() && resp.throttle.is_none() {
                resp.throttle = slow;
            }
            if let Some((path, range)) = blob {
                range_log.lock().unwrap().push((path, range, resp.status));
            }
            resp
        }
    })
    .await;
    Proxy {
        server,
        fault,
        seen,
        ranges,
        ignore_range,
        throttle,
    }
}

async fn forward(http: &reqwest::Client, upstream: &str, req: Request, fault: Fault) -> Response {
    if let Fault::RedirectBlobs(base) = &fault {
        if req.method == "GET" && req.path().contains("/blobs/") {
            return Response::new(307, "").header("Location", &format!("{base}{}", req.target));
        }
    }
    if let Fault::RedirectAll(base) = &fault {
        if req.path().contains("/blobs/") || req.path().contains("/manifests/") {
            return Response::new(307, "").header("Location", &format!("{base}{}", req.target));
        }
    }
    let take = |times: &Arc<AtomicUsize>| {
        times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    if let Fault::Status {
        status,
        retry_after,
        times,
    } = &fault
    {
        let target = req.path().contains("/blobs/") || req.path().contains("/manifests/");
        if target && req.method == "GET" && take(times) {
            let mut r = Response::new(
                *status,
                r#"{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}"#,
            );
            if let Some(a) = retry_after {
                r = r.header("Retry-After", a);
            }
            return r;
        }
    }
    if let Fault::Unauthorized { challenge, times } = &fault {
        let is_blob = req.path().contains("/blobs/");
        if is_blob
            && times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Response::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#,
            )
            .header("WWW-Authenticate", challenge);
        }
    }
    if let Fault::ExpireTokens {
        after,
        challenge,
        uses,
    } = &fault
    {
        if let Some(token) = req.header("authorization") {
            let mut uses = uses.lock().unwrap();
            let n = uses.entry(token.to_string()).or_insert(0);
            *n += 1;
            if *n > *after {
                return Response::new(
                    401,
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#,
                )
                .header("WWW-Authenticate", challenge);
            }
        }
    }
    if let Fault::DropPatch { nth, seen } = &fault {
        if req.method == "PATCH" && seen.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            return Response::abort();
        }
    }
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut up = http.request(method, format!("{upstream}{}", req.target));
    for (k, v) in &req.headers {
        if [
            "authorization",
            "accept",
            "range",
            "user-agent",
            "content-type",
            "content-range",
        ]
        .contains(&k.to_ascii_lowercase().as_str())
        {
            up = up.header(k, v);
        }
    }
    if !["GET", "HEAD"].contains(&req.method.as_str()) {
        up = up.body(req.body.clone());
    }
    if let Fault::HalfPatch { nth, seen } = &fault {
        if req.method == "PATCH" && seen.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            let method = reqwest::Method::PATCH;
            let mut half = http.request(method, format!("{upstream}{}", req.target));
            for (k, v) in &req.headers {
                if ["authorization", "content-type"].contains(&k.to_ascii_lowercase().as_str()) {
                    half = half.header(k, v);
                }
            }
            let _ = half
                .body(req.body[..req.body.len() / 2].to_vec())
                .send()
                .await;
            return Response::abort();
        }
    }
    let here = req.header("host").map(|h| format!("http://{h}"));
    let resp = match up.send().await {
        Ok(r) => r,
        Err(e) => return Response::new(502, format!("proxy: {e}")),
    };
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !["transfer-encoding", "connection"].contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    // Upload sessions continue through the proxy.
    if let Some(here) = &here {
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case("location") {
                *v = v.replace(upstream, here);
            }
        }
    }
    if let Fault::RateLimit(n) = &fault {
        if req.path().contains("/manifests/") {
            headers.push(("ratelimit-limit".into(), "100;w=21600".into()));
            headers.push(("ratelimit-remaining".into(), format!("{n};w=21600")));
        }
    }
    if let Fault::WrongDigestHeader(d) = &fault {
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case("docker-content-digest") && req.path().contains("/manifests/")
            {
                *v = d.clone();
            }
        }
    }
    let mut body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    let mut cut_at = None;
    if let Fault::Reset {
        digest,
        after,
        times,
    } = &fault
    {
        if req.path().ends_with(&format!("/blobs/{digest}")) && body.len() > *after && take(times) {
            cut_at = Some(*after);
        }
    }
    if let Fault::Truncate { digest, times } = &fault {
        if req.path().ends_with(&format!("/blobs/{digest}")) && body.len() > 1 && take(times) {
            body.truncate(body.len() / 2);
        }
    }
    let mut unsized_body = false;
    if let Fault::TruncateUnsized { digest, times } = &fault {
        if req.path().ends_with(&format!("/blobs/{digest}")) && body.len() > 1 && take(times) {
            body.truncate(body.len() / 2);
            unsized_body = true;
        }
    }
    if let Fault::ResetPiece {
        digest,
        after,
        times,
    } = &fault
    {
        let piece = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-range"))
            .and_then(|(_, v)| {
                let (span, total) = v.strip_prefix("bytes ")?.split_once('/')?;
                let end: u64 = span.split_once('-')?.1.parse().ok()?;
                Some(end + 1 < total.parse::<u64>().ok()?)
            })
            .unwrap_or(false);
        if piece
            && req.path().ends_with(&format!("/blobs/{digest}"))
            && body.len() > *after
            && take(times)
        {
            cut_at = Some(*after);
        }
    }
    let mut stall_at = None;
    if let Fault::Stall {
        digest,
        after,
        times,
    } = &fault
    {
        if req.path().ends_with(&format!("/blobs/{digest}")) && body.len() > *after && take(times) {
            stall_at = Some(*after);
        }
    }
    if let Fault::ResetEveryBlob = &fault {
        if req.path().contains("/blobs/") && body.len() > 1 {
            cut_at = Some(body.len() / 2);
        }
    }
    if let Fault::CorruptTimes { digest, times } = &fault {
        if req.path().ends_with(&format!("/blobs/{digest}")) && !body.is_empty() && take(times) {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
    }
    if let Fault::CorruptBlob(d) = &fault {
        if req.path().ends_with(&format!("/blobs/{d}")) && !body.is_empty() {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
    }
    let throttle = match &fault {
        Fault::SlowBlobs(rate) if req.path().contains("/blobs/") => Some(*rate),
        _ => None,
    };
    Response {
        status,
        headers,
        body,
        throttle,
        cut_at,
        stall_at,
        unsized_body,
        drip: None,
        hang: false,
        chunked: false,
        delay: None,
        abort: false,
    }
}
