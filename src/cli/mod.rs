//! The command line: clap definitions, one library call per command, a
//! renderer per result, and one place that turns errors into a message, a
//! hint and an exit code.

mod demo;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use mvault::audit::events;
use mvault::audit::report;
use mvault::crypto::{self, SshIdentity};
use mvault::model::names::{ModelName, Stage, Version, VersionRef};
use mvault::model::policy::{self, Role};
use mvault::model::text::escape;
use mvault::ops::admin::{self, PolicyChange};
use mvault::ops::register::{self, AddRequest};
use mvault::ops::release;
use mvault::ops::retrieve::{self, DirProblem};
use mvault::server::{install as hook_install, log as server_log};
use mvault::vault::{self, ErrorKind, Vault, VaultError};
use mvault::verify::{prepush, receive};

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
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and verify a version, then write it to a directory.
    Pull {
        /// nlp/bert@1.2.0, or nlp/bert for the newest version.
        reference: String,
        /// Destination directory.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
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
        #[arg(long)]
        stage: String,
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
        /// development, staging, production, deprecated or archived.
        #[arg(long)]
        to: String,
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
    /// Every model's versions and each stage's current version.
    Status {
        /// Only this model.
        model: Option<String>,
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
        /// Only these actions (repeatable): register, approve, promote,
        /// rollback, deprecate, archive, policy, add-user, remove-user,
        /// grant, revoke, key-rewrap, key-rotation, init.
        #[arg(long)]
        action: Vec<String>,
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
        /// The server's decision and access log instead (run on the server's repository).
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
    },
    /// Print an allowed_signers file from the policy, for
    /// `git -c gpg.ssh.allowedSignersFile=FILE verify-commit` and `ssh-keygen -Y verify`.
    Signers,
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
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Replay the whole history: every signature against the policy in force
    /// at its point, every manifest against its tree, every promotion chain
    /// link and approval, every key ring against its readers. Names the
    /// first break.
    Verify {
        /// Also decrypt every version your key can read and check every digest.
        #[arg(long)]
        decrypt: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum HookCommand {
    /// Install the pre-receive hook into a bare server repository, pin the
    /// root admin keys in its config and set the git options it relies on.
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
        /// global or system config; use the file GIT_CONFIG_GLOBAL names).
        #[arg(long, value_name = "FILE")]
        log_fetches: Option<PathBuf>,
    },
    /// Report whether a server repository is installed correctly.
    Check {
        /// The bare repository.
        repo: PathBuf,
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
    InstallPrePush,
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
enum HookLogCommand {
    /// Check that no line of the decision log was edited, removed or inserted.
    Verify {
        /// The bare repository (default: the current one).
        repo: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
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

/// A failure as the user sees it.
pub struct CliError {
    kind: ErrorKind,
    message: String,
    hints: Vec<String>,
}

impl CliError {
    fn user(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::User,
            message: message.into(),
            hints: Vec::new(),
        }
    }
    /// An error whose lines were already printed.
    fn quiet(mut self) -> Self {
        self.message.clear();
        self
    }
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }
    fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::User => 2,
            ErrorKind::Policy => 3,
            ErrorKind::Integrity => 4,
            ErrorKind::Internal => 1,
        }
    }
}

impl From<VaultError> for CliError {
    fn from(e: VaultError) -> Self {
        CliError {
            kind: e.kind(),
            message: e.to_string(),
            hints: e.hint().into_iter().collect(),
        }
    }
}

impl From<mvault::model::names::NameError> for CliError {
    fn from(e: mvault::model::names::NameError) -> Self {
        CliError::user(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError {
            kind: ErrorKind::Internal,
            message: e.to_string(),
            hints: Vec::new(),
        }
    }
}

type CliResult = Result<(), CliError>;

/// Parse arguments, run, print; returns the exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match dispatch(cli, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            if e.kind == ErrorKind::Internal && e.message.contains("Broken pipe") {
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

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(CliError::user(format!(
                "--{what} {item:?}: expected KEY=VALUE"
            )));
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(CliError::user(format!(
                "--{what} {item:?}: a key is [A-Za-z0-9._-]+"
            )));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
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
    let now = vault::now();
    match cli.command {
        Command::Init {
            path,
            admin_key,
            admin_name,
        } => {
            let path = if path.is_relative() {
                dir.join(path)
            } else {
                path
            };
            let text = std::fs::read_to_string(&admin_key)
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", admin_key.display())))?;
            let key =
                crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?;
            let signer = load_identity(&cli.key, &dir)?;
            let o = admin::init(&path, &admin_name, &key, &signer, now)?;
            writeln!(
                out,
                "initialised vault {} with admin {} ({})",
                o.path, o.admin, o.fingerprint
            )?;
            writeln!(out, "commit {}", o.commit)?;
        }
        Command::Add {
            path,
            model,
            version,
            parent,
            framework,
            meta,
            metric,
            provenance,
            message,
            no_push,
            json,
        } => {
            let model = ModelName::parse(&model)?;
            let version = Version::parse(&version)?;
            let parent = parent.as_deref().map(Version::parse).transpose()?;
            let metadata = key_values(&meta, "meta")?;
            let mut metrics = BTreeMap::new();
            for (k, v) in key_values(&metric, "metric")? {
                let n: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| {
                        CliError::user(format!("--metric {k}={v}: a metric is a finite number"))
                    })?;
                metrics.insert(k, n);
            }
            let provenance = key_values(&provenance, "provenance")?;
            let vault = open_vault(&dir)?;
            let identity = load_identity(&cli.key, &dir)?;
            let path = if path.is_relative() {
                dir.join(path)
            } else {
                path
            };
            let o = register::add(
                &vault,
                AddRequest {
                    path,
                    model,
                    version,
                    parent,
                    framework,
                    metadata,
                    metrics,
                    provenance,
                    message,
                    identity: &identity,
                    push: !no_push,
                    now,
                },
            )?;
            if json {
                json_line(out, &o)?;
            } else {
                writeln!(
                    out,
                    "registered {}@{}: {} file(s), {} bytes, {} reused from earlier versions",
                    o.model, o.version, o.files, o.bytes, o.reused
                )?;
                writeln!(out, "manifest sha256 {}", o.manifest_sha256)?;
                writeln!(out, "commit {} tag {}", o.commit, o.tag)?;
                if o.new_key_ring {
                    writeln!(out, "created the key ring of {}", o.model)?;
                }
                match &o.pushed {
                    Some(p) if p.rebuilds > 0 => writeln!(
                        out,
                        "pushed to {} (rebuilt {} time(s) on a newer main)",
                        p.remote, p.rebuilds
                    )?,
                    Some(p) => writeln!(out, "pushed to {}", p.remote)?,
                    None => writeln!(out, "not pushed (no remote, or --no-push)")?,
                }
            }
        }
        Command::Pull {
            reference,
            output,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(&dir)?;
            let identity = load_identity(&cli.key, &dir)?;
            let output = if output.is_relative() {
                dir.join(output)
            } else {
                output
            };
            let v = retrieve::pull(&vault, &r, &output, &identity)?;
            if json {
                json_line(out, &v)?;
            } else {
                writeln!(
                    out,
                    "pulled {}@{} into {}: {} file(s), {} bytes, signed by {}, every digest verified",
                    v.model,
                    v.version,
                    output.display(),
                    v.files,
                    v.bytes,
                    v.author
                )?;
            }
        }
        Command::Verify {
            reference,
            check_dir,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(&dir)?;
            match check_dir {
                Some(d) => {
                    let d = if d.is_relative() { dir.join(d) } else { d };
                    let (v, problems) = retrieve::verify_dir(&vault, &r, &d)?;
                    if json {
                        json_line(
                            out,
                            &serde_json::json!({"verified": v, "problems": problems}),
                        )?;
                    } else {
                        for p in &problems {
                            match p {
                                DirProblem::Missing { path } => {
                                    writeln!(out, "missing     {}", escape(path))?
                                }
                                DirProblem::Changed {
                                    path,
                                    check,
                                    expected,
                                    found,
                                } => writeln!(
                                    out,
                                    "changed     {} ({check}: expected {expected}, found {})",
                                    escape(path),
                                    escape(found)
                                )?,
                                DirProblem::Unexpected { path } => {
                                    writeln!(out, "unexpected  {}", escape(path))?
                                }
                            }
                        }
                        if problems.is_empty() {
                            writeln!(
                                out,
                                "{} matches {}@{}: {} file(s)",
                                d.display(),
                                v.model,
                                v.version,
                                v.files
                            )?;
                        }
                    }
                    if !problems.is_empty() {
                        return Err(VaultError::DirMismatch {
                            dir: d.display().to_string(),
                            model: v.model,
                            version: v.version,
                            count: problems.len(),
                        }
                        .into());
                    }
                }
                None => {
                    let identity = load_identity(&cli.key, &dir)?;
                    let v = retrieve::verify(&vault, &r, &identity)?;
                    if json {
                        json_line(out, &v)?;
                    } else {
                        writeln!(
                            out,
                            "verified {}@{}: manifest and commit signatures, {} blob(s) decrypted, {} bytes, every digest matches",
                            v.model, v.version, v.files, v.bytes
                        )?;
                    }
                }
            }
        }
        Command::List { json } => {
            let vault = open_vault(&dir)?;
            for s in vault.list()? {
                if json {
                    json_line(out, &s)?;
                } else {
                    writeln!(
                        out,
                        "{}@{}\t{} file(s)\t{} bytes\t{}\t{}",
                        s.model,
                        s.version,
                        s.files,
                        s.size,
                        escape(&s.author),
                        escape(&s.created)
                    )?;
                }
            }
        }
        Command::Show { reference, json } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(&dir)?;
            let (m, v) = mvault::ops::resolve::resolve(&vault, &r)?;
            let rec = vault.record(&m, &v)?;
            vault.verify_manifest_signature(&rec)?;
            let s = Vault::summary(&rec);
            if json {
                let files: Vec<_> = rec
                    .manifest
                    .files
                    .iter()
                    .map(|f| serde_json::json!({"path": f.path, "size": f.size, "sha256": f.sha256.to_hex()}))
                    .collect();
                json_line(
                    out,
                    &serde_json::json!({
                        "summary": s,
                        "metadata": rec.manifest.metadata,
                        "metrics": rec.manifest.metrics,
                        "provenance": rec.manifest.provenance,
                        "data_key": rec.manifest.data_key,
                        "files": files,
                    }),
                )?;
            } else {
                writeln!(out, "{}@{}", s.model, s.version)?;
                if let Some(p) = &s.parent {
                    writeln!(out, "parent      {}@{p}", s.model)?;
                }
                writeln!(
                    out,
                    "author      {} ({})",
                    escape(&s.author),
                    escape(&rec.manifest.author_key)
                )?;
                writeln!(out, "created     {}", escape(&s.created))?;
                if let Some(f) = &s.framework {
                    writeln!(out, "framework   {}", escape(f))?;
                }
                writeln!(out, "manifest    sha256 {}", s.manifest_sha256)?;
                writeln!(out, "merkle root {}", s.merkle_root)?;
                writeln!(out, "data key    {}", rec.manifest.data_key)?;
                for (k, v) in &rec.manifest.metrics {
                    writeln!(out, "metric      {} = {v}", escape(k))?;
                }
                for (k, v) in &rec.manifest.metadata {
                    writeln!(out, "meta        {} = {}", escape(k), escape(v))?;
                }
                for (k, v) in &rec.manifest.provenance {
                    writeln!(out, "provenance  {} = {}", escape(k), escape(v))?;
                }
                writeln!(out, "files       {} ({} bytes)", s.files, s.size)?;
                for f in &rec.manifest.files {
                    writeln!(
                        out,
                        "  {}  {:>12}  {}",
                        f.sha256.to_hex(),
                        f.size,
                        escape(&f.path)
                    )?;
                }
            }
        }
        Command::Approve {
            reference,
            stage,
            comment,
            no_push,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let stage = Stage::parse(&stage)?;
            let vault = open_vault(&dir)?;
            let identity = load_identity(&cli.key, &dir)?;
            let o = release::approve(
                &vault,
                &r,
                stage,
                comment.as_deref(),
                &identity,
                now,
                !no_push,
            )?;
            render_tags(
                out,
                &o,
                json,
                &format!("approved {}@{} for {}", o.model, o.version, o.to),
            )?;
        }
        Command::Promote {
            reference,
            to,
            ticket,
            reason,
            no_push,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let to = Stage::parse(&to)?;
            let vault = open_vault(&dir)?;
            let identity = load_identity(&cli.key, &dir)?;
            let o = release::promote(
                &vault,
                &r,
                to,
                ticket.as_deref(),
                reason.as_deref(),
                &identity,
                now,
                !no_push,
            )?;
            let what = format!(
                "promoted {}@{} from {} to {}",
                o.model,
                o.version,
                o.from.clone().unwrap_or_default(),
                o.to
            );
            render_tags(out, &o, json, &what)?;
        }
        Command::Rollback {
            model,
            to,
            reason,
            no_push,
            json,
        } => {
            let model = ModelName::parse(&model)?;
            let version = Version::parse(&to)?;
            let vault = open_vault(&dir)?;
            let identity = load_identity(&cli.key, &dir)?;
            let o = release::rollback(&vault, &model, &version, &reason, &identity, now, !no_push)?;
            render_tags(
                out,
                &o,
                json,
                &format!("rolled {} production back to {}", o.model, o.version),
            )?;
        }
        Command::Status { model, json } => {
            let model = model.as_deref().map(ModelName::parse).transpose()?;
            let vault = open_vault(&dir)?;
            for m in release::status(&vault, model.as_ref())? {
                if json {
                    json_line(out, &m)?;
                    continue;
                }
                writeln!(
                    out,
                    "{}  latest {}",
                    m.model,
                    m.latest.clone().unwrap_or_else(|| "-".into())
                )?;
                for (stage, v) in &m.stages {
                    writeln!(out, "  {stage:<12} {}", escape(v))?;
                }
                for (v, stage) in &m.versions {
                    writeln!(out, "    {:<16} {stage}", escape(v))?;
                }
            }
        }
        Command::Log {
            model,
            version,
            actor,
            action,
            since,
            until,
            limit,
            json,
            server,
        } => {
            if server {
                let store = mvault::store::Store::open(&dir)
                    .map_err(|e| CliError::from(VaultError::from(e)))?;
                let text = std::fs::read_to_string(store.git_dir().join(server_log::LOG_FILE))
                    .map_err(|e| {
                        CliError::user(format!(
                            "no server log in {}: {e}",
                            store.git_dir().display()
                        ))
                        .hint("run this on the server's bare repository")
                    })?;
                for line in text.lines() {
                    if json {
                        writeln!(out, "{line}")?;
                    } else {
                        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                        let refs: Vec<String> = v["updates"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|u| u["refname"].as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let refs = if refs.is_empty() {
                            v["refs"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|r| r.as_str().map(str::to_owned))
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .unwrap_or_default()
                        } else {
                            refs.join(" ")
                        };
                        let line = format!(
                            "{}  {:<7} {:<10} {}{}",
                            v["time"].as_str().unwrap_or(""),
                            v["decision"].as_str().or(v["event"].as_str()).unwrap_or(""),
                            v["pusher"].as_str().or(v["user"].as_str()).unwrap_or("-"),
                            refs,
                            v["refusal"]["rule"]
                                .as_str()
                                .map(|r| format!("  ({r})"))
                                .unwrap_or_default()
                        );
                        writeln!(out, "{}", escape(&line))?;
                    }
                }
                return Ok(());
            }
            let vault = open_vault(&dir)?;
            let filter = events::Filter {
                model: match model {
                    Some(g) => Some(
                        globset::GlobBuilder::new(&g)
                            .literal_separator(true)
                            .build()
                            .map_err(|e| CliError::user(format!("--model {g:?}: {e}")))?
                            .compile_matcher(),
                    ),
                    None => None,
                },
                version,
                actor,
                actions: action,
                since: since.as_deref().map(parse_time).transpose()?,
                until: until.as_deref().map(parse_time).transpose()?,
                limit,
            };
            for e in events::events(&vault, &filter)? {
                if json {
                    json_line(out, &e)?;
                } else {
                    let what = match (&e.model, &e.version) {
                        (Some(m), Some(v)) => format!("{m}@{v}"),
                        (Some(m), None) => m.clone(),
                        _ => String::new(),
                    };
                    let stage = e
                        .stage
                        .as_ref()
                        .map(|s| format!(" → {s}"))
                        .unwrap_or_default();
                    let extra = [
                        e.ticket.as_ref().map(|t| format!("ticket {}", escape(t))),
                        e.reason
                            .as_ref()
                            .map(|r| format!("reason \"{}\"", escape(r))),
                        e.detail.as_deref().map(escape),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("; ");
                    writeln!(
                        out,
                        "{}  {:<12} {:<10} {}{}{}",
                        e.time,
                        escape(&e.action),
                        escape(&e.actor),
                        escape(&what),
                        escape(&stage),
                        if extra.is_empty() {
                            String::new()
                        } else {
                            format!("  ({extra})")
                        }
                    )?;
                }
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { decrypt, json },
        } => {
            let vault = open_vault(&dir)?;
            let identity = if decrypt {
                Some(load_identity(&cli.key, &dir)?)
            } else {
                None
            };
            let r = mvault::ops::audit::verify(&vault, identity.as_ref())?;
            if json {
                json_line(out, &r)?;
            } else if r.ok {
                writeln!(
                    out,
                    "record intact: {} commits, {} tags, {} signatures checked{}",
                    r.commits,
                    r.tags,
                    r.signatures,
                    if decrypt {
                        format!(
                            ", {} versions decrypted and every digest checked",
                            r.versions_decrypted
                        )
                    } else {
                        String::new()
                    }
                )?;
            }
            if let Some(b) = r.first_break {
                return Err(CliError {
                    kind: ErrorKind::Integrity,
                    message: format!("record broken at {}: {}: {}", b.object, b.rule, b.detail),
                    hints: vec!["everything before this point verified; investigate this object (git show) and compare with the server".into()],
                });
            }
        }
        Command::Lineage { model, json } => {
            let model = ModelName::parse(&model)?;
            let vault = open_vault(&dir)?;
            let nodes = report::lineage(&vault, &model)?;
            if json {
                for n in &nodes {
                    json_line(out, n)?;
                }
            } else {
                write_escaped(out, &report::lineage_text(model.as_str(), &nodes))?;
            }
        }
        Command::Report {
            model,
            since,
            until,
            format,
            output,
        } => {
            let model = ModelName::parse(&model)?;
            let vault = open_vault(&dir)?;
            let r = report::build(
                &vault,
                &model,
                since.as_deref().map(parse_time).transpose()?,
                until.as_deref().map(parse_time).transpose()?,
                now,
                mvault::ops::audit::verify(&vault, None)?,
            )?;
            let text = match format.as_str() {
                "json" => {
                    serde_json::to_string_pretty(&r).map_err(|e| CliError::user(e.to_string()))?
                        + "\n"
                }
                "md" | "markdown" => report::markdown(&r),
                "html" => report::html(&r),
                other => {
                    return Err(CliError::user(format!(
                        "--format {other:?}: expected json, md or html"
                    )))
                }
            };
            match output {
                Some(p) => {
                    let p = if p.is_relative() { dir.join(p) } else { p };
                    std::fs::write(&p, text)?;
                    writeln!(out, "wrote {}", p.display())?;
                }
                None => write_escaped(out, &text)?,
            }
        }
        Command::Signers => {
            let vault = open_vault(&dir)?;
            write!(out, "{}", vault.policy()?.allowed_signers())?;
        }
        Command::Policy { command } => policy_command(command, &cli.key, &dir, now, out)?,
        Command::Hook { command } => hook_command(command, &dir, now, out)?,
        Command::Demo { path } => demo::run(path, out)?,
    }
    Ok(())
}

fn parse_role(s: &str) -> Result<Role, CliError> {
    Role::parse(s).ok_or_else(|| {
        CliError::user(format!(
            "unknown role {s:?}: roles are viewer, developer, ml_engineer, ml_admin, approver"
        ))
    })
}

fn policy_command(
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

fn hook_command(
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
                });
            }
        }
        HookCommand::InstallPrePush => {
            let store =
                mvault::store::Store::open(dir).map_err(|e| CliError::from(VaultError::from(e)))?;
            let path = hook_install::install_pre_push(&store, &std::env::current_exe()?)?;
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
                });
            }
        }
        HookCommand::Install {
            repo,
            root_keys,
            local_user,
            log_fetches,
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
            let items = hook_install::install(&repo, &keys, &exe, local_user.as_deref())
                .map_err(CliError::user)?;
            writeln!(
                out,
                "installed the mvault pre-receive hook in {}",
                repo.display()
            )?;
            if let Some(cfg) = log_fetches {
                let cfg = if cfg.is_relative() {
                    dir.join(cfg)
                } else {
                    cfg
                };
                let value = format!("{} hook pack-objects", exe.display());
                let status = std::process::Command::new("git")
                    .args(["config", "--file"])
                    .arg(&cfg)
                    .args(["uploadpack.packObjectsHook", &value])
                    .status()?;
                if !status.success() {
                    return Err(CliError::user(format!("cannot write {}", cfg.display())));
                }
                writeln!(
                    out,
                    "fetches are logged: uploadpack.packObjectsHook set in {}",
                    cfg.display()
                )?;
            }
            print_check(out, &items)?;
        }
        HookCommand::Check { repo } => {
            let repo = if repo.is_relative() {
                dir.join(repo)
            } else {
                repo
            };
            let items = hook_install::check(&repo);
            print_check(out, &items)?;
            if items.iter().any(|i| !i.ok) {
                return Err(CliError::user(format!(
                    "{} is not installed correctly",
                    repo.display()
                ))
                .hint(format!(
                    "run mvault hook install {} --root-key KEY.pub",
                    repo.display()
                )));
            }
        }
        HookCommand::Log {
            command: HookLogCommand::Verify { repo },
        } => {
            let repo = repo
                .map(|r| if r.is_relative() { dir.join(r) } else { r })
                .unwrap_or_else(|| dir.to_owned());
            let store = mvault::store::Store::open(&repo)
                .map_err(|e| CliError::from(VaultError::from(e)))?;
            match server_log::verify_log(store.git_dir()) {
                Ok(n) => writeln!(out, "{}: {n} entries (decisions and fetches), chain intact", server_log::LOG_FILE)?,
                Err(e) => {
                    return Err(CliError {
                        kind: ErrorKind::Integrity,
                        message: e,
                        hints: vec!["the server's decision log was altered; compare with a backup and investigate".into()],
                    })
                }
            }
        }
    }
    Ok(())
}

fn print_check(out: &mut dyn Write, items: &[hook_install::CheckItem]) -> CliResult {
    for i in items {
        writeln!(out, "{} {}", if i.ok { "ok  " } else { "FAIL" }, i.what)?;
    }
    Ok(())
}

/// Write text built from repository content line by line, escaped (tabs,
/// which reports use as separators, kept).
fn write_escaped(out: &mut dyn Write, text: &str) -> CliResult {
    for line in text.lines() {
        let cells: Vec<String> = line.split('\t').map(escape).collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}

fn render_tags(out: &mut dyn Write, o: &release::TagOutcome, json: bool, what: &str) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(out, "{}", escape(what))?;
    for t in &o.tags {
        writeln!(out, "tag {}", escape(t))?;
    }
    for a in &o.approvals {
        writeln!(out, "relies on {}", escape(a))?;
    }
    match &o.pushed {
        Some(r) => writeln!(out, "pushed to {r}")?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}

/// RFC 3339, YYYY-MM-DD (00:00 UTC) or unix seconds.
fn parse_time(s: &str) -> Result<i64, CliError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Some(d) = policy::parse_date(s) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(CliError::user(format!("{s:?} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22) or unix seconds")))
}
