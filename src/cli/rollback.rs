//! `mvault rollback`: put an earlier production version back.

use std::io::Write;

use mvault::model::names::{ModelName, Version};
use mvault::ops::release;

use super::context::Ctx;
use super::error::CliResult;
use super::render::tag_outcome;
use super::values;

/// Put an earlier production version back in production; the current
/// one becomes deprecated.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// The model, e.g. nlp/bert.
    #[arg(value_parser = values::model)]
    model: ModelName,
    /// The version to put back.
    #[arg(long, value_parser = values::version)]
    to: Version,
    /// Why (required; recorded in both tags).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = release::rollback(
        &vault,
        &args.model,
        &args.to,
        &args.reason,
        &identity,
        ctx.now,
        !args.no_push,
    )?;
    let what = format!("rolled {} production back to {}", o.model, o.version);
    tag_outcome(out, &o, args.json, &what)
}
