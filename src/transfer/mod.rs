//! Moving blob bytes from a registry into the cache (and, while they
//! arrive, into their place in an output): parallel fetches with resume
//! ([`fetch`]), parallel ranges of one big blob ([`chunked`]), hashing off
//! the download's thread ([`hashing`]), the copy into a live output
//! ([`tee`]) and `--limit-rate` ([`throttle`]).

pub mod chunked;
pub mod fetch;
pub mod hashing;
pub mod tee;
pub mod throttle;

use crate::cache::CacheError;
use crate::registry::RegistryError;

/// Why moving a blob failed: the registry (after retries and mirrors), or
/// the cache it was going into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{registry}: {source}")]
    Cache {
        registry: String,
        source: CacheError,
    },
}
