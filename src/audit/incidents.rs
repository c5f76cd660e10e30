//! The clone's own event log: integrity violations that `pull` or
//! `verify` found here, one JSON line each in `.git/mvault/events.jsonl`,
//! whether or not the report reached the server. `mvault log` shows them
//! beside the record's events (action `integrity-violation`).
//!
//! The file is the client's own note, not evidence: anyone who can write
//! the clone can edit it. The report the server accepted is the evidence.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::events::Event;
use crate::model::report::IntegrityReport;

/// The event log, below the clone's git directory.
pub const EVENTS_FILE: &str = "mvault/events.jsonl";
/// The action of an integrity-violation event.
pub const INTEGRITY_VIOLATION: &str = "integrity-violation";

/// One line of the clone's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub time: String,
    /// Always [`INTEGRITY_VIOLATION`].
    pub event: String,
    /// The report as signed (or as it would have been).
    pub report: IntegrityReport,
    /// The remote the report went to, if the clone has one.
    #[serde(default)]
    pub remote: Option<String>,
    /// The ref the report was pushed to.
    #[serde(default)]
    pub report_ref: Option<String>,
    /// Whether the server accepted the report.
    pub sent: bool,
    /// Why not, when it did not.
    #[serde(default)]
    pub send_error: Option<String>,
}

/// Where the event log of the repository at `git_dir` lives.
pub fn events_path(git_dir: &Path) -> PathBuf {
    git_dir.join(EVENTS_FILE)
}

/// Append one incident.
pub fn append(git_dir: &Path, incident: &Incident) -> std::io::Result<()> {
    let path = events_path(git_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(incident).map_err(std::io::Error::other)?;
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(line.as_bytes())
}

/// The incidents of the clone at `git_dir`, oldest first; a line that does
/// not parse is skipped (the file is the client's note, not evidence).
pub fn read(git_dir: &Path) -> Vec<Incident> {
    std::fs::read_to_string(events_path(git_dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The incidents as events of `mvault log`.
pub fn events(git_dir: &Path) -> Vec<Event> {
    read(git_dir)
        .into_iter()
        .map(|i| {
            let unix = time::OffsetDateTime::parse(
                &i.time,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| t.unix_timestamp())
            .unwrap_or(0);
            let sent = match (&i.sent, &i.send_error) {
                (true, _) => "report sent".to_owned(),
                (false, Some(e)) => format!("report not sent: {e}"),
                (false, None) => "report not sent".to_owned(),
            };
            Event {
                time: i.time.clone(),
                unix,
                action: INTEGRITY_VIOLATION.into(),
                actor: i.report.reporter.clone(),
                key: None,
                model: i.report.model.clone(),
                version: i.report.version.clone(),
                stage: None,
                from_stage: None,
                environment: None,
                received: None,
                received_unix: None,
                manifest_sha256: None,
                ticket: None,
                reason: None,
                detail: Some(format!(
                    "{} check failed in {}: {}; {sent}",
                    i.report.check.as_str(),
                    i.report.command,
                    i.report.detail
                )),
                source: EVENTS_FILE.into(),
                object: i.report_ref.unwrap_or_default(),
            }
        })
        .collect()
}
