//! Pull quotas (Docker Hub): read `ratelimit-limit` / `ratelimit-remaining`
//! from a manifest HEAD, which does not count, and warn before a pull would
//! run out.

use crate::oci::manifest::media;
use crate::oci::platform::Selection;
use crate::oci::reference::Reference;
use crate::progress::Reporter;
use crate::registry::endpoints::Endpoints;
use reqwest::header::HeaderMap;

/// `100;w=21600` -> (100, Some(21600)).
pub fn parse_limit(value: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = value.split(';');
    let n = parts.next()?.trim().parse().ok()?;
    let window = parts
        .filter_map(|p| p.trim().strip_prefix("w="))
        .find_map(|w| w.parse().ok());
    Some((n, window))
}

/// Manifest GETs a pull will make: the tag's document, plus one per
/// platform when it is an index.
fn gets_needed(headers: &HeaderMap, selection: &Selection) -> u64 {
    let media_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_index =
        media_type.starts_with(media::OCI_INDEX) || media_type.starts_with(media::DOCKER_LIST);
    match (is_index, selection) {
        (false, _) => 1,
        (true, Selection::List(l)) => 1 + l.len() as u64,
        (true, Selection::All) => 2,
    }
}

/// HEAD the manifest and report the quota; a failed HEAD is not an error
/// (the GET that follows will say what is wrong). Returns the HEAD's
/// headers, so the pull need not ask again for the tag's digest.
pub async fn check(
    client: &Endpoints,
    reference: &Reference,
    selection: &Selection,
    reporter: &dyn Reporter,
) -> Option<HeaderMap> {
    let headers = client
        // Advisory: one try (the pull's own manifest requests have the budget).
        .head_manifest(
            &reference.repository,
            &reference.manifest_ref(),
            &crate::registry::Tries::new(1),
        )
        .await
        .ok()?;
    report(client, &headers, selection, reporter);
    Some(headers)
}

fn report(client: &Endpoints, headers: &HeaderMap, selection: &Selection, reporter: &dyn Reporter) {
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit)
    };
    let Some((remaining, window)) = get("ratelimit-remaining") else {
        return;
    };
    let limit = get("ratelimit-limit")
        .map(|(l, _)| l.to_string())
        .unwrap_or_else(|| "?".into());
    let per = window
        .map(|w| format!(" per {}h", w / 3600))
        .unwrap_or_default();
    reporter.info(&format!(
        "{}: pull quota {remaining} of {limit} left{per}",
        client.registry()
    ));
    let needed = gets_needed(headers, selection);
    if remaining < needed {
        reporter.warn(&format!(
            "{}: this pull needs {needed} manifest requests but only {remaining} of {limit} remain{per}; \
             it may be rate limited (log in for a higher limit, or use a mirror)",
            client.registry()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limit("100;w=21600"), Some((100, Some(21600))));
        assert_eq!(parse_limit("76"), Some((76, None)));
        assert_eq!(parse_limit("x;w=1"), None);
    }
}
