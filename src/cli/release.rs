//! The release commands: `approve`, `promote`, `rollback` and `status`.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::names::{ModelName, Version, VersionRef};
use mvault::model::text::escape;
use mvault::ops::release;

use super::{json_line, load_identity, open_vault, CliResult, Command};

/// Run one of the release commands; [`super::dispatch`] sends only those here.
pub(super) fn run(
    cmd: Command,
    key_path: &Option<PathBuf>,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    match cmd {
        Command::Approve {
            reference,
            stage,
            comment,
            no_push,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(dir)?;
            let identity = load_identity(key_path, dir)?;
            let o = release::approve(
                &vault,
                &r,
                stage,
                comment.as_deref(),
                &identity,
                now,
                !no_push,
            )?;
            render_tags(
                out,
                &o,
                json,
                &format!("approved {}@{} for {}", o.model, o.version, o.to),
            )?;
        }
        Command::Promote {
            reference,
            to,
            ticket,
            reason,
            no_push,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(dir)?;
            let identity = load_identity(key_path, dir)?;
            let o = release::promote(
                &vault,
                &r,
                to,
                ticket.as_deref(),
                reason.as_deref(),
                &identity,
                now,
                !no_push,
            )?;
            let what = format!(
                "promoted {}@{} from {} to {}",
                o.model,
                o.version,
                o.from.clone().unwrap_or_default(),
                o.to
            );
            render_tags(out, &o, json, &what)?;
        }
        Command::Rollback {
            model,
            to,
            reason,
            no_push,
            json,
        } => {
            let model = ModelName::parse(&model)?;
            let version = Version::parse(&to)?;
            let vault = open_vault(dir)?;
            let identity = load_identity(key_path, dir)?;
            let o = release::rollback(&vault, &model, &version, &reason, &identity, now, !no_push)?;
            render_tags(
                out,
                &o,
                json,
                &format!("rolled {} production back to {}", o.model, o.version),
            )?;
        }
        Command::Status { model, json } => {
            let model = model.as_deref().map(ModelName::parse).transpose()?;
            let vault = open_vault(dir)?;
            for m in release::status(&vault, model.as_ref())? {
                if json {
                    json_line(out, &m)?;
                    continue;
                }
                render_status(out, &m)?;
            }
        }
        other => unreachable!("not a release command: {other:?}"),
    }
    Ok(())
}

/// One model's status as text: each stage with what it serves and why,
/// each version with its stage, then every promotion tag not believed.
fn render_status(out: &mut dyn Write, m: &release::ModelStatus) -> CliResult {
    writeln!(
        out,
        "{}  latest {}",
        escape(&m.model),
        escape(m.latest.as_deref().unwrap_or("-"))
    )?;
    for h in &m.heads {
        writeln!(
            out,
            "  {:<12} {:<10} {}",
            h.stage.as_str(),
            escape(h.serving.as_deref().unwrap_or("-")),
            escape(&h.why())
        )?;
    }
    for v in &m.versions {
        let note = match &v.replaced_by {
            Some(tag) => format!(", replaced by {}", escape(tag)),
            None => String::new(),
        };
        writeln!(out, "    {:<16} {}{note}", escape(&v.version), v.stage)?;
    }
    for t in &m.untrusted_tags {
        writeln!(
            out,
            "  not believed: {}: {}: {}",
            escape(&t.object),
            escape(&t.rule),
            escape(&t.detail)
        )?;
    }
    if !m.untrusted_tags.is_empty() {
        writeln!(
            out,
            "  (left out above; {}#STAGE refuses until each is deleted, e.g. git tag -d '{}', or the server's copy is fetched with mvault sync)",
            escape(&m.model),
            escape(&m.untrusted_tags[0].object)
        )?;
    }
    Ok(())
}

fn render_tags(out: &mut dyn Write, o: &release::TagOutcome, json: bool, what: &str) -> CliResult {
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
