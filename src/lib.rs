//! mvault: ML models as age-encrypted, SSH-signed blobs in a git repository.
//!
//! The library does the work and returns data; `src/main.rs` parses
//! arguments, prints and picks exit codes. See `docs/` for the formats.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod crypto;
pub mod hook;
pub mod manifest;
pub mod names;
#[cfg(test)]
mod parser_props;
pub mod policy;
pub mod register;
pub mod release;
pub mod report;
pub mod retrieve;
pub mod stages;
pub mod store;
pub mod sync;
pub mod vault;
