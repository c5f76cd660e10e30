//! `mvault policy`: add and remove users, grant and revoke roles, show and
//! lint the policy.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use mvault::crypto;
use mvault::model::policy::{self, Role};
use mvault::ops::admin::{self, PolicyChange};
use mvault::vault::{ErrorKind, VaultError};

use super::{load_identity, open_vault, CliError, CliResult};

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Add a user (or another key of a user).
    AddUser {
        name: String,
        /// The user's SSH public key file.
        #[arg(long = "key-file", value_name = "KEY.pub")]
        key_file: PathBuf,
        /// The day (UTC) from which the key no longer counts, YYYY-MM-DD.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        no_push: bool,
    },
    /// Remove a user and their grants; rotates the data keys they could read.
    RemoveUser {
        name: String,
        #[arg(long)]
        no_push: bool,
    },
    /// Grant a role on models matching a glob; re-wraps their key rings.
    Grant {
        name: String,
        /// viewer, developer, ml_engineer, ml_admin or approver.
        #[arg(long)]
        role: String,
        /// Model glob, e.g. 'nlp/*' or '**'.
        #[arg(long)]
        models: String,
        #[arg(long)]
        no_push: bool,
    },
    /// Revoke a role; rotates the data keys of models the user can no longer read.
    Revoke {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        models: String,
        #[arg(long)]
        no_push: bool,
    },
    /// Print the policy in force on main.
    Show,
    /// Lint a policy file; errors name the line.
    Check { file: PathBuf },
}

fn parse_role(s: &str) -> Result<Role, CliError> {
    Role::parse(s).ok_or_else(|| {
        CliError::user(format!(
            "unknown role {s:?}: roles are viewer, developer, ml_engineer, ml_admin, approver"
        ))
    })
}

/// Run one `mvault policy` subcommand.
pub(super) fn run(
    cmd: PolicyCommand,
    key: &Option<PathBuf>,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    let (change, no_push) = match cmd {
        PolicyCommand::Show => {
            let vault = open_vault(dir)?;
            write!(out, "{}", vault.policy()?.to_toml())?;
            return Ok(());
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", file.display())))?;
            return match admin::check_policy_text(&text) {
                Ok(summary) => {
                    writeln!(out, "{}: ok: {summary}", file.display())?;
                    Ok(())
                }
                Err(e) => Err(CliError {
                    kind: ErrorKind::Integrity,
                    message: format!("{}: {e}", file.display()),
                    hints: Vec::new(),
                    broken_pipe: false,
                }),
            };
        }
        PolicyCommand::AddUser {
            name,
            key_file,
            expires,
            no_push,
        } => {
            let text = std::fs::read_to_string(&key_file)
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", key_file.display())))?;
            let key =
                crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?;
            let expires = match expires {
                None => None,
                Some(d) => Some(policy::parse_date(&d).ok_or_else(|| {
                    CliError::user(format!("--expires {d:?}: expected YYYY-MM-DD"))
                })?),
            };
            (PolicyChange::AddUser { name, key, expires }, no_push)
        }
        PolicyCommand::RemoveUser { name, no_push } => (PolicyChange::RemoveUser { name }, no_push),
        PolicyCommand::Grant {
            name,
            role,
            models,
            no_push,
        } => (
            PolicyChange::Grant {
                user: name,
                role: parse_role(&role)?,
                models,
            },
            no_push,
        ),
        PolicyCommand::Revoke {
            name,
            role,
            models,
            no_push,
        } => (
            PolicyChange::Revoke {
                user: name,
                role: parse_role(&role)?,
                models,
            },
            no_push,
        ),
    };
    let vault = open_vault(dir)?;
    let identity = load_identity(key, dir)?;
    let o = admin::change_policy(&vault, change, &identity, now, !no_push)?;
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
