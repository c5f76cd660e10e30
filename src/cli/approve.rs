//! `mvault approve`: a signed approval of a version for a stage.

use std::io::Write;

use mvault::model::names::{Stage, VersionRef};
use mvault::ops::release;

use super::context::Ctx;
use super::error::CliResult;
use super::render::tag_outcome;
use super::values;

/// Approve a version for a stage (a signed tag binding the manifest).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, nlp/bert (newest) or nlp/bert#staging.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// The stage the approval is for.
    #[arg(long, value_name = "STAGE", value_parser = values::stage())]
    stage: Stage,
    /// A comment recorded in the tag.
    #[arg(long)]
    comment: Option<String>,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = release::approve(
        &vault,
        &args.reference,
        args.stage,
        args.comment.as_deref(),
        &identity,
        ctx.now,
        !args.no_push,
    )?;
    let what = format!("approved {}@{} for {}", o.model, o.version, o.to);
    tag_outcome(out, &o, args.json, &what)
}
