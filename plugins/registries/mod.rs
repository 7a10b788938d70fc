//! Registry adapters (`RegistryQuirks`).

// One module per file in this directory, declared by build.rs.
include!(concat!(env!("OUT_DIR"), "/plugins_registries.rs"));
