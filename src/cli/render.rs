//! Rendering shared by several commands: one JSON value per line, text
//! from the repository written escaped, and the outcome of a command that
//! creates tags (approve, promote, rollback).

use std::io::Write;

use mvault::model::text::{escape, json_hide_controls};
use mvault::ops::release::TagOutcome;

use super::error::{CliError, CliResult};

/// `v` as one line of JSON, control characters hidden.
pub(super) fn json_line(out: &mut dyn Write, v: &impl serde::Serialize) -> CliResult {
    writeln!(
        out,
        "{}",
        json_hide_controls(&serde_json::to_string(v).map_err(|e| CliError::user(e.to_string()))?)
    )?;
    Ok(())
}

/// Write text built from repository content line by line, escaped (tabs,
/// which reports use as separators, kept).
pub(super) fn write_escaped(out: &mut dyn Write, text: &str) -> CliResult {
    for line in text.lines() {
        let cells: Vec<String> = line.split('\t').map(escape).collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}

/// The tags a release command created, what they rely on and where they
/// were pushed, after the line `what`; or the outcome as JSON.
pub(super) fn tag_outcome(
    out: &mut dyn Write,
    o: &TagOutcome,
    json: bool,
    what: &str,
) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(out, "{}", escape(what))?;
    for t in &o.tags {
        writeln!(out, "tag {}", escape(t))?;
    }
    for a in &o.approvals {
        writeln!(out, "relies on {}", escape(a))?;
    }
    match &o.pushed {
        Some(r) => writeln!(out, "pushed to {r}")?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}
