//! `mvault policy revoke`: a role, and the data keys it opened.

use std::io::Write;

use mvault::model::policy::Role;
use mvault::ops::admin::PolicyChange;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;
use crate::cli::values;

/// Revoke a role; rotates the data keys of models the user can no longer read.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    name: String,
    #[arg(long, value_parser = values::role())]
    role: Role,
    #[arg(long)]
    models: String,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let change = PolicyChange::Revoke {
        user: args.name,
        role: args.role,
        models: args.models,
    };
    super::apply(change, args.no_push, args.json, ctx, out)
}
