//! Exporters (`Exporter`).

pub mod docker_archive;
pub mod oci;
