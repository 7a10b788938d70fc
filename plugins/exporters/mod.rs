//! Exporters (`Exporter`).

// One module per file in this directory, declared by build.rs.
include!(concat!(env!("OUT_DIR"), "/plugins_exporters.rs"));
