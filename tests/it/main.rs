#![allow(clippy::print_stdout, clippy::print_stderr)]
//! Integration tests: one binary (one link step), modules by capability.
//! Every test runs the real CNCF distribution registry on 127.0.0.1.

mod support;

mod auth;
mod cache;
mod cli;
mod credentials;
mod disk;
mod docker;
mod errors;
mod exporters;
mod faults;
mod hostile;
mod layout;
mod leaks;
mod local;
mod memory;
mod placed;
mod platforms;
mod pull;
mod pullthrough;
mod push;
mod registries;
mod rootfs;
mod shared_store;
mod speed;
mod ux;
