//! `mvault hook`: the server side (install, check, pre-receive, fetch log,
//! decision log) and the client's pre-push check. `install` and `check`
//! share the rendering of the checks and the failure when one fails.

mod check;
mod heartbeat;
mod install;
mod install_pre_push;
mod log;
mod pack_objects;
mod post_receive;
mod pre_push;
mod pre_receive;
mod server_key;

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use mvault::model::text::escape;
use mvault::server::install::{CheckItem, CheckStatus};

use super::context::Ctx;
use super::error::{CliError, CliResult};

/// The server side: install, check and run the pre-receive hook.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[command(subcommand)]
    command: HookCommand,
}

#[derive(Subcommand, Debug)]
enum HookCommand {
    Install(install::Args),
    Check(check::Args),
    PreReceive(pre_receive::Args),
    PostReceive(post_receive::Args),
    Heartbeat(heartbeat::Args),
    ServerKey(server_key::Args),
    PrePush(pre_push::Args),
    InstallPrePush(install_pre_push::Args),
    PackObjects(pack_objects::Args),
    Log(log::Args),
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match args.command {
        HookCommand::Install(args) => install::run(args, ctx, out),
        HookCommand::Check(args) => check::run(args, ctx, out),
        HookCommand::PreReceive(args) => pre_receive::run(args, ctx, out),
        HookCommand::PostReceive(args) => post_receive::run(args, ctx, out),
        HookCommand::Heartbeat(args) => heartbeat::run(args, ctx, out),
        HookCommand::ServerKey(args) => server_key::run(args, ctx, out),
        HookCommand::PrePush(args) => pre_push::run(args, ctx, out),
        HookCommand::InstallPrePush(args) => install_pre_push::run(args, ctx, out),
        HookCommand::PackObjects(args) => pack_objects::run(args, ctx, out),
        HookCommand::Log(args) => log::run(args, ctx, out),
    }
}

/// One line per check: ok, warn or FAIL, and what.
fn print_check(out: &mut dyn Write, items: &[CheckItem]) -> CliResult {
    for i in items {
        let status = match i.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        writeln!(out, "{status} {}", escape(&i.what))?;
    }
    Ok(())
}

/// Exit 2 when a check failed (a warning does not fail).
fn not_installed(repo: &Path, items: &[CheckItem]) -> CliResult {
    if items.iter().any(|i| i.status == CheckStatus::Fail) {
        return Err(
            CliError::user(format!("{} is not installed correctly", repo.display())).hint(format!(
                "run mvault hook install {} --root-key KEY.pub (see the FAIL lines)",
                repo.display()
            )),
        );
    }
    Ok(())
}

/// The repository git runs a server hook in: $GIT_DIR, else `-C DIR`.
fn git_dir(ctx: &Ctx) -> std::path::PathBuf {
    std::env::var_os("GIT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.dir.clone())
}
