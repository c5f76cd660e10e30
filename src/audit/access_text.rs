//! The access review as text, Markdown and a self-contained HTML page:
//! the same tables in three notations. Every string from the repository
//! is escaped for the notation it goes into.

use std::fmt::Write as _;

use super::access::{AccessReview, Permit};
use crate::model::text::escape;

/// A titled table.
struct Section {
    title: String,
    note: Option<String>,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

fn cell(p: Option<&Permit>) -> String {
    match p {
        None => "-".into(),
        Some(p) if !p.environments.is_empty() => p.environments.join(","),
        Some(p) if p.stages.is_empty() => "yes".into(),
        Some(p) if p.stages.len() == crate::model::names::Stage::ALL.len() => "all".into(),
        Some(p) => p.stages.join(","),
    }
}

fn sections(r: &AccessReview) -> Vec<Section> {
    let mut out = Vec::new();
    for m in &r.models {
        let mut header = vec!["user", "keys"];
        header.extend(m.access.first().map_or(
            [
                "read", "register", "promote", "approve", "deploy", "rollback", "admin",
            ],
            |a| a.cells().map(|(name, _)| name),
        ));
        header.push("grants");
        out.push(Section {
            title: m.model.clone(),
            note: Some(format!("deploy: {}", m.deploy)),
            header,
            rows: m
                .access
                .iter()
                .map(|a| {
                    let mut row = vec![a.user.clone(), a.key_status.as_str().to_owned()];
                    row.extend(a.cells().map(|(_, p)| cell(p)));
                    row.push(a.grants.join("; "));
                    row
                })
                .collect(),
        });
    }
    out.push(Section {
        title: "keys".into(),
        note: Some("expiring: within 30 days".into()),
        header: vec!["user", "status", "expires", "fingerprint"],
        rows: r
            .users
            .iter()
            .flat_map(|u| {
                u.keys.iter().map(move |k| {
                    vec![
                        u.user.clone(),
                        u.key_status.as_str().to_owned(),
                        u.expires.clone().unwrap_or_else(|| "-".into()),
                        k.clone(),
                    ]
                })
            })
            .collect(),
    });
    out.push(Section {
        title: "activity".into(),
        note: Some(format!(
            "from the record{}; stale: grants and no activity for {} days",
            if r.server_log {
                " and the server's log"
            } else {
                ""
            },
            r.stale_days
        )),
        header: vec!["user", "last activity", "action", "source", "stale"],
        rows: r
            .users
            .iter()
            .map(|u| {
                let (time, action, source) = match &u.last_activity {
                    Some(a) => (a.time.clone(), a.action.clone(), a.source.clone()),
                    None => ("never".into(), "-".into(), "-".into()),
                };
                let stale = if u.stale { "stale" } else { "-" };
                vec![u.user.clone(), time, action, source, stale.into()]
            })
            .collect(),
    });
    out.push(Section {
        title: "old data keys".into(),
        note: Some(
            "former readers who can still open versions written before they were cut off".into(),
        ),
        header: vec!["user", "model", "why", "versions", "current ring"],
        rows: r
            .old_key_holders
            .iter()
            .map(|h| {
                vec![
                    h.user.clone(),
                    h.model.clone(),
                    h.why.clone(),
                    h.versions.join(", "),
                    if h.in_current_ring {
                        "still wrapped to them (the next version rotates)".into()
                    } else {
                        "rotated since".into()
                    },
                ]
            })
            .collect(),
    });
    out
}

fn title(r: &AccessReview) -> String {
    format!("Access review at {}", r.generated)
}

/// Aligned plain text, escaped for a terminal.
pub fn text(r: &AccessReview) -> String {
    let mut o = format!("{}\n", escape(&title(r)));
    for s in sections(r) {
        let _ = write!(o, "\n{}", escape(&s.title));
        if let Some(n) = &s.note {
            let _ = write!(o, " ({})", escape(n));
        }
        o.push('\n');
        if s.rows.is_empty() {
            o.push_str("  none\n");
            continue;
        }
        let rows: Vec<Vec<String>> =
            std::iter::once(s.header.iter().map(|h| h.to_string()).collect())
                .chain(s.rows.iter().map(|r| r.iter().map(|c| escape(c)).collect()))
                .collect();
        let widths: Vec<usize> = (0..s.header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let mut line = String::new();
            for (c, w) in r.iter().zip(&widths) {
                let _ = write!(line, "  {c:<w$}");
            }
            o.push_str(line.trim_end());
            o.push('\n');
        }
    }
    o
}

fn md_escape(s: &str) -> String {
    escape(s).replace('|', "\\|").replace('*', "\\*")
}

/// Markdown, one table per section.
pub fn markdown(r: &AccessReview) -> String {
    let mut o = format!("# {}\n", md_escape(&title(r)));
    for s in sections(r) {
        let _ = writeln!(o, "\n## {}\n", md_escape(&s.title));
        if let Some(n) = &s.note {
            let _ = writeln!(o, "{}\n", md_escape(n));
        }
        if s.rows.is_empty() {
            o.push_str("None.\n");
            continue;
        }
        let _ = writeln!(o, "| {} |", s.header.join(" | "));
        let _ = writeln!(o, "|{}", " --- |".repeat(s.header.len()));
        for r in &s.rows {
            let cells: Vec<String> = r.iter().map(|c| md_escape(c)).collect();
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        }
    }
    o
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A single self-contained HTML page: inline CSS, no script, nothing
/// loaded from the network.
pub fn html(r: &AccessReview) -> String {
    let t = html_escape(&title(r));
    let mut o = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f3f3f3}}.expired,.stale{{color:#c62828;font-weight:bold}}.expiring{{color:#ef6c00}}</style></head><body>\n<h1>{t}</h1>\n"
    );
    for s in sections(r) {
        let _ = writeln!(o, "<h2>{}</h2>", html_escape(&s.title));
        if let Some(n) = &s.note {
            let _ = writeln!(o, "<p>{}</p>", html_escape(n));
        }
        if s.rows.is_empty() {
            o.push_str("<p>None.</p>\n");
            continue;
        }
        let _ = write!(o, "<table><tr>");
        for h in &s.header {
            let _ = write!(o, "<th>{}</th>", html_escape(h));
        }
        o.push_str("</tr>\n");
        for r in &s.rows {
            o.push_str("<tr>");
            for c in r {
                let class = match c.as_str() {
                    "expired" | "expiring" | "stale" => format!(" class=\"{c}\""),
                    _ => String::new(),
                };
                let _ = write!(o, "<td{class}>{}</td>", html_escape(c));
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}
