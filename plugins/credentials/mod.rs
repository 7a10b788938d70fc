//! Credential providers (`CredentialProvider`).

// One module per file in this directory, declared by build.rs.
include!(concat!(env!("OUT_DIR"), "/plugins_credentials.rs"));
