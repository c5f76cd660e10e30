//! `mvault log`: events from commits and tags, or with `--server` the
//! server's decision and access log.

use std::io::Write;

use mvault::audit::events::{self, Event};
use mvault::model::names::Version;
use mvault::model::text::escape;
use mvault::server::log as server_log;
use mvault::vault::VaultError;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::render::json_line;
use super::values;

/// Events from commits and tags: who did what, when, to which artifact.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Only models matching this glob.
    #[arg(long, value_parser = values::model_glob)]
    model: Option<globset::GlobMatcher>,
    /// Only this version.
    #[arg(long, value_parser = values::version)]
    version: Option<Version>,
    /// Only this actor.
    #[arg(long)]
    actor: Option<String>,
    /// Only these actions (repeatable); accept, refuse and fetch are
    /// the server log's, with --server.
    #[arg(long, value_enum, value_name = "ACTION")]
    action: Vec<LogAction>,
    /// From this time (RFC 3339, YYYY-MM-DD or unix seconds).
    #[arg(long, value_parser = values::time)]
    since: Option<i64>,
    /// Up to this time.
    #[arg(long, value_parser = values::time)]
    until: Option<i64>,
    /// Only the last N events.
    #[arg(long)]
    limit: Option<usize>,
    /// JSON lines.
    #[arg(long)]
    json: bool,
    /// The server's decision and access log instead (run on the
    /// server's repository): pushes accepted and refused, with the
    /// pusher, and fetches, with the user, the client's address and the
    /// versions whose payload was read. The other filters apply to it.
    #[arg(long)]
    server: bool,
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
    /// An archived version's payload purged.
    Purge,
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
    /// An integrity report: a client's pull or verify found a bad
    /// digest, signature, size or chain (the clone's own event log, or
    /// the server log with --server).
    IntegrityViolation,
    /// An alert rule fired (server log, with --server).
    Alert,
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

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    if args.server {
        return run_server(args, ctx, out);
    }
    let server_only =
        |a: &&LogAction| a.server_event().is_some() && **a != LogAction::IntegrityViolation;
    if let Some(a) = args.action.iter().find(server_only) {
        return Err(CliError::user(format!(
            "--action {}: that is an event of the server's log, not of the record",
            a.name()
        ))
        .hint(format!(
            "read the server's log on its repository: mvault log --server --action {}",
            a.name()
        )));
    }
    let vault = ctx.vault()?;
    let filter = events::Filter {
        model: args.model,
        version: args.version.map(|v| v.to_string()),
        actor: args.actor,
        actions: args.action.iter().map(|a| a.name()).collect(),
        since: args.since,
        until: args.until,
        limit: args.limit,
    };
    for e in events::events(&vault, &filter)? {
        if args.json {
            json_line(out, &e)?;
        } else {
            writeln!(out, "{}", event_line(&e))?;
        }
    }
    Ok(())
}

/// `mvault log --server`: the server log's lines that pass the filters.
fn run_server(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let filter = server_log::ServerFilter {
        model: args.model,
        version: args.version.map(|v| v.to_string()),
        actor: args.actor,
        events: args
            .action
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
        since: args.since,
        until: args.until,
        limit: args.limit,
    };
    let store =
        mvault::store::Store::open(&ctx.dir).map_err(|e| CliError::from(VaultError::from(e)))?;
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
        if args.json {
            writeln!(out, "{}", e.line)?;
        } else {
            writeln!(out, "{}", escape(&server_line(e)))?;
        }
    }
    Ok(())
}

/// One event as a line of text: time, action, actor, what, then the
/// ticket, reason and detail; escaped.
fn event_line(e: &Event) -> String {
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
    format!(
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
    )
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
