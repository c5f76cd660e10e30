//! `mvault init`: create a vault whose first commit makes its signer admin.

use std::io::Write;
use std::path::PathBuf;

use mvault::crypto;
use mvault::ops::admin;
use mvault::vault::VaultError;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::render::json_line;

/// Create a vault whose first commit, signed by the admin, makes them admin.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Where to create the vault (a new directory).
    #[arg(default_value = ".")]
    path: PathBuf,
    /// The admin's SSH public key (ssh-ed25519).
    #[arg(long, value_name = "KEY.pub")]
    admin_key: PathBuf,
    /// The admin's user name in the policy.
    #[arg(long, default_value = "admin")]
    admin_name: String,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let path = ctx.path(&args.path);
    let text = std::fs::read_to_string(&args.admin_key)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", args.admin_key.display())))?;
    let key = crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?;
    let signer = ctx.identity()?;
    let o = admin::init(&path, &args.admin_name, &key, &signer, ctx.now)?;
    render(out, &o, args.json)
}

fn render(out: &mut dyn Write, o: &admin::InitOutcome, json: bool) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(
        out,
        "initialised vault {} with admin {} ({})",
        o.path, o.admin, o.fingerprint
    )?;
    writeln!(out, "commit {}", o.commit)?;
    Ok(())
}
