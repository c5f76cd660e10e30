//! Read-only views of the record: events, lineage and reports.

pub mod events;
pub mod report;
