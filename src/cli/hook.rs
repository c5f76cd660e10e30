//! `mvault hook`: the server side (install, check, pre-receive, fetch log,
//! decision log) and the client's pre-push check.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use mvault::crypto;
use mvault::model::text::escape;
use mvault::ops::register;
use mvault::server::install::CheckStatus;
use mvault::server::{install as hook_install, log as server_log};
use mvault::vault::{ErrorKind, VaultError};
use mvault::verify::{prepush, receive};

use super::{json_line, load_identity, open_vault, CliError, CliResult};

#[derive(Subcommand, Debug)]
pub(super) enum HookCommand {
    /// Install the pre-receive hook into a bare server repository, pin the
    /// root admin keys in its config, set the git options it relies on and
    /// point HEAD at main. In a gitolite repository (it has gl-conf), run
    /// as the gitolite hosting user: the hook goes in as gitolite's
    /// repo-specific hook `mvault`, and gitolite's own hooks stay.
    Install {
        /// The bare repository.
        repo: PathBuf,
        /// A root admin's SSH public key (repeatable).
        #[arg(long = "root-key", value_name = "KEY.pub", required = true)]
        root_keys: Vec<PathBuf>,
        /// A user trusted for pushes that carry no server identity (local pushes).
        #[arg(long)]
        local_user: Option<String>,
        /// Also log fetches: set uploadpack.packObjectsHook in this git
        /// config file (git reads that key only from the server user's
        /// global or system config: the hosting user's ~/.gitconfig under
        /// sshd or gitolite, the file the web server's GIT_CONFIG_GLOBAL
        /// names under git http-backend).
        #[arg(long, value_name = "FILE")]
        log_fetches: Option<PathBuf>,
        /// What was done and what the check found, as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Report whether a server repository is installed correctly: the
    /// hook, the pinned keys, the git options, HEAD, and whether fetches
    /// are logged.
    Check {
        /// The bare repository.
        repo: PathBuf,
        /// The git config file the server's git reads as global, when it
        /// is not this shell's (a web server's GIT_CONFIG_GLOBAL).
        #[arg(long, value_name = "FILE")]
        log_fetches: Option<PathBuf>,
        /// One JSON object per check: status (ok, warn, fail) and what.
        #[arg(long)]
        json: bool,
    },
    /// Run as git's pre-receive hook (reads git's lines on stdin).
    PreReceive,
    /// Client side: run the server's rules before a push (git's pre-push hook).
    PrePush {
        /// The remote's name, as git passes it.
        remote: Option<String>,
        /// The remote's URL, as git passes it.
        url: Option<String>,
    },
    /// Install the client-side pre-push check into this clone.
    InstallPrePush {
        #[arg(long)]
        json: bool,
    },
    /// Run in place of git pack-objects (uploadpack.packObjectsHook): log
    /// who fetched which refs, then pack.
    #[command(trailing_var_arg = true)]
    PackObjects {
        /// The pack-objects command line git passes.
        #[arg(allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// The hook's hash-chained decision log.
    Log {
        #[command(subcommand)]
        command: HookLogCommand,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum HookLogCommand {
    /// Check that no line of the decision log was edited, removed or inserted.
    Verify {
        /// The bare repository (default: the current one).
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Run one `mvault hook` subcommand.
pub(super) fn run(
    cmd: HookCommand,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    match cmd {
        HookCommand::PreReceive => {
            let git_dir = std::env::var_os("GIT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.to_owned());
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
            // Fail closed: a panic anywhere refuses the push.
            let result = std::panic::catch_unwind(|| {
                receive::pre_receive(&git_dir, &input, |k| std::env::var(k).ok(), now)
            });
            let (ok, lines) = result.unwrap_or_else(|_| (false, vec!["mvault: refused: internal error: the hook crashed".to_owned(), "hint: the hook fails closed; ask the server admin to check mvault hook check".to_owned()]));
            let mut err = std::io::stderr().lock();
            for l in &lines {
                writeln!(err, "{l}")?;
            }
            if !ok {
                return Err(CliError {
                    kind: ErrorKind::Policy,
                    message: "push refused".into(),
                    hints: Vec::new(),
                    broken_pipe: false,
                }
                .quiet());
            }
        }
        HookCommand::PrePush { remote, url: _ } => {
            let store =
                mvault::store::Store::open(dir).map_err(|e| CliError::from(VaultError::from(e)))?;
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
            // Who pushes, when it can be known here: the server decides anyway.
            let pusher = std::env::var("MVAULT_USER")
                .ok()
                .filter(|u| !u.is_empty())
                .or_else(|| {
                    let vault = open_vault(dir).ok()?;
                    let identity = load_identity(&None, dir).ok()?;
                    register::signer_user(&vault.policy().ok()?, &identity).ok()
                });
            let (ok, lines) = prepush::pre_push(
                &store,
                remote.as_deref().unwrap_or("origin"),
                &input,
                pusher,
                now,
            );
            let mut err = std::io::stderr().lock();
            for l in &lines {
                writeln!(err, "{l}")?;
            }
            if !ok {
                return Err(CliError {
                    kind: ErrorKind::Policy,
                    message: String::new(),
                    hints: Vec::new(),
                    broken_pipe: false,
                });
            }
        }
        HookCommand::InstallPrePush { json } => {
            let store =
                mvault::store::Store::open(dir).map_err(|e| CliError::from(VaultError::from(e)))?;
            let path = hook_install::install_pre_push(&store, &std::env::current_exe()?)?;
            if json {
                return json_line(
                    out,
                    &serde_json::json!({ "installed": path.display().to_string() }),
                );
            }
            writeln!(
                out,
                "installed {}: pushes are checked against the vault's rules first",
                path.display()
            )?;
        }
        HookCommand::PackObjects { command } => {
            let git_dir = std::env::var_os("GIT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.to_owned());
            let code =
                server_log::pack_objects(&git_dir, &command, |k| std::env::var(k).ok(), now)?;
            if code != 0 {
                return Err(CliError {
                    kind: ErrorKind::Internal,
                    message: String::new(),
                    hints: Vec::new(),
                    broken_pipe: false,
                });
            }
        }
        HookCommand::Install {
            repo,
            root_keys,
            local_user,
            log_fetches,
            json,
        } => {
            let repo = if repo.is_relative() {
                dir.join(repo)
            } else {
                repo
            };
            let mut keys = Vec::new();
            for k in &root_keys {
                let text = std::fs::read_to_string(k)
                    .map_err(|e| CliError::user(format!("cannot read {}: {e}", k.display())))?;
                keys.push(
                    crypto::parse_public_key(&text)
                        .map_err(|e| CliError::from(VaultError::from(e)))?,
                );
            }
            let exe = std::env::current_exe()?;
            let log_fetches = log_fetches.map(|f| if f.is_relative() { dir.join(f) } else { f });
            let installed = hook_install::install(&hook_install::InstallRequest {
                repo: &repo,
                root_keys: &keys,
                mvault_bin: &exe,
                local_user: local_user.as_deref(),
                log_fetches: log_fetches.as_deref(),
            })
            .map_err(install_error)?;
            if json {
                json_line(
                    out,
                    &serde_json::json!({
                        "repo": repo.display().to_string(),
                        "host": installed.host,
                        "done": installed.done,
                        "check": installed.check,
                    }),
                )?;
                return not_installed(&repo, &installed.check);
            }
            let host = match &installed.host {
                hook_install::Host::Plain => String::new(),
                hook_install::Host::Gitolite { name } => {
                    format!(" (gitolite repository {})", escape(name))
                }
            };
            writeln!(
                out,
                "installed the mvault pre-receive hook in {}{host}",
                repo.display()
            )?;
            for line in &installed.done {
                writeln!(out, "done {}", escape(line))?;
            }
            print_check(out, &installed.check)?;
            not_installed(&repo, &installed.check)?;
        }
        HookCommand::Check {
            repo,
            log_fetches,
            json,
        } => {
            let repo = if repo.is_relative() {
                dir.join(repo)
            } else {
                repo
            };
            let log_fetches = log_fetches.map(|f| if f.is_relative() { dir.join(f) } else { f });
            let items = hook_install::check(&repo, log_fetches.as_deref());
            if json {
                for i in &items {
                    json_line(out, i)?;
                }
            } else {
                print_check(out, &items)?;
            }
            not_installed(&repo, &items)?;
        }
        HookCommand::Log {
            command: HookLogCommand::Verify { repo, json },
        } => {
            let repo = repo
                .map(|r| if r.is_relative() { dir.join(r) } else { r })
                .unwrap_or_else(|| dir.to_owned());
            let store = mvault::store::Store::open(&repo)
                .map_err(|e| CliError::from(VaultError::from(e)))?;
            match server_log::verify_log(store.git_dir()) {
                Ok(n) if json => json_line(
                    out,
                    &serde_json::json!({ "log": server_log::LOG_FILE, "entries": n, "intact": true }),
                )?,
                Ok(n) => writeln!(out, "{}: {n} entries (decisions and fetches), chain intact", server_log::LOG_FILE)?,
                Err(e) => {
                    return Err(CliError {
                        kind: ErrorKind::Integrity,
                        message: e,
                        hints: vec!["the server's decision log was altered; compare with a backup and investigate".into()],
                        broken_pipe: false,
                    })
                }
            }
        }
    }
    Ok(())
}

fn print_check(out: &mut dyn Write, items: &[hook_install::CheckItem]) -> CliResult {
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
fn not_installed(repo: &Path, items: &[hook_install::CheckItem]) -> CliResult {
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

/// An install error, with what the admin can do about it.
fn install_error(e: hook_install::InstallError) -> CliError {
    use hook_install::{GitoliteProblem, InstallError};
    let hint = match &e {
        InstallError::ForeignHook { .. } => Some(
            "move it to another name and call it from a hook of yours, or have it run `mvault hook pre-receive` on the same input",
        ),
        InstallError::Gitolite { problem, .. } => Some(match problem {
            GitoliteProblem::NoCommand(_) | GitoliteProblem::Command { .. } => {
                "run mvault hook install as the gitolite hosting user (HOME with its .gitolite.rc, gitolite on PATH)"
            }
            GitoliteProblem::RepoSpecificHooksOff | GitoliteProblem::NoLocalCode => {
                "in ~/.gitolite.rc, set LOCAL_CODE => \"$ENV{HOME}/local\" and add 'repo-specific-hooks' to ENABLE"
            }
            GitoliteProblem::RefNamesWithoutHash => {
                "in ~/.gitolite.rc, before %RC, allow '#' in ref names: $REF_OR_FILENAME_PATT = qr(^[0-9a-zA-Z][-0-9a-zA-Z._\\@/+ :,#]*$);"
            }
            GitoliteProblem::OutsideRepoBase { .. } => {
                "give the repository's path under gitolite's repositories directory"
            }
        }),
        _ => None,
    };
    let err = CliError::user(e.to_string());
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}
