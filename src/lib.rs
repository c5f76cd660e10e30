//! mvault: ML models as age-encrypted, SSH-signed blobs in a git repository.
//!
//! The library does the work and returns data; `src/main.rs` parses
//! arguments, prints and picks exit codes. Modules are layers: each imports
//! only the ones below it in this list (docs/architecture.md draws them,
//! and `tests/layers.rs` fails the build of the tests when one reaches up).

pub mod ops;
pub mod verify;
pub mod server;
pub mod audit;
pub mod vault;
pub mod rules;
pub mod model;
pub mod crypto;
pub mod store;

#[cfg(test)]
mod parser_props;
