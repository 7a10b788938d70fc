//! What differs between registries: the [`RegistryQuirks`] trait.

/// A registry adapter. Quirks *describe*; the engine does the I/O: a quirk
/// rewrites names and endpoints and improves messages, and never makes a
/// request of its own.
///
/// Contract: every method is pure and cheap; defaults describe a plain
/// OCI distribution registry.
pub trait RegistryQuirks: Send + Sync {
    /// The plugin name (`generic`, `dockerhub`).
    fn name(&self) -> &'static str;

    /// The `host[:port]` whose `/v2/` API serves `registry` (Docker Hub's
    /// `docker.io` lives at `registry-1.docker.io`).
    fn api_host(&self, registry: &str) -> String {
        registry.to_string()
    }

    /// The cloud credential provider that serves this registry by default
    /// (`ecr`, `gcr`), asked after the docker/podman login files.
    fn credential_provider(&self) -> Option<&'static str> {
        None
    }

    /// Whether the registry reports a pull quota in `ratelimit-limit` /
    /// `ratelimit-remaining` headers of a manifest HEAD (Docker Hub), which
    /// the engine then reads before pulling.
    fn reports_rate_limit(&self) -> bool {
        false
    }

    /// An extra hint for a failure, when this registry has a better one
    /// than the generic text (rate limits, naming conventions).
    fn hint(&self, failure: &Failure<'_>) -> Option<String> {
        let _ = failure;
        None
    }
}

/// The facts of a failed request that a quirk may explain.
#[derive(Debug)]
pub struct Failure<'a> {
    pub status: u16,
    pub repository: &'a str,
    pub anonymous: bool,
}
