//! `mvault hook server-key`: the server's receipt key, to pin in the vault.

use std::io::Write;
use std::path::PathBuf;

use mvault::crypto;
use mvault::server::receipts;
use mvault::store::Store;
use mvault::vault::VaultError;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};

/// Print the public key of the server's receipt key (`mvault.serverKey`),
/// for an admin to pin with `mvault policy server-key --key-file`.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository.
    repo: PathBuf,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = ctx.path(&args.repo);
    let store = Store::open(&repo).map_err(|e| CliError::from(VaultError::from(e)))?;
    let key = receipts::server_key(&store)
        .map_err(|e| CliError::user(format!("{}: {e}", receipts::SERVER_KEY_CONFIG)))?
        .ok_or_else(|| {
            CliError::user(format!(
                "{} has no server key ({})",
                repo.display(),
                receipts::SERVER_KEY_CONFIG
            ))
            .hint("mvault hook install REPO --root-key KEY.pub --server-key FILE creates one")
        })?;
    use mvault::crypto::Signer;
    writeln!(
        out,
        "{} {}",
        crypto::public_key_line(key.public_key()),
        receipts::SERVER_ACTOR
    )?;
    Ok(())
}
