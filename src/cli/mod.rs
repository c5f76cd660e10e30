//! The command line: clap definitions, one library call per command, a
//! renderer per result, and one place that turns errors into a message, a
//! hint and an exit code. One file per command group; `error` holds the
//! error type and its exit codes.

mod audit;
mod completions;
mod demo;
mod deploy;
mod error;
mod hook;
mod man;
mod policy;
mod policy_rule;
mod progress;
mod release;
mod sync;
mod vault;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use mvault::crypto::SshIdentity;
use mvault::model::names::Stage;
use mvault::model::text::escape;
use mvault::vault::{Vault, VaultError};

use audit::{AuditCommand, LogAction};
use error::{CliError, CliResult};
use hook::HookCommand;
use policy::PolicyCommand;

/// Keep ML models as encrypted, signed blobs in a git repository.
#[derive(Parser, Debug)]
#[command(name = "mvault", version, about, long_about = None)]
pub struct Cli {
    /// Your OpenSSH ed25519 private key (else $MVAULT_KEY, else git's
    /// user.signingkey, else ~/.ssh/id_ed25519). A passphrase is read from
    /// $MVAULT_PASSPHRASE.
    #[arg(long, global = true, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Draw no progress on the terminal (errors and warnings still print).
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    /// Say what each long step did: one line per step and per file on
    /// stderr, terminal or not.
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a vault whose first commit, signed by the admin, makes them admin.
    Init {
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
    },
    /// Register a model version from a file or directory.
    Add {
        /// A model file, or a directory of them (shards, tokenizer, config).
        path: PathBuf,
        /// Model name, e.g. nlp/bert.
        #[arg(long)]
        model: String,
        /// SemVer version, e.g. 1.2.0.
        #[arg(long)]
        version: String,
        /// The version this one was derived from (lineage).
        #[arg(long)]
        parent: Option<String>,
        /// Framework, e.g. pytorch.
        #[arg(long)]
        framework: Option<String>,
        /// Free metadata, KEY=VALUE (repeatable).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// A numeric metric, KEY=NUMBER (repeatable).
        #[arg(long = "metric", value_name = "KEY=NUMBER")]
        metric: Vec<String>,
        /// Provenance, KEY=VALUE: training_data, code_revision, params.* (repeatable).
        #[arg(long = "provenance", value_name = "KEY=VALUE")]
        provenance: Vec<String>,
        /// Commit message text.
        #[arg(long, short)]
        message: Option<String>,
        /// Keep the commit and tag local even when the clone has a remote.
        #[arg(long)]
        no_push: bool,
        /// The largest part a file is split into (bytes, or with K, M or
        /// G; default 16M, else git config mvault.partSize).
        #[arg(long, value_name = "SIZE")]
        part_size: Option<String>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and verify a version, then write it to a directory. In a
    /// clone, the version's payload is fetched from the remote when the
    /// clone lacks it; with --from, no clone is needed.
    Pull {
        /// nlp/bert@1.2.0, nlp/bert for the newest version, or
        /// nlp/bert#production for what a stage serves.
        reference: String,
        /// Destination directory.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Pull straight from a server (any git URL): the record is kept in
        /// a cache directory, and only this version's payload is fetched.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The cache directory for --from (default
        /// $XDG_CACHE_HOME/mvault/<hash of the URL>).
        #[arg(long, value_name = "DIR", requires = "from")]
        cache: Option<PathBuf>,
        /// Refuse a version that may not be deployed to this environment
        /// (not in the stage it requires, or a model it may not serve).
        #[arg(long, value_name = "ENVIRONMENT")]
        env: Option<String>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Purge an archived version's payload: a signed record on main, and
    /// the deletion of its payload ref in the same push. The record stays.
    Purge {
        /// nlp/bert@1.0.0 (archived).
        reference: String,
        /// Why (required; recorded and shown by pull, log and show).
        #[arg(long)]
        reason: String,
        /// Keep the purge local even when the clone has a remote.
        #[arg(long)]
        no_push: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a version's signatures and every blob (decrypting), or a
    /// deployed directory against the manifest (--dir).
    Verify {
        /// nlp/bert@1.2.0, or nlp/bert for the newest version.
        reference: String,
        /// Compare this directory with the manifest instead (no key needed).
        #[arg(long = "dir", id = "check_dir", value_name = "DIR")]
        check_dir: Option<PathBuf>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every version in the vault.
    List {
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one version's manifest summary and files.
    Show {
        /// nlp/bert@1.2.0, or nlp/bert for the newest version.
        reference: String,
        /// JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a version for a stage (a signed tag binding the manifest).
    Approve {
        /// nlp/bert@1.2.0, nlp/bert (newest) or nlp/bert#staging.
        reference: String,
        /// The stage the approval is for.
        #[arg(long, value_name = "STAGE", value_parser = stage_arg())]
        stage: Stage,
        /// A comment recorded in the tag.
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
    /// Promote a version to the next stage (a signed GTO tag <model>#<stage>#<n>).
    Promote {
        /// nlp/bert@1.2.0, nlp/bert (newest) or nlp/bert#staging.
        reference: String,
        /// The stage to promote it to.
        #[arg(long, value_name = "STAGE", value_parser = stage_arg())]
        to: Stage,
        /// Change ticket, recorded in the tag.
        #[arg(long)]
        ticket: Option<String>,
        /// Why, recorded in the tag.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put an earlier production version back in production; the current
    /// one becomes deprecated.
    Rollback {
        /// The model, e.g. nlp/bert.
        model: String,
        /// The version to put back.
        #[arg(long)]
        to: String,
        /// Why (required; recorded in both tags).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record, signed on main, that a version went to an environment.
    Deploy(deploy::DeployArgs),
    /// What is deployed where (the newest deployment per environment and
    /// model), and every deployment.
    Deployments(deploy::DeploymentsArgs),
    /// What each stage of every model serves, and why; each version's stage.
    Status {
        /// Only this model.
        model: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Bring this clone's record up to date with its remote: fetch main and
    /// the tags, fast-forward main (a rewritten main or a changed tag is
    /// refused), and verify what is new from the root keys.
    Sync {
        #[arg(long)]
        json: bool,
    },
    /// Events from commits and tags: who did what, when, to which artifact.
    Log {
        /// Only models matching this glob.
        #[arg(long)]
        model: Option<String>,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only these actions (repeatable); accept, refuse and fetch are
        /// the server log's, with --server.
        #[arg(long, value_enum, value_name = "ACTION")]
        action: Vec<LogAction>,
        /// From this time (RFC 3339, YYYY-MM-DD or unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Up to this time.
        #[arg(long)]
        until: Option<String>,
        /// Only the last N events.
        #[arg(long)]
        limit: Option<usize>,
        /// JSON lines.
        #[arg(long)]
        json: bool,
        /// The server's decision and access log instead (run on the
        /// server's repository): pushes accepted and refused, with the
        /// pusher, and fetches, with the user, the client's address and the
        /// versions whose payload was read. The other filters apply to it.
        #[arg(long)]
        server: bool,
    },
    /// Check the integrity of the whole record.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A model's versions as a tree of parents, with each version's stages.
    Lineage {
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// A compliance report for a model and a period.
    Report {
        model: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// json, md or html (a single self-contained file).
        #[arg(long, default_value = "md")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// The report as JSON (the same as --format json).
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Print an allowed_signers file from the policy, for
    /// `git -c gpg.ssh.allowedSignersFile=FILE verify-commit` and `ssh-keygen -Y verify`.
    Signers {
        /// One JSON object per key: user, namespaces, expiry, key.
        #[arg(long)]
        json: bool,
    },
    /// Administer the policy (admin-signed commits).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The server side: install, check and run the pre-receive hook.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
    /// Build a throwaway vault and run the whole loop, printing each step.
    Demo {
        /// Where to build it (default: a new temporary directory).
        path: Option<PathBuf>,
    },
    /// Print the completion script for a shell (see the README's Install
    /// section for where to put it).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write a man page for mvault and one for each command and subcommand
    /// (mvault.1, mvault-promote.1, mvault-policy-grant.1, …) into DIR.
    Man {
        /// Where to write them; created if missing.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// A stage, typed at the clap boundary: clap lists the stages on a typo
/// and suggests the nearest one, and completions offer them.
fn stage_arg() -> impl clap::builder::TypedValueParser<Value = Stage> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Stage::ALL.map(Stage::as_str))
        .map(|s| Stage::parse(&s).expect("clap admits only the names of Stage::ALL"))
}

/// Parse arguments, run, print; returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match dispatch(cli, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            if e.broken_pipe {
                return 0;
            }
            let _ = out.flush();
            let mut err = std::io::stderr().lock();
            if e.message.is_empty() {
                return e.exit_code();
            }
            // Messages quote paths, names and text from the repository and
            // the server: escaped line by line, so none can forge a line or
            // drive the terminal.
            let mut lines = e.message.lines();
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(err, "mvault: {}", escape(first));
            for l in lines {
                let _ = writeln!(err, "{}", escape(l));
            }
            for h in &e.hints {
                let _ = writeln!(err, "hint: {}", escape(h));
            }
            e.exit_code()
        }
    }
}

fn base_dir(cli_dir: &Option<PathBuf>) -> PathBuf {
    cli_dir.clone().unwrap_or_else(|| PathBuf::from("."))
}

/// Find the user's key: --key, $MVAULT_KEY, git's user.signingkey, ~/.ssh/id_ed25519.
fn load_identity(key: &Option<PathBuf>, dir: &Path) -> Result<SshIdentity, CliError> {
    let pass = std::env::var("MVAULT_PASSPHRASE").ok();
    let path = if let Some(k) = key {
        k.clone()
    } else if let Some(k) = std::env::var_os("MVAULT_KEY").filter(|k| !k.is_empty()) {
        PathBuf::from(k)
    } else if let Some(k) = git_signing_key(dir)? {
        k
    } else {
        let home = std::env::var_os("HOME").ok_or_else(|| {
            CliError::user("no key: pass --key or set MVAULT_KEY (HOME is not set)")
        })?;
        let p = Path::new(&home).join(".ssh/id_ed25519");
        if !p.exists() {
            return Err(
                CliError::user(format!("no key: {} does not exist", p.display())).hint(
                    "pass --key PATH, set MVAULT_KEY, or create one with ssh-keygen -t ed25519",
                ),
            );
        }
        p
    };
    SshIdentity::open(&path, pass.as_deref()).map_err(|e| CliError::from(VaultError::from(e)))
}

fn git_signing_key(dir: &Path) -> Result<Option<PathBuf>, CliError> {
    let Ok(out) = std::process::Command::new("git")
        .args(["config", "--get", "user.signingkey"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return Ok(None);
    };
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if v.is_empty() {
        return Ok(None);
    }
    if v.starts_with("key::") || v.starts_with("ssh-") {
        return Err(CliError::user(
            "git's user.signingkey holds a public key literal; mvault needs the private key file",
        )
        .hint("pass --key PATH or set MVAULT_KEY"));
    }
    let expanded = match v.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest),
        None => PathBuf::from(&v),
    };
    let private = match expanded.to_str().and_then(|s| s.strip_suffix(".pub")) {
        Some(p) => PathBuf::from(p),
        None => expanded,
    };
    Ok(Some(private))
}

fn open_vault(dir: &Path) -> Result<Vault, CliError> {
    Ok(Vault::open(dir)?)
}

fn json_line(out: &mut dyn Write, v: &impl serde::Serialize) -> CliResult {
    writeln!(
        out,
        "{}",
        mvault::model::text::json_hide_controls(
            &serde_json::to_string(v).map_err(|e| CliError::user(e.to_string()))?
        )
    )?;
    Ok(())
}
fn dispatch(cli: Cli, out: &mut dyn Write) -> CliResult {
    let dir = base_dir(&cli.dir);
    let now = mvault::vault::now();
    match cli.command {
        cmd @ (Command::Init { .. }
        | Command::Add { .. }
        | Command::Pull { .. }
        | Command::Purge { .. }
        | Command::Verify { .. }
        | Command::List { .. }
        | Command::Show { .. }
        | Command::Signers { .. }) => {
            let progress = progress::Feedback::new(cli.quiet, cli.verbose);
            vault::run(cmd, &cli.key, &dir, now, &progress, out)
        }
        cmd @ (Command::Approve { .. }
        | Command::Promote { .. }
        | Command::Rollback { .. }
        | Command::Status { .. }) => release::run(cmd, &cli.key, &dir, now, out),
        cmd @ (Command::Log { .. }
        | Command::Audit { .. }
        | Command::Lineage { .. }
        | Command::Report { .. }) => audit::run(cmd, &cli.key, &dir, now, out),
        Command::Policy { command } => policy::run(command, &cli.key, &dir, now, out),
        Command::Hook { command } => hook::run(command, &dir, now, out),
        Command::Sync { json } => sync::run(json, &dir, now, out),
        Command::Deploy(args) => deploy::run_deploy(args, &cli.key, &dir, now, out),
        Command::Deployments(args) => deploy::run_deployments(args, &dir, now, out),
        Command::Demo { path } => demo::run(path, out),
        Command::Completions { shell } => completions::run(shell, out),
        Command::Man { dir: pages } => man::run(&dir.join(pages), out),
    }
}
