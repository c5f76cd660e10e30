//! `mvault hook install`: the pre-receive hook into a bare repository.

use std::io::Write;
use std::path::PathBuf;

use mvault::crypto;
use mvault::model::text::escape;
use mvault::server::install::{self as hook_install, GitoliteProblem, InstallError, Installed};
use mvault::vault::VaultError;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Install the pre-receive hook into a bare server repository, pin the
/// root admin keys in its config, set the git options it relies on and
/// point HEAD at main. In a gitolite repository (it has gl-conf), run
/// as the gitolite hosting user: the hook goes in as gitolite's
/// repo-specific hook `mvault`, and gitolite's own hooks stay.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
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
    /// The server's own ed25519 key, which signs a receipt for every push
    /// that lands and the freshness timestamp; created (with FILE.pub)
    /// when absent. Its path goes in the repository's config
    /// (mvault.serverKey); pin FILE.pub in the vault with `mvault policy
    /// server-key`. Without it, pushes get no receipts.
    #[arg(long, value_name = "FILE")]
    server_key: Option<PathBuf>,
    /// What was done and what the check found, as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = ctx.path(&args.repo);
    let mut keys = Vec::new();
    for k in &args.root_keys {
        let text = std::fs::read_to_string(k)
            .map_err(|e| CliError::user(format!("cannot read {}: {e}", k.display())))?;
        keys.push(
            crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?,
        );
    }
    let exe = std::env::current_exe()?;
    let log_fetches = args.log_fetches.as_deref().map(|f| ctx.path(f));
    let server_key = args.server_key.as_deref().map(|f| ctx.path(f));
    let installed = hook_install::install(&hook_install::InstallRequest {
        repo: &repo,
        root_keys: &keys,
        mvault_bin: &exe,
        local_user: args.local_user.as_deref(),
        log_fetches: log_fetches.as_deref(),
        server_key: server_key.as_deref(),
    })
    .map_err(install_error)?;
    render(out, &repo, &installed, args.json)?;
    super::not_installed(&repo, &installed.check)
}

fn render(
    out: &mut dyn Write,
    repo: &std::path::Path,
    installed: &Installed,
    json: bool,
) -> CliResult {
    if json {
        return json_line(
            out,
            &serde_json::json!({
                "repo": repo.display().to_string(),
                "host": installed.host,
                "done": installed.done,
                "check": installed.check,
            }),
        );
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
    super::print_check(out, &installed.check)
}

/// An install error, with what the admin can do about it.
fn install_error(e: InstallError) -> CliError {
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
