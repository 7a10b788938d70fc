//! The data of the OCI and Docker image formats, with no I/O: references,
//! digests (and the streaming verifier every byte passes through),
//! manifest documents and platforms.

pub mod digest;
pub mod manifest;
pub mod platform;
pub mod reference;
