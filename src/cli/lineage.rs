//! `mvault lineage`: a model's versions as a tree of parents.

use std::io::Write;

use mvault::audit::report;
use mvault::model::names::ModelName;

use super::context::Ctx;
use super::error::CliResult;
use super::render::{json_line, write_escaped};
use super::values;

/// A model's versions as a tree of parents, with each version's stages.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[arg(value_parser = values::model)]
    model: ModelName,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let nodes = mvault::ops::audit::lineage(&vault, &args.model)?;
    if args.json {
        for n in &nodes {
            json_line(out, n)?;
        }
        return Ok(());
    }
    write_escaped(out, &report::lineage_text(args.model.as_str(), &nodes))
}
