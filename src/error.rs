//! The engine's error, one variant per layer of the stack. What each
//! kind means to a person (its exit code and hint) is the CLI's:
//! `cli/errors.rs`.

use crate::cache::CacheError;
use crate::catalog::PluginError;
use crate::config::ConfigError;
use crate::credentials::CredentialError;
use crate::export::ExportError;
use crate::oci::digest::Digest;
use crate::oci::manifest::ManifestError;
use crate::oci::platform::{Platform, PlatformParseError};
use crate::oci::reference::ReferenceError;
use crate::registry::RegistryError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformParseError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{registry}: {source}")]
    Cache {
        registry: String,
        source: CacheError,
    },
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        source: ManifestError,
    },
    #[error("{}: no image for platform {}; the image offers: {}", .0.reference, .0.wanted, list_platforms(&.0.available))]
    NoMatchingPlatform(Box<NoMatch>),
    #[error("{0}")]
    Usage(String),
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gave up after {} s (timeout)", .0.as_secs())]
    TimedOut(std::time::Duration),
    /// Another error with a registry-specific hint from its adapter.
    #[error("{source}")]
    Hinted { source: Box<Error>, hint: String },
}

impl From<crate::transfer::FetchError> for Error {
    fn from(e: crate::transfer::FetchError) -> Error {
        use crate::transfer::FetchError as F;
        match e {
            F::Registry(r) => Error::Registry(r),
            F::Cache { registry, source } => Error::Cache { registry, source },
        }
    }
}

/// What a multi-platform image offers when none matched.
#[derive(Debug)]
pub struct NoMatch {
    pub reference: String,
    pub wanted: Platform,
    pub available: Vec<(Option<Platform>, Digest)>,
}

fn list_platforms(av: &[(Option<Platform>, Digest)]) -> String {
    if av.is_empty() {
        return "nothing".into();
    }
    av.iter()
        .map(|(p, d)| match p {
            Some(p) => format!("{p} ({})", d),
            None => format!("(no platform) ({d})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
