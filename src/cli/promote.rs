//! `mvault promote`: move a version to a stage (a GTO promotion tag).

use std::io::Write;

use mvault::model::names::{Stage, VersionRef};
use mvault::ops::release;

use super::context::Ctx;
use super::error::CliResult;
use super::render::tag_outcome;
use super::values;

/// Promote a version to the next stage (a signed GTO tag <model>#<stage>#<n>).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, nlp/bert (newest) or nlp/bert#staging.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// The stage to promote it to.
    #[arg(long, value_name = "STAGE", value_parser = values::stage())]
    to: Stage,
    /// Change ticket, recorded in the tag.
    #[arg(long)]
    ticket: Option<String>,
    /// Why, recorded in the tag.
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = release::promote(
        &vault,
        &args.reference,
        args.to,
        args.ticket.as_deref(),
        args.reason.as_deref(),
        &identity,
        ctx.now,
        !args.no_push,
    )?;
    let what = format!(
        "promoted {}@{} from {} to {}",
        o.model,
        o.version,
        o.from.clone().unwrap_or_default(),
        o.to
    );
    tag_outcome(out, &o, args.json, &what)
}
