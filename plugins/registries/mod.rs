//! Registry adapters (`RegistryQuirks`).

pub mod dockerhub;
pub mod generic;
