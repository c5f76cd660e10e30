//! `mvault deployments`: what is deployed where.

use std::io::Write;

use mvault::model::names::ModelName;
use mvault::model::text::escape;
use mvault::ops::deploy;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// What is deployed where (the newest deployment per environment and
/// model), and every deployment.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Only this model.
    #[arg(value_parser = values::model)]
    model: Option<ModelName>,
    /// One JSON object: the current deployments and the history.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let d = deploy::deployments(&vault, args.model.as_ref(), ctx.now.unix_timestamp())?;
    if args.json {
        return json_line(out, &d);
    }
    if d.current.is_empty() {
        writeln!(out, "nothing deployed")?;
    }
    for c in &d.current {
        writeln!(
            out,
            "{}  {}@{}  ({})  by {} at {}",
            escape(&c.environment),
            escape(&c.model),
            escape(&c.version),
            c.stage,
            escape(&c.deployed_by),
            c.time
        )?;
    }
    if !d.history.is_empty() {
        writeln!(out, "\nhistory:")?;
    }
    for e in &d.history {
        writeln!(
            out,
            "{}  {} deployed {}@{} to {}{}",
            e.time,
            escape(&e.actor),
            escape(e.model.as_deref().unwrap_or("?")),
            escape(e.version.as_deref().unwrap_or("?")),
            escape(e.environment.as_deref().unwrap_or("?")),
            e.reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}
