//! Free functions about the wire: ranges, URLs fit for messages, error
//! classification, and the HTTP client every request of a registry shares.

use super::{ClientOptions, RegistryError};
use crate::registry::challenge::{parse_challenge, Challenge};
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use std::time::Duration;

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

pub(super) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .min_by_key(|c| matches!(c, Challenge::Basic))
}

/// A plain-HTTP answer counts only if it looks like the registry API (a TLS
/// server answers plain HTTP with 400, which must not be mistaken for one).
pub(super) fn looks_like_registry(resp: &Response) -> bool {
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

pub(super) fn build_http(opts: &ClientOptions) -> Result<reqwest::Client, RegistryError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("imgpull/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(opts.stall_timeout)
        // Redirects are followed by `redirect`, hop by hop.
        .redirect(reqwest::redirect::Policy::none());
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
    // A body cut short is a lost connection, whatever layer noticed it (a
    // TLS peer closing without close_notify is a reset, not a TLS problem):
    // it resumes. TLS failures are those of setting the connection up.
    let tls = lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake");
    if tls && !e.is_body() && !e.is_decode() && !lower.contains("close_notify") {
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
