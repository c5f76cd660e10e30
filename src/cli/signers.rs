//! `mvault signers`: the policy's keys as an allowed_signers file.

use std::io::Write;

use mvault::model::policy::Policy;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;

/// Print an allowed_signers file from the policy, for
/// `git -c gpg.ssh.allowedSignersFile=FILE verify-commit` and `ssh-keygen -Y verify`.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// One JSON object per key: user, namespaces, expiry, key.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let policy = ctx.vault()?.policy()?;
    render(out, &policy, args.json)
}

fn render(out: &mut dyn Write, policy: &Policy, json: bool) -> CliResult {
    if json {
        for s in policy.signers() {
            json_line(out, &s)?;
        }
    } else {
        write!(out, "{}", policy.allowed_signers())?;
    }
    Ok(())
}
