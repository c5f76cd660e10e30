//! `mvault policy`: add and remove users, grant and revoke roles, show and
//! lint the policy. The four changes share [`apply`]: one admin-signed
//! commit through `ops::admin::change_policy`, rendered alike.

mod add_user;
mod check;
mod grant;
mod remove_user;
mod revoke;
mod rule;
mod server_key;
mod show;

use std::io::Write;

use clap::Subcommand;

use mvault::model::text::escape;
use mvault::ops::admin::{self, PolicyChange, PolicyOutcome};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;

/// Administer the policy (admin-signed commits).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    AddUser(add_user::Args),
    RemoveUser(remove_user::Args),
    Grant(grant::Args),
    Revoke(revoke::Args),
    Rule(rule::Args),
    ServerKey(server_key::Args),
    Show(show::Args),
    Check(check::Args),
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match args.command {
        PolicyCommand::AddUser(args) => add_user::run(args, ctx, out),
        PolicyCommand::RemoveUser(args) => remove_user::run(args, ctx, out),
        PolicyCommand::Grant(args) => grant::run(args, ctx, out),
        PolicyCommand::Revoke(args) => revoke::run(args, ctx, out),
        PolicyCommand::Rule(args) => rule::run(args, ctx, out),
        PolicyCommand::ServerKey(args) => server_key::run(args, ctx, out),
        PolicyCommand::Show(args) => show::run(args, ctx, out),
        PolicyCommand::Check(args) => check::run(args, ctx, out),
    }
}

/// Make `change` as an admin-signed commit (pushed unless `no_push`),
/// and tell what it did.
fn apply(
    change: PolicyChange,
    no_push: bool,
    json: bool,
    ctx: &Ctx,
    out: &mut dyn Write,
) -> CliResult {
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = admin::change_policy(&vault, change, &identity, ctx.now, !no_push)?;
    for w in &o.warnings {
        eprintln!("mvault: warning: {}", escape(&w.to_string()));
    }
    render(out, &o, json)
}

fn render(out: &mut dyn Write, o: &PolicyOutcome, json: bool) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(out, "policy: {} (commit {})", o.change, o.commit)?;
    for m in &o.rewrapped {
        writeln!(out, "re-wrapped the key ring of {m} to its new readers")?;
    }
    for m in &o.rotated {
        writeln!(out, "rotated the data key of {m}: future versions use a new key; versions before stay readable to whoever had them")?;
    }
    if let Some(r) = &o.pushed {
        writeln!(out, "pushed to {r}")?;
    }
    Ok(())
}
