//! Cache backends (`CacheBackend`).

pub mod local;
