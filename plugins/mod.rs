//! Built-in plugins, one file each, grouped by kind. Each file registers
//! itself with `inventory::submit!`; nothing else needs to know it exists.

pub mod caches;
pub mod credentials;
pub mod exporters;
pub mod registries;
