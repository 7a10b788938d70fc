//! Exporters (`Exporter`).

pub mod docker_archive;
