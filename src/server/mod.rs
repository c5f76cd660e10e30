//! The server's side: its settings, the decision and fetch log, installing
//! and checking the hook.

pub mod alerts;
pub mod config;
pub mod forge;
pub mod install;
pub mod log;
pub mod receipts;
pub mod segments;
pub mod sink;
