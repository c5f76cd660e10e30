//! `mvault policy add-user`: a user, or another key of a user.

use std::io::Write;
use std::path::PathBuf;

use mvault::crypto;
use mvault::ops::admin::PolicyChange;
use mvault::vault::VaultError;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::values;

/// Add a user (or another key of a user).
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    name: String,
    /// The user's SSH public key file.
    #[arg(long = "key-file", value_name = "KEY.pub")]
    key_file: PathBuf,
    /// The day (UTC) from which the key no longer counts, YYYY-MM-DD.
    #[arg(long, value_parser = values::expiry_date)]
    expires: Option<time::Date>,
    #[arg(long)]
    no_push: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let text = std::fs::read_to_string(&args.key_file)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", args.key_file.display())))?;
    let key = crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?;
    let change = PolicyChange::AddUser {
        name: args.name,
        key,
        expires: args.expires,
    };
    super::apply(change, args.no_push, args.json, ctx, out)
}
