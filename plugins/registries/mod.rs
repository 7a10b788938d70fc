//! Registry adapters (`RegistryQuirks`).

pub mod acr;
pub mod dockerhub;
pub mod ecr;
pub mod gcr;
pub mod generic;
pub mod harbor;
pub mod quay;
