//! The read-only views of the record: `log`, `audit verify`, `lineage`
//! and `report`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use mvault::audit::{events, report};
use mvault::model::names::ModelName;
use mvault::model::policy;
use mvault::model::text::escape;
use mvault::server::log as server_log;
use mvault::vault::{ErrorKind, VaultError};

use super::{json_line, load_identity, open_vault, CliError, CliResult, Command};

#[derive(Subcommand, Debug)]
pub(super) enum AuditCommand {
    /// Replay the whole history: every signature against the policy in force
    /// at its point, every manifest against its tree, every promotion chain
    /// link and approval, every key ring against its readers. Names the
    /// first break.
    Verify {
        /// Also decrypt every version your key can read and check every digest.
        #[arg(long)]
        decrypt: bool,
        #[arg(long)]
        json: bool,
    },
}

/// What `log --action` keeps, typed at the clap boundary: a typo is
/// refused with the list and the nearest name, and completions offer them.
/// The names are those of the events' `action` field (docs/audit.md).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LogAction {
    /// A version registered.
    Register,
    /// A version approved for a stage.
    Approve,
    /// A version promoted to a stage.
    Promote,
    /// An earlier version put back in production.
    Rollback,
    /// A version moved to deprecated.
    Deprecate,
    /// A version moved to archived.
    Archive,
    /// A version deployed to an environment.
    Deploy,
    /// A policy change of no other kind.
    Policy,
    /// A user or key added.
    AddUser,
    /// A user removed.
    RemoveUser,
    /// A role granted.
    Grant,
    /// A role revoked.
    Revoke,
    /// An environment defined.
    EnvAdd,
    /// An environment changed.
    EnvChange,
    /// An environment removed.
    EnvRemove,
    /// A model's key ring re-wrapped to new readers.
    KeyRewrap,
    /// A model's data key rotated.
    KeyRotation,
    /// The vault created.
    Init,
    /// A push the hook accepted (server log, with --server).
    Accept,
    /// A push the hook refused (server log, with --server).
    Refuse,
    /// A fetch (server log, with --server).
    Fetch,
}

impl LogAction {
    /// The name events carry, as clap spells the value.
    fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The server log's event of this name, if it is one.
    fn server_event(self) -> Option<server_log::ServerEvent> {
        server_log::ServerEvent::parse(&self.name())
    }
}

/// Run one of the audit commands; [`super::dispatch`] sends only those here.
pub(super) fn run(
    cmd: Command,
    key_path: &Option<PathBuf>,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    match cmd {
        Command::Log {
            model,
            version,
            actor,
            action,
            since,
            until,
            limit,
            json,
            server,
        } => {
            if server {
                let filter = server_log::ServerFilter {
                    model: model.as_deref().map(model_glob).transpose()?,
                    version,
                    actor,
                    events: action
                        .iter()
                        .map(|a| {
                            a.server_event().ok_or_else(|| {
                                CliError::user(format!(
                                    "--action {}: the server log records {}",
                                    a.name(),
                                    server_log::ServerEvent::ALL.map(|e| e.as_str()).join(", ")
                                ))
                                .hint("the record's actions (register, promote, …) are in `mvault log` without --server")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    since: since.as_deref().map(parse_time).transpose()?,
                    until: until.as_deref().map(parse_time).transpose()?,
                    limit,
                };
                let store = mvault::store::Store::open(dir)
                    .map_err(|e| CliError::from(VaultError::from(e)))?;
                let entries = server_log::read_log(store.git_dir(), &filter).map_err(|e| {
                    let missing = matches!(e, server_log::ReadLogError::Missing { .. });
                    let err = CliError::user(e.to_string());
                    if missing {
                        err.hint("run this on the server's bare repository")
                    } else {
                        err
                    }
                })?;
                for e in &entries {
                    if json {
                        writeln!(out, "{}", e.line)?;
                    } else {
                        writeln!(out, "{}", escape(&server_line(e)))?;
                    }
                }
                return Ok(());
            }
            if let Some(a) = action.iter().find(|a| a.server_event().is_some()) {
                return Err(CliError::user(format!(
                    "--action {}: that is an event of the server's log, not of the record",
                    a.name()
                ))
                .hint(format!(
                    "read the server's log on its repository: mvault log --server --action {}",
                    a.name()
                )));
            }
            let vault = open_vault(dir)?;
            let filter = events::Filter {
                model: model.as_deref().map(model_glob).transpose()?,
                version,
                actor,
                actions: action.iter().map(|a| a.name()).collect(),
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                limit,
            };
            for e in events::events(&vault, &filter)? {
                if json {
                    json_line(out, &e)?;
                } else {
                    let what = match (&e.model, &e.version) {
                        (Some(m), Some(v)) => format!("{m}@{v}"),
                        (Some(m), None) => m.clone(),
                        _ => String::new(),
                    };
                    let stage = e
                        .stage
                        .as_ref()
                        .map(|s| format!(" → {s}"))
                        .unwrap_or_default();
                    let extra = [
                        e.ticket.as_ref().map(|t| format!("ticket {}", escape(t))),
                        e.reason
                            .as_ref()
                            .map(|r| format!("reason \"{}\"", escape(r))),
                        e.detail.as_deref().map(escape),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                    writeln!(
                        out,
                        "{}  {:<12} {:<10} {}{}{}",
                        e.time,
                        escape(&e.action),
                        escape(&e.actor),
                        escape(&what),
                        escape(&stage),
                        if extra.is_empty() {
                            String::new()
                        } else {
                            format!("  ({extra})")
                        }
                    )?;
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { decrypt, json },
        } => {
            let vault = open_vault(dir)?;
            let identity = if decrypt {
                Some(load_identity(key_path, dir)?)
            } else {
                None
            };
            let r = mvault::ops::audit::verify(&vault, identity.as_ref())?;
            if json {
                json_line(out, &r)?;
            } else if r.ok {
                writeln!(
                    out,
                    "record intact: {} commits, {} tags, {} signatures checked{}",
                    r.commits,
                    r.tags,
                    r.signatures,
                    if decrypt {
                        format!(
                            ", {} versions decrypted and every digest checked",
                            r.versions_decrypted
                        )
                    } else {
                        String::new()
                    }
                )?;
            }
            if let Some(b) = r.first_break {
                return Err(CliError {
                    kind: ErrorKind::Integrity,
                    message: format!("record broken at {}: {}: {}", b.object, b.rule, b.detail),
                    hints: vec!["everything before this point verified; investigate this object (git show) and compare with the server".into()],
                    broken_pipe: false,
                });
            }
        }
        Command::Lineage { model, json } => {
            let model = ModelName::parse(&model)?;
            let vault = open_vault(dir)?;
            let nodes = mvault::ops::audit::lineage(&vault, &model)?;
            if json {
                for n in &nodes {
                    json_line(out, n)?;
                }
            } else {
                write_escaped(out, &report::lineage_text(model.as_str(), &nodes))?;
            }
        }
        Command::Report {
            model,
            since,
            until,
            format,
            output,
            json,
        } => {
            let model = ModelName::parse(&model)?;
            let vault = open_vault(dir)?;
            let r = mvault::ops::audit::report(
                &vault,
                &model,
                since.as_deref().map(parse_time).transpose()?,
                until.as_deref().map(parse_time).transpose()?,
                now,
                mvault::ops::audit::verify(&vault, None)?,
            )?;
            let text = match format.as_str() {
                // --json: one line, like every other command's JSON.
                _ if json => {
                    serde_json::to_string(&r).map_err(|e| CliError::user(e.to_string()))? + "\n"
                }
                "json" => {
                    serde_json::to_string_pretty(&r).map_err(|e| CliError::user(e.to_string()))?
                        + "\n"
                }
                "md" | "markdown" => report::markdown(&r),
                "html" => report::html(&r),
                other => {
                    return Err(CliError::user(format!(
                        "--format {other:?}: expected json, md or html"
                    )))
                }
            };
            match output {
                Some(p) => {
                    let p = if p.is_relative() { dir.join(p) } else { p };
                    std::fs::write(&p, text)?;
                    writeln!(out, "wrote {}", p.display())?;
                }
                None => write_escaped(out, &text)?,
            }
        }
        other => unreachable!("not an audit command: {other:?}"),
    }
    Ok(())
}

/// `--model GLOB`: `*` stays within one segment of a model name.
fn model_glob(glob: &str) -> Result<globset::GlobMatcher, CliError> {
    Ok(globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| CliError::user(format!("--model {glob:?}: {e}")))?
        .compile_matcher())
}

/// One line of `mvault log --server`: time, event, user, then for a fetch
/// the client's address and the versions read, then the refs (and the
/// rule of a refusal). Escaped by the caller.
fn server_line(e: &server_log::ServerEntry) -> String {
    let mut line = format!(
        "{}  {:<7} {:<10}",
        e.time,
        e.event.as_str(),
        e.actor.as_deref().unwrap_or("-")
    );
    if e.event == server_log::ServerEvent::Fetch {
        line.push_str(&format!(" from {}", e.address.as_deref().unwrap_or("-")));
        for s in &e.subjects {
            match &s.version {
                Some(v) => line.push_str(&format!(" {}@{v}", s.model)),
                None => line.push_str(&format!(" {}", s.model)),
            }
        }
    }
    if !e.refs.is_empty() {
        line.push_str(&format!("  {}", e.refs.join(" ")));
    }
    if let Some(rule) = &e.rule {
        line.push_str(&format!("  ({rule})"));
    }
    line
}

/// Write text built from repository content line by line, escaped (tabs,
/// which reports use as separators, kept).
fn write_escaped(out: &mut dyn Write, text: &str) -> CliResult {
    for line in text.lines() {
        let cells: Vec<String> = line.split('\t').map(escape).collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}

/// RFC 3339, YYYY-MM-DD (00:00 UTC) or unix seconds.
fn parse_time(s: &str) -> Result<i64, CliError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Some(d) = policy::parse_date(s) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(CliError::user(format!("{s:?} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22) or unix seconds")))
}
