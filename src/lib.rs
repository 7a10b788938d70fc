//! imgpull: pull container images from Docker/OCI registries without a
//! daemon, into a verified cache and out as a `docker load` tar.
//!
//! # Layout
//!
//! - [`reference`]: `[host[:port]/]path[:tag][@digest]`, normalized as docker does.
//! - [`digest`]: digests and the streaming verifier every byte passes through.
//! - [`manifest`], [`platform`]: manifest documents and platform matching.
//! - [`auth`], [`client`]: challenges, tokens, the registry HTTP client.
//! - [`resolve`]: reference -> (index ->) image manifest.
//! - [`fetch`]: blobs into the cache, in parallel, verified; [`chunked`]:
//!   parallel ranges of one big blob on a slow link; [`hashing_file`]:
//!   hashing and writing off the download's thread; [`tee`]: the same bytes
//!   into their place in an output laid out in advance
//!   ([`export::PlacedTar`]).
//! - [`engine`]: the [`engine::Engine`] and the setup every operation shares;
//!   [`pull`]: one pull end to end; [`inspect`]: what a reference names;
//!   [`naming`]: default output names.
//! - Plugin traits: [`credentials::CredentialProvider`], [`quirks::RegistryQuirks`],
//!   [`cache::CacheBackend`], [`export::Exporter`]; [`catalog`] collects them.
//! - [`plugins`]: the built-in implementations, one file each (`plugins/`).
//! - [`config`]: layered TOML/env/flag configuration.
//! - [`error`]: the engine's error and exit codes; [`progress`]: the
//!   [`progress::Reporter`] trait.
//! - [`text`]: network text made fit to print; [`secret`]: secrets that
//!   never print.
//! - [`cli`]: the command line (the only module that prints).

pub mod auth;
pub mod cache;
pub mod cache_ops;
pub mod cancel;
pub mod catalog;
pub mod chunked;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod digest;
pub mod endpoints;
pub mod engine;
pub mod error;
pub mod export;
pub mod fetch;
mod fsutil;
pub mod hashing_file;
pub mod import;
pub mod inspect;
pub mod layer;
pub mod manifest;
pub mod manifests;
pub mod naming;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod quirks;
pub mod quota;
pub mod ratelimit;
pub mod reference;
pub mod resolve;
pub mod reuse;
pub mod secret;
pub mod tee;
pub mod text;
pub mod units;
pub mod unpack;

#[path = "../plugins/mod.rs"]
pub mod plugins;

pub use error::Error;
