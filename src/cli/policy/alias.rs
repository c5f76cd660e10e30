//! `mvault policy alias`: the other names a user goes by on a git server.

use std::io::Write;

use clap::Subcommand;

use mvault::ops::admin::PolicyChange;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;

/// Give a user another name the git server may call them by (an HTTP or
/// directory login such as `Alice`, an e-mail form such as
/// `alice@corp.example`), or take one away. The hook and the fetch log
/// map a server name to the user who has it as an alias. Names match
/// exactly, but for the domain of an e-mail form; an alias equal in any
/// case to another user's name or alias is refused.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    #[command(subcommand)]
    command: AliasCommand,
}

#[derive(Subcommand, Debug)]
enum AliasCommand {
    /// Add an alias (one admin-signed policy commit).
    Add(Change),
    /// Remove an alias (one admin-signed policy commit).
    Remove(Change),
}

#[derive(clap::Args, Debug)]
struct Change {
    /// The policy user.
    user: String,
    /// The name the server gives, e.g. `Alice` or `alice@corp.example`.
    alias: String,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let (change, c) = match args.command {
        AliasCommand::Add(c) => (
            PolicyChange::AliasAdd {
                user: c.user.clone(),
                alias: c.alias.clone(),
            },
            c,
        ),
        AliasCommand::Remove(c) => (
            PolicyChange::AliasRemove {
                user: c.user.clone(),
                alias: c.alias.clone(),
            },
            c,
        ),
    };
    super::apply(change, c.no_push, c.json, ctx, out)
}
