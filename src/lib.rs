//! imgpull: pull container images from Docker/OCI registries without a
//! daemon, into a verified cache and out as a `docker load` tar, an OCI
//! layout or archive, or a root filesystem.
//!
//! # Layout
//!
//! One folder per step of a pull, each plugin contract beside the code
//! that drives it (the map with the flow of one pull: `docs/architecture.md`).
//!
//! - [`oci`]: the image formats as data: references, digests, manifests,
//!   platforms. No I/O.
//! - [`credentials`]: the [`credentials::CredentialProvider`] contract and
//!   what cloud providers share.
//! - [`registry`]: the registry HTTP client (challenges, tokens, redirects,
//!   retries, bounded bodies), mirrors with fallback, Docker Hub's quota and
//!   the [`registry::quirks::RegistryQuirks`] contract.
//! - [`resolve`]: a reference to its image manifest (through an index by
//!   platform), manifests served from the cache when held.
//! - [`transfer`]: blobs into the cache, in parallel, verified, resumed.
//! - [`cache`]: the [`cache::CacheBackend`] contract and what `imgpull cache`
//!   does on any backend.
//! - [`layer`]: layer tars: decompression, the structure guard, unpacking.
//! - [`export`]: the [`export::Exporter`] contract, the tar writer, outputs
//!   written while downloading.
//! - [`engine`]: the [`engine::Engine`] and the operations on it: pull,
//!   inspect, cache import; default output names.
//! - [`catalog`]: the plugins found at link time, chosen by name.
//! - [`config`]: layered TOML/env/flag configuration, as plain data.
//! - [`progress`]: the [`progress::Reporter`] trait (the library reports,
//!   the CLI draws).
//! - [`error`]: the engine's error and exit codes.
//! - [`util`]: cancellation, fs helpers, secrets, printable text, units.
//! - [`cli`]: the command line: the only module that prints, and the one
//!   that turns errors into hints.
//! - [`plugins`]: the built-in implementations, one file (or folder) each,
//!   under `plugins/`.

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod export;
pub mod layer;
pub mod oci;
pub mod progress;
pub mod registry;
pub mod resolve;
pub mod transfer;
pub mod util;

#[path = "../plugins/mod.rs"]
pub mod plugins;

pub use error::Error;
