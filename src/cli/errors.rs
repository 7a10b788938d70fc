//! Errors as a person meets them: the exit code of each kind of
//! [`Error`] and a hint at what to try next (flags, config keys, proxy
//! variables: the CLI's vocabulary, not the library's).

use crate::cache::CacheError;
use crate::error::Error;
use crate::export::ExportError;
use crate::oci::manifest::ManifestError;
use crate::registry::RegistryError;

/// Exit codes, documented in README.md.
pub mod exit {
    /// Anything not listed below (local I/O, internal errors).
    pub const OTHER: i32 = 1;
    /// Bad command line, reference or configuration.
    pub const USAGE: i32 = 2;
    /// 401/403: credentials missing, wrong or insufficient.
    pub const AUTH: i32 = 3;
    /// 404: repository, tag or blob does not exist.
    pub const NOT_FOUND: i32 = 4;
    /// Connection refused, DNS, TLS, timeouts, 5xx.
    pub const NETWORK: i32 = 5;
    /// 429: the registry is rate limiting.
    pub const RATE_LIMITED: i32 = 6;
    /// Content did not match its digest or size.
    pub const INTEGRITY: i32 = 7;
    /// The image has no manifest for the requested platform.
    pub const PLATFORM: i32 = 8;
    /// The registry's content was refused: over one of the limits (README
    /// "Limits") or unsafe to unpack (a path outside the target).
    pub const REFUSED: i32 = 9;
    /// Interrupted (Ctrl-C / SIGINT), as shells report it.
    pub const INTERRUPTED: i32 = 130;
    /// Terminated (SIGTERM), as shells report it; handled as SIGINT is.
    pub const TERMINATED: i32 = 143;
}

/// The process exit code for `e` (see [`exit`]).
pub fn exit_code(e: &Error) -> i32 {
    use RegistryError as R;
    match e {
        Error::Reference(_)
        | Error::Platform(_)
        | Error::Config(_)
        | Error::Plugin(_)
        | Error::Usage(_) => exit::USAGE,
        Error::Credential(_) => exit::AUTH,
        Error::Registry(r) | Error::Export(ExportError::Registry(r)) => match r {
            R::Unauthorized { .. } | R::Denied { .. } => exit::AUTH,
            R::NotFound { .. } => exit::NOT_FOUND,
            R::RateLimited { .. } => exit::RATE_LIMITED,
            R::DigestMismatch { .. } | R::LengthMismatch { .. } => exit::INTEGRITY,
            R::TooLarge { .. } => exit::REFUSED,
            _ => exit::NETWORK,
        },
        Error::Cache { source, .. } | Error::Export(ExportError::Cache(source)) => match source {
            CacheError::DigestMismatch { .. } | CacheError::SizeMismatch { .. } => exit::INTEGRITY,
            _ => exit::OTHER,
        },
        Error::Manifest {
            source: ManifestError::SizeMismatch { .. },
            ..
        } => exit::INTEGRITY,
        Error::Manifest {
            source: ManifestError::TooMany { .. } | ManifestError::TooBig { .. },
            ..
        } => exit::REFUSED,
        // The registry answered something we cannot use.
        Error::Manifest { .. } => exit::NETWORK,
        Error::NoMatchingPlatform(_) => exit::PLATFORM,
        Error::TimedOut(_) => exit::NETWORK,
        Error::Hinted { source, .. } => exit_code(source),
        Error::Export(ExportError::DiffId { .. }) => exit::INTEGRITY,
        Error::Export(
            ExportError::Refused { .. }
            | ExportError::Unpack(crate::layer::unpack::UnpackError::Unsafe { .. }),
        ) => exit::REFUSED,
        Error::Export(_) | Error::Io { .. } => exit::OTHER,
    }
}

/// What a person can try next after `e`.
pub fn hint(e: &Error) -> Option<String> {
    use RegistryError as R;
    Some(match e {
        Error::Hinted { hint, .. } => hint.clone(),
        Error::Registry(R::Unauthorized {
            credential_source: None,
            ..
        }) => "this registry needs credentials: pass --username with --password-stdin, or add \
               a `static` credentials entry for it in imgpull.toml"
            .into(),
        Error::Registry(R::Unauthorized { .. }) => {
            "check the username and password (or token) for this registry".into()
        }
        Error::Registry(R::Denied { anonymous: true, .. }) => {
            "the registry refuses anonymous pulls of this repository (private, or it does not exist): \
             pass --username with --password-stdin, or configure credentials for the registry"
                .into()
        }
        Error::Registry(R::Denied { .. }) => {
            "the credentials were accepted but lack pull access to this repository".into()
        }
        Error::Registry(R::NotFound { .. }) => {
            "check the repository name and tag (names are normalized as docker does: `nginx` is `docker.io/library/nginx:latest`)".into()
        }
        Error::Registry(R::RateLimited { .. }) => {
            "wait and retry, or authenticate for a higher limit".into()
        }
        Error::Registry(R::Tls { .. }) => {
            "if the registry uses a private CA, pass --ca-file CA.pem (or set ca_file in the config); \
             for a registry without TLS set `insecure = true` under [registries.\"HOST\"]"
                .into()
        }
        Error::Registry(R::Connect { .. }) => match proxy_in_use() {
            Some((var, host)) => format!(
                "{var} sends requests through the proxy {host}: check that it is up and lets this \
                 registry through, or list the registry in NO_PROXY"
            ),
            None => "check the registry address and port (and HTTPS_PROXY/NO_PROXY if you need a proxy)".into(),
        },
        Error::Registry(R::DigestMismatch { what, .. }) if what.contains(" as read from ") => {
            "the file pushed from is damaged (copy it again); the registry got nothing under that digest".into()
        }
        Error::Registry(R::DigestMismatch { .. } | R::LengthMismatch { .. })
        | Error::Cache {
            source: CacheError::DigestMismatch { .. } | CacheError::SizeMismatch { .. },
            ..
        } => "the registry (or something between it and you) served corrupt data; nothing corrupt was kept. Retry, or try another mirror".into(),
        Error::NoMatchingPlatform(_) => "pick one of the listed platforms with --platform".into(),
        Error::TimedOut(_) => {
            "raise --timeout (config `timeout`) for a slow link; partial downloads were kept and the next pull resumes them".into()
        }
        Error::Export(ExportError::DiffId { .. }) => {
            "the layer's content does not match the image config (a broken or tampered image); nothing was written".into()
        }
        Error::Export(ExportError::Refused { source: crate::layer::GuardError::TooBig { .. }, .. }) => {
            "if the image is trusted and its layers really are this large, raise max_layer_uncompressed (or --max-layer-uncompressed; \"none\" for no limit)".into()
        }
        Error::Registry(R::TooLarge { .. })
        | Error::Export(ExportError::Refused { .. })
        | Error::Manifest {
            source: ManifestError::TooMany { .. } | ManifestError::TooBig { .. },
            ..
        } => "imgpull refuses content over its limits (README \"Limits\"); a registry should never need them".into(),
        _ => match io_kind(e)? {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                "the disk is full: free space there, or put the cache (--cache-dir) or the output (-o) on another disk; partial downloads are kept and resume".into()
            }
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                "imgpull cannot write there: choose a writable --cache-dir / -o, or fix the directory's permissions".into()
            }
            _ => return None,
        },
    })
}

/// The kind of the first I/O error in `e`'s chain of causes.
fn io_kind(e: &Error) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = c.source();
    }
    None
}

/// The proxy variable set in the environment and the proxy's host:port
/// (never its credentials).
fn proxy_in_use() -> Option<(String, String)> {
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            let with_scheme = if v.contains("://") {
                v.clone()
            } else {
                format!("http://{v}")
            };
            let host = reqwest::Url::parse(&with_scheme)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
                })
                .unwrap_or_else(|| "(unparsable)".into());
            return Some((var.to_string(), host));
        }
    }
    None
}
