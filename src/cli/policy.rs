//! `mvault policy`: add and remove users, grant and revoke roles, show and
//! lint the policy.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use mvault::crypto;
use mvault::model::policy::{self, Role};
use mvault::ops::admin::{self, PolicyChange};
use mvault::vault::{ErrorKind, VaultError};

use super::{json_line, load_identity, open_vault, CliError, CliResult};

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
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and their grants; rotates the data keys they could read.
    RemoveUser {
        name: String,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        json: bool,
    },
    /// Print the policy in force on main.
    Show {
        /// The policy as one JSON object, with the keys of policy.toml.
        #[arg(long)]
        json: bool,
    },
    /// Add, change and remove rules of the policy (environments).
    Rule {
        #[command(subcommand)]
        command: super::policy_rule::RuleCommand,
    },
    /// Lint a policy file; errors name the line.
    Check {
        file: PathBuf,
        /// One JSON object: ok, and the counts or the error.
        #[arg(long)]
        json: bool,
    },
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
    let (change, no_push, json) = match cmd {
        PolicyCommand::Show { json } => {
            let vault = open_vault(dir)?;
            let text = vault.policy()?.to_toml();
            if json {
                let value: toml::Value = toml::from_str(&text)
                    .map_err(|e| CliError::user(format!("the policy as TOML: {e}")))?;
                return json_line(out, &value);
            }
            write!(out, "{text}")?;
            return Ok(());
        }
        PolicyCommand::Check { file, json } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", file.display())))?;
            let checked = admin::check_policy_text(&text);
            if json {
                json_line(
                    out,
                    &match &checked {
                        Ok(summary) => serde_json::json!({
                            "file": file.display().to_string(),
                            "ok": true,
                            "summary": summary,
                            "error": null,
                        }),
                        Err(e) => serde_json::json!({
                            "file": file.display().to_string(),
                            "ok": false,
                            "summary": null,
                            "error": e.to_string(),
                        }),
                    },
                )?;
            }
            return match checked {
                Ok(summary) => {
                    if !json {
                        writeln!(out, "{}: ok: {summary}", file.display())?;
                    }
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
            json,
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
            (PolicyChange::AddUser { name, key, expires }, no_push, json)
        }
        PolicyCommand::RemoveUser {
            name,
            no_push,
            json,
        } => (PolicyChange::RemoveUser { name }, no_push, json),
        PolicyCommand::Rule { command } => super::policy_rule::change(command)?,
        PolicyCommand::Grant {
            name,
            role,
            models,
            no_push,
            json,
        } => (
            PolicyChange::Grant {
                user: name,
                role: parse_role(&role)?,
                models,
            },
            no_push,
            json,
        ),
        PolicyCommand::Revoke {
            name,
            role,
            models,
            no_push,
            json,
        } => (
            PolicyChange::Revoke {
                user: name,
                role: parse_role(&role)?,
                models,
            },
            no_push,
            json,
        ),
    };
    let vault = open_vault(dir)?;
    let identity = load_identity(key, dir)?;
    let o = admin::change_policy(&vault, change, &identity, now, !no_push)?;
    if json {
        return json_line(out, &o);
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
