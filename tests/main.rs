//! The integration tests: one binary (see `autotests = false` in Cargo.toml)
//! that drives the real `mvault` and the stock git, age and ssh-keygen in a
//! hermetic environment (`common`). One module per area of the contract.

mod common;

mod access_review;
mod attack_escapes;
mod attack_forged_server;
mod attack_paths;
mod audit_events;
mod audit_report;
mod audit_ssh;
mod audit_tamper;
mod cli_completions;
mod cli_messages;
mod core_access;
mod core_cli_errors;
mod core_concurrent;
mod core_crash;
mod core_dedup;
mod core_inputs;
mod core_progress;
mod core_roundtrip;
mod core_stock_tools;
mod core_tamper;
mod deploy_flow;
mod deps_venv;
mod forged;
mod hook_accept;
mod hook_commits;
mod hook_expiry;
mod hook_failsafe;
mod hook_identity;
mod hook_paths;
mod hook_payload;
mod hook_refs;
mod hook_roles;
mod hook_server;
mod hook_ssh;
mod hook_time;
mod json_schemas;
mod layers;
mod lifecycle;
mod model_card;
mod payload_refs;
mod promotion_concurrent;
mod promotion_flow;
mod promotion_refusals;
mod promotion_stock_tools;
mod promotion_world;
mod python_wheel;
mod review_bypass;
mod server_gitolite;
mod server_http;
mod stage_status;
mod sync_clone;
mod unhooked;
