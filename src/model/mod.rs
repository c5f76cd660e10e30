//! The record's vocabulary: parsers of untrusted bytes (names, manifests,
//! policies, trailers, tag messages) into checked types that cannot hold an
//! invalid value. Nothing here reads a repository.

pub mod approval;
pub mod deployment;
pub mod deps;
pub mod manifest;
pub mod names;
pub mod paths;
pub mod policy;
pub mod promotion;
pub mod purge;
pub mod receipt;
pub mod report;
pub mod text;
pub mod trailers;
pub mod updates;
pub mod witness;
