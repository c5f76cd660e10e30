//! mvault: ML models as age-encrypted, SSH-signed blobs in a git repository.
//!
//! The library does the work and returns data; `src/main.rs` parses
//! arguments, prints and picks exit codes. Modules are layers: each imports
//! only the ones below it in this list (docs/architecture.md draws them,
//! and `tests/layers.rs` fails the build of the tests when one reaches up).

pub mod audit;
pub mod crypto;
pub mod model;
pub mod ops;
pub mod rules;
pub mod server;
pub mod store;
pub mod vault;
pub mod verify;

#[cfg(test)]
mod parser_props;
