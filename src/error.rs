//! The engine's error, one variant per layer of the stack. What each
//! kind means to a person (its exit code and hint) is the CLI's:
//! `cli/errors.rs`.

use crate::cache::CacheError;
use crate::catalog::PluginError;
use crate::config::ConfigError;
use crate::credentials::CredentialError;
use crate::export::ExportError;
use crate::oci::manifest::ManifestError;
use crate::oci::platform::PlatformParseError;
use crate::oci::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::resolve::NoMatch;
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
    #[error("{0}")]
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

impl From<crate::resolve::ResolveError> for Error {
    fn from(e: crate::resolve::ResolveError) -> Error {
        use crate::resolve::ResolveError as R;
        match e {
            R::Registry(r) => Error::Registry(r),
            R::Manifest { reference, source } => Error::Manifest { reference, source },
            R::NoMatchingPlatform(m) => Error::NoMatchingPlatform(m),
        }
    }
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

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
