//! `mvault policy remove-user`: a user and their grants.

use std::io::Write;

use mvault::ops::admin::PolicyChange;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;

/// Remove a user and their grants; rotates the data keys they could read.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    name: String,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let change = PolicyChange::RemoveUser { name: args.name };
    super::apply(change, args.no_push, args.json, ctx, out)
}
