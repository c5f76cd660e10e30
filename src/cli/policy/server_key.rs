//! `mvault policy server-key`: pin the server's receipt key in the vault.

use std::io::Write;
use std::path::PathBuf;

use mvault::crypto;
use mvault::ops::admin::PolicyChange;
use mvault::vault::VaultError;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};

/// Pin the server's key (`[server] key`): clients then believe receipts
/// and timestamps signed by it, and only by it. `mvault hook server-key
/// REPO` prints the key on the server.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The server's SSH public key file (what `mvault hook server-key` prints).
    #[arg(
        long = "key-file",
        value_name = "KEY.pub",
        required_unless_present = "remove"
    )]
    key_file: Option<PathBuf>,
    /// Unpin the server key: receipts are no longer believed.
    #[arg(long, conflicts_with = "key_file")]
    remove: bool,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let key = match &args.key_file {
        None => None,
        Some(f) => {
            let text = std::fs::read_to_string(ctx.path(f))
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", f.display())))?;
            Some(crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?)
        }
    };
    super::apply(
        PolicyChange::ServerKey { key },
        args.no_push,
        args.json,
        ctx,
        out,
    )
}
