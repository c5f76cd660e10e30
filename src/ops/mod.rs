//! What users do: register, pull, release (approve, promote, rollback),
//! deploy,
//! administer the policy, and keep a clone in step with its remote.

pub mod admin;
pub mod audit;
pub mod deploy;
pub mod deps;
pub mod output;
pub mod parts;
pub mod progress;
pub mod purge;
pub mod register;
pub mod release;
pub mod report;
pub mod resolve;
pub mod retention;
pub mod retrieve;
pub mod sync;
pub mod witness;
