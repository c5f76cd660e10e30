//! `mvault retention`: the archived versions whose payload is due for
//! purge under the policy's `retention_days`.

use std::io::Write;

use mvault::model::text::escape;
use mvault::ops::retention;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;

/// List the archived versions whose retention is due and that are not
/// purged yet: what `mvault purge` may now remove.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// One JSON object per due version: model, version, archived_at,
    /// retention_days, due_at, purge_role.
    #[arg(long)]
    json: bool,
}

/// Run `mvault retention`: one library call, then the list.
pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let due = retention::due_versions(&vault, ctx.now)?;
    if args.json {
        for d in &due {
            json_line(out, d)?;
        }
        return Ok(());
    }
    if due.is_empty() {
        writeln!(out, "no version is due for purge")?;
        return Ok(());
    }
    for d in &due {
        writeln!(
            out,
            "{}@{}  archived {}  retention {} day(s)  due since {}  purge: ml_admin{}",
            escape(&d.model),
            escape(&d.version),
            d.archived_at,
            d.retention_days,
            d.due_at,
            d.purge_role
                .as_deref()
                .map(|r| format!(" or {r}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}
