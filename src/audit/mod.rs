//! Read-only views of the record: events, lineage, reports and the access
//! review.

pub mod access;
pub mod access_text;
pub mod events;
pub mod incidents;
pub mod report;
