//! Image references: `[host[:port]/]path[:tag][@digest]`, parsed and
//! normalized the way docker does (`nginx` -> `docker.io/library/nginx:latest`).

use crate::oci::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// The registry name docker uses for Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
const NAME_MAX: usize = 255;

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry as users name it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`);
    /// quirks map it to the host actually contacted.
    pub registry: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceError {
    #[error("invalid reference format: repository name must be lowercase: {0:?}")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name longer than 255 characters")]
    TooLong,
    #[error("invalid reference format: bad registry host {0:?}")]
    BadHost(String),
    #[error("invalid reference format: bad repository path component {0:?}")]
    BadPath(String),
    #[error("invalid reference format: bad tag {0:?}")]
    BadTag(String),
    #[error("invalid reference format: {0}")]
    BadDigest(#[from] crate::oci::digest::DigestParseError),
}

impl Reference {
    /// The `registry/repository` name (`docker.io/library/nginx`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The name `docker save` writes in `RepoTags`: Docker Hub names lose
    /// `docker.io/` and `library/`; others keep their host. `None` for a
    /// reference without a tag.
    pub fn familiar_tagged(&self) -> Option<String> {
        let tag = self.tag.as_ref()?;
        Some(format!("{}:{tag}", self.familiar_name()))
    }

    /// `nginx`, `user/app`, `quay.io/org/app`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// A destination to push to: as [`FromStr`], but a reference written
    /// without a tag keeps none (the source's tag is used), instead of
    /// `latest`.
    pub fn parse_destination(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = parse(input)?;
        let last = input.rsplit('/').next().unwrap_or(input);
        if !last.contains(':') && !last.contains('@') {
            r.tag = None;
        }
        Ok(r)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty(input.to_string()));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
        None => (input, None),
    };
    // A tag is a ':' after the last '/', so `host:5000/app` has no tag.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let i = last_slash + i;
            (&rest[..i], Some(&rest[i + 1..]))
        }
        None => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    let (registry, path) = split_registry(name);
    if let Some(host) = registry {
        check_host(host)?;
    }
    let mut registry = registry.unwrap_or(DOCKER_HUB).to_string();
    if registry == "index.docker.io" {
        registry = DOCKER_HUB.to_string();
    }
    if path.is_empty() {
        return Err(ReferenceError::Empty(input.to_string()));
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(input.to_string()));
    }
    for comp in path.split('/') {
        check_component(comp)?;
    }
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if registry.len() + 1 + repository.len() > NAME_MAX {
        return Err(ReferenceError::TooLong);
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => Some("latest".to_string()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's rule: the first component is a host when it holds `.` or `:`,
/// is `localhost`, or has uppercase letters (which a path may not).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadTag(tag.to_string());
    let mut chars = tag.chars();
    let first = chars.next().ok_or_else(bad)?;
    if !(first.is_ascii_alphanumeric() || first == '_') || tag.len() > 128 {
        return Err(bad());
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(bad());
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_component(comp: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadPath(comp.to_string());
    let b = comp.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &comp[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `host[:port]`, host being DNS labels or a bracketed IPv6 address.
fn check_host(host: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadHost(host.to_string());
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !name.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
