//! `mvault deploy`: record, signed on main, that a version went to an
//! environment.

use std::io::Write;

use mvault::model::names::VersionRef;
use mvault::ops::deploy;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Record, signed on main, that a version went to an environment.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert#production for what a stage serves, or nlp/bert@1.2.0.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// The environment, as the policy's [[environments]] name it.
    #[arg(long, value_name = "ENVIRONMENT")]
    env: String,
    /// Why (one line; recorded in the record and the commit).
    #[arg(long)]
    reason: Option<String>,
    /// Keep the record local even when the clone has a remote.
    #[arg(long)]
    no_push: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = deploy::deploy(
        &vault,
        &args.reference,
        &args.env,
        args.reason.as_deref(),
        &identity,
        ctx.now,
        !args.no_push,
    )?;
    if args.json {
        return json_line(out, &o);
    }
    writeln!(
        out,
        "deployed {}@{} ({}) to {}: commit {}{}",
        o.model,
        o.version,
        o.stage,
        o.environment,
        o.commit,
        match &o.previous {
            Some(p) => format!(", replacing {p}"),
            None => String::new(),
        }
    )?;
    match &o.pushed {
        Some(r) => writeln!(out, "pushed to {r}")?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}
