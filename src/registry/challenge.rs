//! Registry authentication: `WWW-Authenticate` challenges and bearer tokens.

use crate::util::secret::Secret;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the registry asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry named, if any (it may be wider than ours).
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value; with several challenges, Bearer wins
/// over Basic. Unknown schemes are ignored. `None` when nothing usable.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut found = Vec::new();
    for (scheme, params) in split_challenges(header) {
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                let Some(realm) = params.get("realm").filter(|r| !r.is_empty()) else {
                    continue;
                };
                let realm = realm.clone();
                found.push(Challenge::Bearer {
                    realm,
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                });
            }
            "basic" => found.push(Challenge::Basic),
            _ => {}
        }
    }
    found.sort_by_key(|c| matches!(c, Challenge::Basic));
    found.into_iter().next()
}

/// `Scheme k=v, k="v", Scheme2 k=v` -> [(scheme, {k: v})]. Parameter names
/// are lowercased; quoted values may hold commas and `\"` escapes.
fn split_challenges(s: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let is_tok = |c: u8| !c.is_ascii_whitespace() && c != b',' && c != b'=' && c != b'"';
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_tok(b[i]) {
            i += 1;
        }
        let word = &s[start..i];
        if word.is_empty() {
            i += 1; // stray '=' or '"': skip it
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            // A parameter of the current challenge.
            i = j + 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                s[vs..i].to_string()
            };
            if let Some((_, params)) = out.last_mut() {
                params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push((word.to_string(), BTreeMap::new()));
        }
    }
    out
}

/// The JSON a token server answers with.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: Secret,
    pub expires: Instant,
}

impl Token {
    /// Tokens without `expires_in` live 60 s (the distribution spec's
    /// default); we stop 10% early (at least 5 s) to avoid using a token
    /// in the second it dies.
    pub fn from_response(r: TokenResponse, now: Instant) -> Option<Token> {
        let value = r.token.filter(|t| !t.is_empty()).or(r.access_token)?;
        if value.is_empty() {
            return None;
        }
        // Capped at a day: a hostile `expires_in` must not overflow `Instant`.
        let life = r.expires_in.unwrap_or(60).clamp(1, 86_400);
        let margin = (life / 10).max(5).min(life - 1);
        Some(Token {
            value: Secret::new(value),
            expires: now + Duration::from_secs(life - margin),
        })
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/nginx:pull".into()),
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            (r#"basic realm=x"#, Some(Challenge::Basic)),
            (
                r#"Basic realm="x", Bearer realm="http://h/t", service=reg"#,
                Some(Challenge::Bearer {
                    realm: "http://h/t".into(),
                    service: Some("reg".into()),
                    scope: None,
                }),
            ),
            (
                r#"BEARER REALM = "http://a/t?x=1,2" , scope="repository:a:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "http://a/t?x=1,2".into(),
                    service: None,
                    scope: Some("repository:a:pull,push".into()),
                }),
            ),
            (r#"Bearer service="x""#, None),
            (r#"Negotiate"#, None),
            (r#""#, None),
            (r#"=,"=""""#, None),
            (
                r#"Bearer realm="unterminated"#,
                Some(Challenge::Bearer {
                    realm: "unterminated".into(),
                    service: None,
                    scope: None,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_challenge(input), want, "{input}");
        }
    }

    #[test]
    fn token_lifetime() {
        let now = Instant::now();
        let r = TokenResponse {
            token: None,
            access_token: Some("t".into()),
            expires_in: Some(300),
        };
        let t = Token::from_response(r, now).unwrap();
        assert!(t.is_fresh(now + Duration::from_secs(269)));
        assert!(!t.is_fresh(now + Duration::from_secs(271)));
        let empty = TokenResponse {
            token: Some(String::new()),
            access_token: None,
            expires_in: None,
        };
        assert!(Token::from_response(empty, now).is_none());
        let forever = TokenResponse {
            token: Some("t".into()),
            access_token: None,
            expires_in: Some(u64::MAX),
        };
        assert!(!Token::from_response(forever, now)
            .unwrap()
            .is_fresh(now + Duration::from_secs(86_400)));
    }
}
