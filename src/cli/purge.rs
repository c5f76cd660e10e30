//! `mvault purge`: drop an archived version's payload, keeping its record.

use std::io::Write;

use mvault::model::names::{ModelName, Version};
use mvault::ops::purge::{self, PurgeOutcome};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Purge an archived version's payload: a signed record on main, and
/// the deletion of its payload ref in the same push. The record stays.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.0.0 (archived).
    #[arg(value_parser = values::one_version)]
    reference: (ModelName, Version),
    /// Why (required; recorded and shown by pull, log and show).
    #[arg(long)]
    reason: String,
    /// Keep the purge local even when the clone has a remote.
    #[arg(long)]
    no_push: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let (model, version) = &args.reference;
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = purge::purge(
        &vault,
        model,
        version,
        &args.reason,
        &identity,
        ctx.now,
        !args.no_push,
    )?;
    render(out, &o, args.json)
}

fn render(out: &mut dyn Write, o: &PurgeOutcome, json: bool) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(
        out,
        "purged {}@{}: commit {}, {} deleted",
        o.model, o.version, o.commit, o.payload_ref
    )?;
    match &o.pushed {
        Some(r) => writeln!(
            out,
            "pushed to {r}; the server drops the ciphertext at its next git gc"
        )?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}
