//! `mvault policy grant`: a role on models matching a glob.

use std::io::Write;

use mvault::model::policy::Role;
use mvault::ops::admin::PolicyChange;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;
use crate::cli::values;

/// Grant a role on models matching a glob; re-wraps their key rings.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    name: String,
    /// viewer, developer, ml_engineer, ml_admin or approver.
    #[arg(long, value_parser = values::role())]
    role: Role,
    /// Model glob, e.g. 'nlp/*' or '**'.
    #[arg(long)]
    models: String,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let change = PolicyChange::Grant {
        user: args.name,
        role: args.role,
        models: args.models,
    };
    super::apply(change, args.no_push, args.json, ctx, out)
}
