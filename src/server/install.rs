//! Installing the hook into a server repository, checking an
//! installation, and the client's pre-push shim.
//!
//! Two kinds of server repository are known. A plain bare repository
//! (reached through sshd's forced command or `git http-backend` behind a
//! web server) runs mvault's shim as its `hooks/pre-receive`. A gitolite
//! repository's hooks belong to gitolite, which rewrites them on every
//! compile: there the shim goes where gitolite's "repo-specific hooks" take
//! it from (`$LOCAL_CODE/hooks/repo-specific/mvault`), gitolite links it
//! into the repositories whose `gitolite.conf` says `option
//! hook.pre-receive = mvault`, and gitolite's own hooks stay as they are.
//!
//! Fetches are logged by `uploadpack.packObjectsHook`, which git reads
//! only from protected configuration (system, global, command line), never
//! from the repository's own config: `--log-fetches FILE` writes it into
//! the server user's global config, and `check` says where it found it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use ssh_key::PublicKey;

use super::config::{ServerConfig, LOCAL_USER_CONFIG, ROOT_KEY_CONFIG};
use crate::crypto;
use crate::store::{Store, StoreError};

/// The shim `mvault hook install` writes as `hooks/pre-receive`.
pub fn shim(mvault_bin: &Path) -> String {
    let template = include_str!("../../hooks/pre-receive");
    template.replace(
        "@MVAULT_BIN@",
        &mvault_bin.display().to_string().replace('\'', "'\\''"),
    )
}

/// The shim `mvault hook install` writes as `hooks/post-receive`: git runs
/// it with the updates that landed, and it writes their receipt.
pub fn post_receive_shim(mvault_bin: &Path) -> String {
    let template = include_str!("../../hooks/post-receive");
    template.replace(
        "@MVAULT_BIN@",
        &mvault_bin.display().to_string().replace('\'', "'\\''"),
    )
}

/// The name of mvault's post-receive among gitolite's repo-specific hooks.
pub const GITOLITE_POST_HOOK_NAME: &str = "mvault-receipts";

/// The crontab line that keeps the server's timestamp fresh.
pub fn heartbeat_crontab(mvault_bin: &Path, repo: &Path) -> String {
    format!(
        "*/15 * * * * '{}' hook heartbeat '{}'",
        mvault_bin.display(),
        repo.display()
    )
}

/// The git settings the hook relies on, set by `mvault hook install`.
pub const SERVER_CONFIG: &[(&str, &str)] = &[
    ("receive.denyNonFastForwards", "true"),
    // Branches only (git's own rule); payload refs are the hook's to judge.
    ("receive.denyDeletes", "true"),
    ("receive.unpackLimit", "1"),
    ("core.looseCompression", "0"),
    ("pack.compression", "0"),
    ("core.bigFileThreshold", "1048576"),
    ("core.packedGitWindowSize", "16777216"),
    ("core.packedGitLimit", "67108864"),
    ("uploadpack.allowFilter", "true"),
    // git's own object checks on every push, behind the hook's: malformed
    // trees and names are refused before the hook even runs.
    ("receive.fsckObjects", "true"),
];

/// The attributes a bare repository reads from `info/attributes`.
pub const SERVER_ATTRIBUTES: &str =
    ".mvault/keys/** binary -delta\n????????????????????????????????????????????????????????????????  binary -delta\n";

/// The ref a server's HEAD must name: a plain `git clone` checks it out,
/// and a clone without `main` holds no vault.
pub const HEAD_REF: &str = "refs/heads/main";

/// The git option that makes `git upload-pack` run mvault in place of
/// `git pack-objects`, so that every fetch is logged.
pub const FETCH_LOG_CONFIG: &str = "uploadpack.packObjectsHook";

/// The name of mvault's hook among gitolite's repo-specific hooks: what
/// `option hook.pre-receive = …` names in `gitolite.conf`.
pub const GITOLITE_HOOK_NAME: &str = "mvault";

/// A file gitolite writes into every repository it manages (the repository's
/// compiled rules): how `install` and `check` tell a gitolite repository.
pub const GITOLITE_MARKER: &str = "gl-conf";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    /// Works, but something the admin likely wants is off.
    Warn,
    /// The server does not guard the vault as it should.
    Fail,
}

/// What `hook check` found about one thing.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    pub status: CheckStatus,
    pub what: String,
}

impl CheckItem {
    fn new(ok: bool, what: String) -> Self {
        let status = if ok {
            CheckStatus::Ok
        } else {
            CheckStatus::Fail
        };
        CheckItem { status, what }
    }
}

/// Who owns the repository's hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// A plain bare repository: `hooks/pre-receive` is mvault's.
    Plain,
    /// A gitolite repository, `name` in `gitolite.conf`.
    Gitolite { name: String },
}

/// What `install` is asked to do.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    /// The server's bare repository.
    pub repo: &'a Path,
    /// The root admin keys to pin.
    pub root_keys: &'a [PublicKey],
    /// The mvault binary the hook shim runs.
    pub mvault_bin: &'a Path,
    /// The user assumed when no server variable names one.
    pub local_user: Option<&'a str>,
    /// The server user's global git config, to log fetches in.
    pub log_fetches: Option<&'a Path>,
    /// The server's receipt key (created when absent).
    pub server_key: Option<&'a Path>,
}

/// What `install` did, then what `check` finds afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub host: Host,
    /// One line per change made.
    pub done: Vec<String>,
    pub check: Vec<CheckItem>,
}

/// Why `install` stopped. Nothing is changed before the checks that can
/// refuse have passed, except as said.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The repository cannot be opened.
    #[error(transparent)]
    Open(StoreError),
    /// The repository has a work tree.
    #[error("{repo} has a work tree; install the hook in the server's bare repository")]
    WorkTree { repo: PathBuf },
    /// No root key was given.
    #[error("give at least one --root-key")]
    NoRootKey,
    /// A stock git command failed.
    #[error("{repo}: {source}")]
    Git { repo: PathBuf, source: StoreError },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server key cannot be created or read.
    #[error("--server-key: {0}")]
    ServerKey(String),
    /// `hooks/pre-receive` is someone else's hook; replacing it would
    /// silently drop what it does.
    #[error("{hook} is not mvault's hook; mvault does not overwrite it")]
    ForeignHook { hook: PathBuf },
    /// The repository is gitolite's, and gitolite cannot take the hook.
    #[error("{repo} is a gitolite repository ({GITOLITE_MARKER}): {problem}")]
    Gitolite {
        repo: PathBuf,
        problem: GitoliteProblem,
    },
}

/// What keeps a gitolite repository from taking mvault's hook.
#[derive(Debug, thiserror::Error)]
pub enum GitoliteProblem {
    /// The `gitolite` command cannot be run.
    #[error("cannot run the gitolite command: {0}")]
    NoCommand(std::io::Error),
    /// `gitolite ARGS` failed (not the hosting user, no rc file, …).
    #[error("`gitolite {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    /// The rc does not enable repo-specific hooks.
    #[error(
        "repo-specific hooks are not enabled in gitolite's rc (ENABLE lacks 'repo-specific-hooks')"
    )]
    RepoSpecificHooksOff,
    /// The rc has no `LOCAL_CODE`, where repo-specific hooks live.
    #[error("gitolite's rc sets no LOCAL_CODE, where repo-specific hooks live")]
    NoLocalCode,
    /// The repository is not under gitolite's repository base.
    #[error("it is not under gitolite's GL_REPO_BASE {base}")]
    OutsideRepoBase { base: PathBuf },
    /// gitolite's update hook refuses ref names with `#`, so every
    /// promotion tag would be refused after mvault accepted it.
    #[error("gitolite refuses ref names with '#' ({GITOLITE_PROBE_REF}), and every promotion tag has one")]
    RefNamesWithoutHash,
}

/// A ref named like a promotion tag, which gitolite's default
/// `$REF_OR_FILENAME_PATT` refuses.
pub const GITOLITE_PROBE_REF: &str = "refs/tags/mvault-probe#production#1";

/// Install the hook into a server's bare repository (see the module's
/// documentation for gitolite).
pub fn install(req: &InstallRequest<'_>) -> Result<Installed, InstallError> {
    let repo = req.repo;
    let store = Store::open(repo).map_err(InstallError::Open)?;
    let git_dir = store.git_dir().to_owned();
    if store.work_dir().is_some() {
        return Err(InstallError::WorkTree {
            repo: repo.to_owned(),
        });
    }
    if req.root_keys.is_empty() {
        return Err(InstallError::NoRootKey);
    }
    // Refuse before changing anything: a hook we would overwrite, or a
    // gitolite that cannot take ours.
    let gitolite = if git_dir.join(GITOLITE_MARKER).is_file() {
        let problem = |problem| InstallError::Gitolite {
            repo: repo.to_owned(),
            problem,
        };
        let gl = Gitolite::find(&git_dir).map_err(problem)?;
        if !gl.accepts_ref(GITOLITE_PROBE_REF).map_err(problem)? {
            return Err(problem(GitoliteProblem::RefNamesWithoutHash));
        }
        Some(gl)
    } else {
        let hook = git_dir.join("hooks/pre-receive");
        if hook.exists() && !runs_mvault(&hook) {
            return Err(InstallError::ForeignHook { hook });
        }
        None
    };
    let git = |args: &[&str]| {
        store.git(args).map_err(|source| InstallError::Git {
            repo: repo.to_owned(),
            source,
        })
    };
    let write = |path: &Path, text: &[u8]| {
        std::fs::write(path, text).map_err(|source| InstallError::Write {
            path: path.to_owned(),
            source,
        })
    };
    let mut done = Vec::new();
    let _ = git(&["config", "--unset-all", ROOT_KEY_CONFIG]);
    for k in req.root_keys {
        git(&[
            "config",
            "--add",
            ROOT_KEY_CONFIG,
            &crypto::public_key_line(k),
        ])?;
    }
    done.push(format!(
        "pinned {} root key(s) in {ROOT_KEY_CONFIG}",
        req.root_keys.len()
    ));
    if let Some(u) = req.local_user {
        git(&["config", LOCAL_USER_CONFIG, u])?;
        done.push(format!("{LOCAL_USER_CONFIG} = {u}"));
    }
    for (k, v) in SERVER_CONFIG {
        git(&["config", k, v])?;
    }
    done.push(format!("set {} git options", SERVER_CONFIG.len()));
    let info = git_dir.join("info");
    std::fs::create_dir_all(&info).map_err(|source| InstallError::Write {
        path: info.clone(),
        source,
    })?;
    write(&info.join("attributes"), SERVER_ATTRIBUTES.as_bytes())?;

    // HEAD names main: `git init --bare` and gitolite leave it on master,
    // and a plain clone of such a server has no main.
    let head = head_target(&store);
    if head.as_deref() != Some(HEAD_REF) {
        git(&["symbolic-ref", "HEAD", HEAD_REF])?;
        done.push(format!(
            "HEAD: {} -> {HEAD_REF}",
            head.as_deref().unwrap_or("(detached)")
        ));
    }

    if let Some(path) = req.server_key {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let public = super::receipts::ensure_server_key(&path).map_err(InstallError::ServerKey)?;
        git(&[
            "config",
            super::receipts::SERVER_KEY_CONFIG,
            &path.display().to_string(),
        ])?;
        done.push(format!(
            "server key {} ({}): pin it in the vault with mvault policy server-key --key-file {}.pub",
            path.display(),
            crypto::fingerprint(&public),
            path.display()
        ));
        done.push(format!(
            "keep the timestamp fresh from cron: {}",
            heartbeat_crontab(req.mvault_bin, repo)
        ));
    }
    let host = match &gitolite {
        None => {
            let hooks = git_dir.join("hooks");
            write_shim(&hooks, "pre-receive", req.mvault_bin)?;
            done.push(format!("wrote {}", hooks.join("pre-receive").display()));
            let post = hooks.join("post-receive");
            if post.exists() && !runs_post_receive(&post) {
                done.push(format!(
                    "{} is not mvault's: left as it is; make it run `mvault hook post-receive` on the same input, or pushes get no receipt",
                    post.display()
                ));
            } else {
                write_post_shim(&hooks, "post-receive", req.mvault_bin)?;
                done.push(format!("wrote {}", post.display()));
            }
            Host::Plain
        }
        Some(gl) => {
            let dir = gl.local_code.join("hooks/repo-specific");
            write_shim(&dir, GITOLITE_HOOK_NAME, req.mvault_bin)?;
            write_post_shim(&dir, GITOLITE_POST_HOOK_NAME, req.mvault_bin)?;
            done.push(format!(
                "gitolite: wrote the repo-specific hook {} (receipts: add `option hook.post-receive = {GITOLITE_POST_HOOK_NAME}` for this repo in gitolite.conf)",
                dir.join(GITOLITE_POST_HOOK_NAME).display()
            ));
            done.push(format!(
                "gitolite: wrote the repo-specific hook {}",
                dir.join(GITOLITE_HOOK_NAME).display()
            ));
            let problem = |problem| InstallError::Gitolite {
                repo: repo.to_owned(),
                problem,
            };
            if gl.names_mvault().map_err(problem)? {
                gl.run(&["trigger", "POST_COMPILE"]).map_err(problem)?;
                done.push(format!(
                    "gitolite: `gitolite trigger POST_COMPILE` linked it into repo {}",
                    gl.name
                ));
            } else {
                done.push(format!(
                    "gitolite: not active yet: add `option hook.pre-receive = {GITOLITE_HOOK_NAME}` under `repo {}` in gitolite.conf and push gitolite-admin",
                    gl.name
                ));
            }
            Host::Gitolite {
                name: gl.name.clone(),
            }
        }
    };
    if let Some(file) = req.log_fetches {
        log_fetches(repo, file, req.mvault_bin)?;
        done.push(format!(
            "fetches are logged: {FETCH_LOG_CONFIG} set in {}",
            file.display()
        ));
    }
    Ok(Installed {
        host,
        done,
        check: check(repo, req.log_fetches),
    })
}

/// Set `uploadpack.packObjectsHook` to this mvault in `config_file`, the
/// git config the server's git reads as global (its `~/.gitconfig`, or the
/// file `GIT_CONFIG_GLOBAL` names) or system config.
pub fn log_fetches(repo: &Path, config_file: &Path, mvault_bin: &Path) -> Result<(), InstallError> {
    let value = fetch_hook_value(mvault_bin);
    let file = config_file.display().to_string();
    crate::store::run_git(repo, &["config", "--file", &file, FETCH_LOG_CONFIG, &value])
        .map(drop)
        .map_err(|source| InstallError::Git {
            repo: repo.to_owned(),
            source,
        })
}

fn fetch_hook_value(mvault_bin: &Path) -> String {
    format!("{} hook pack-objects", mvault_bin.display())
}

/// Write mvault's post-receive shim as `dir/name`, executable, by rename.
fn write_post_shim(dir: &Path, name: &str, mvault_bin: &Path) -> Result<(), InstallError> {
    write_file(dir, name, &post_receive_shim(mvault_bin))
}

/// Whether the hook file at `path` is mvault's post-receive shim.
fn runs_post_receive(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("hook post-receive"))
}

/// Write mvault's shim as `dir/name`, executable, by rename.
fn write_shim(dir: &Path, name: &str, mvault_bin: &Path) -> Result<(), InstallError> {
    write_file(dir, name, &shim(mvault_bin))
}

/// Write `text` as the executable `dir/name`, by rename.
fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), InstallError> {
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |source| InstallError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let hook = dir.join(name);
    let tmp = dir.join(format!(".{name}.mvault-tmp"));
    std::fs::write(&tmp, text).map_err(fail(&tmp))?;
    set_executable(&tmp).map_err(fail(&tmp))?;
    std::fs::rename(&tmp, &hook).map_err(fail(&hook))?;
    Ok(())
}

/// Whether the hook file at `path` is mvault's shim.
fn runs_mvault(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("hook pre-receive"))
}

/// What HEAD names, when it is a symbolic ref.
fn head_target(store: &Store) -> Option<String> {
    store
        .git(&["symbolic-ref", "-q", "HEAD"])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The gitolite a repository belongs to, as gitolite's own commands report
/// it. They read the rc of the user whose HOME they run with: run mvault
/// as the gitolite hosting user.
struct Gitolite {
    /// The repository's name in gitolite.conf.
    name: String,
    /// `LOCAL_CODE` from the rc.
    local_code: PathBuf,
}

impl Gitolite {
    fn find(git_dir: &Path) -> Result<Gitolite, GitoliteProblem> {
        let query = |var: &str| -> Result<String, GitoliteProblem> {
            match Gitolite::query(&["query-rc", var]) {
                Ok(v) => Ok(v),
                // query-rc exits 1, silently, for a variable the rc lacks.
                Err(GitoliteProblem::Command { stderr, .. }) if stderr.is_empty() => {
                    Ok(String::new())
                }
                Err(e) => Err(e),
            }
        };
        let base = PathBuf::from(query("GL_REPO_BASE")?.trim());
        let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
        let rel = canonical(git_dir)
            .strip_prefix(canonical(&base))
            .map(Path::to_owned)
            .map_err(|_| GitoliteProblem::OutsideRepoBase { base: base.clone() })?;
        let rel = rel.to_string_lossy();
        let name = rel.strip_suffix(".git").unwrap_or(&rel).to_owned();
        if name.is_empty() {
            return Err(GitoliteProblem::OutsideRepoBase { base });
        }
        if !query("ENABLE")?
            .lines()
            .any(|l| l.trim() == "repo-specific-hooks")
        {
            return Err(GitoliteProblem::RepoSpecificHooksOff);
        }
        let local_code = query("LOCAL_CODE")?.trim().to_owned();
        if local_code.is_empty() {
            return Err(GitoliteProblem::NoLocalCode);
        }
        Ok(Gitolite {
            name,
            local_code: PathBuf::from(local_code),
        })
    }

    /// Whether gitolite.conf gives this repository mvault's pre-receive hook.
    fn names_mvault(&self) -> Result<bool, GitoliteProblem> {
        match Gitolite::query(&[
            "git-config",
            &self.name,
            "gitolite-options.hook.pre-receive",
        ]) {
            Ok(v) => Ok(v.split_whitespace().any(|c| c == GITOLITE_HOOK_NAME)),
            Err(GitoliteProblem::Command { stderr, .. }) if stderr.is_empty() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether gitolite's update hook lets a ref named `refname` through
    /// its name check (`gitolite access` dies on a name its pattern
    /// refuses, before it looks at any rule).
    fn accepts_ref(&self, refname: &str) -> Result<bool, GitoliteProblem> {
        match Gitolite::query(&["access", "-q", &self.name, "mvault-probe", "W", refname]) {
            Ok(_) => Ok(true),
            Err(GitoliteProblem::Command { stderr, .. }) if stderr.contains("invalid ref name") => {
                Ok(false)
            }
            // Denied (the probe user has no rule): the name passed.
            Err(GitoliteProblem::Command { stderr, .. }) if stderr.is_empty() => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn run(&self, args: &[&str]) -> Result<String, GitoliteProblem> {
        Gitolite::query(args)
    }

    fn query(args: &[&str]) -> Result<String, GitoliteProblem> {
        let out = Command::new("gitolite")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(GitoliteProblem::NoCommand)?;
        if !out.status.success() {
            return Err(GitoliteProblem::Command {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[cfg(unix)]
fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Check that a server repository is installed correctly. `log_fetches`
/// is the git config file the server's git reads as global when that is
/// not the one this process reads (a web server's `GIT_CONFIG_GLOBAL`).
pub fn check(repo: &Path, log_fetches: Option<&Path>) -> Vec<CheckItem> {
    let mut r = Report::default();
    let store = match Store::open(repo) {
        Ok(s) => s,
        Err(e) => {
            r.item(false, e.to_string());
            return r.0;
        }
    };
    r.item(store.work_dir().is_none(), "the repository is bare".into());
    let head = head_target(&store);
    r.item(
        head.as_deref() == Some(HEAD_REF),
        match head.as_deref() {
            Some(HEAD_REF) => format!("HEAD points at {HEAD_REF}"),
            other => format!(
                "HEAD points at {HEAD_REF} (found {}: a plain git clone gets no main; run mvault hook install again)",
                other.unwrap_or("a detached HEAD")
            ),
        },
    );
    let hooks = store.git_dir().join("hooks");
    let gitolite = store.git_dir().join(GITOLITE_MARKER).is_file();
    let hook = if gitolite {
        // gitolite's driver runs every hooks/pre-receive.* in turn.
        let driver = hooks.join("pre-receive");
        let is_driver = std::fs::read_to_string(&driver).is_ok_and(|t| t.contains("for h in $0.*"));
        r.item(
            is_driver,
            format!(
                "{} is gitolite's repo-specific hook driver",
                driver.display()
            ),
        );
        let linked = std::fs::read_dir(&hooks)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("pre-receive."))
            })
            .find(|p| runs_mvault(p));
        r.item(
            linked.is_some(),
            match &linked {
                Some(p) => format!("gitolite runs mvault's hook ({})", p.display()),
                None => format!(
                    "gitolite runs mvault's hook (no {}/pre-receive.* runs mvault hook pre-receive: add `option hook.pre-receive = {GITOLITE_HOOK_NAME}` for this repo in gitolite.conf)",
                    hooks.display()
                ),
            },
        );
        // What only gitolite can say: run as the hosting user.
        match Gitolite::find(store.git_dir()) {
            Ok(gl) => {
                r.item(
                    gl.names_mvault().unwrap_or(false),
                    format!(
                        "gitolite.conf gives repo {} `option hook.pre-receive = {GITOLITE_HOOK_NAME}`",
                        gl.name
                    ),
                );
                r.item(
                    gl.accepts_ref(GITOLITE_PROBE_REF).unwrap_or(false),
                    "gitolite accepts ref names with '#' (promotion tags; $REF_OR_FILENAME_PATT in ~/.gitolite.rc)".into(),
                );
            }
            Err(problem) => r.warn(format!(
                "cannot ask gitolite ({problem}): run hook check as the gitolite hosting user"
            )),
        }
        linked.unwrap_or_else(|| hooks.join(format!("pre-receive.h00-{GITOLITE_HOOK_NAME}")))
    } else {
        let hook = hooks.join("pre-receive");
        r.item(
            runs_mvault(&hook),
            format!("{} runs mvault hook pre-receive", hook.display()),
        );
        hook
    };
    let text = std::fs::read_to_string(&hook).unwrap_or_default();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::metadata(&hook)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        r.item(exec, "the hook is executable".into());
    }
    let bin = text.lines().find_map(|l| {
        l.strip_prefix("MVAULT_BIN='")
            .and_then(|r| r.strip_suffix('\''))
    });
    r.item(
        bin.is_some_and(|b| Path::new(b).exists()),
        format!(
            "the mvault binary the hook runs exists ({})",
            bin.unwrap_or("?")
        ),
    );
    match ServerConfig::read(&store) {
        Ok(cfg) => r.item(
            !cfg.root_keys.is_empty(),
            format!(
                "{} root key(s) pinned in the server config",
                cfg.root_keys.len()
            ),
        ),
        Err(e) => r.item(false, e),
    }
    for (k, v) in SERVER_CONFIG {
        let got = store.config_string(k);
        r.item(
            got.as_deref() == Some(*v),
            format!(
                "{k} = {v} (found {})",
                got.unwrap_or_else(|| "unset".into())
            ),
        );
    }
    let attrs =
        std::fs::read_to_string(store.git_dir().join("info/attributes")).unwrap_or_default();
    r.item(
        attrs.contains("-delta"),
        "info/attributes keeps blobs out of delta search".into(),
    );
    r.0.push(fetch_logging(&store, log_fetches));
    receipts_check(&store, gitolite, &mut r);
    r.0
}

/// The server key, the post-receive hook that writes receipts, and how
/// fresh the timestamp is.
fn receipts_check(store: &Store, gitolite: bool, r: &mut Report) {
    use super::receipts::{server_key, SERVER_KEY_CONFIG};
    let key = match server_key(store) {
        Ok(None) => {
            r.warn(format!(
                "no server key ({SERVER_KEY_CONFIG}): pushes get no receipts and clients cannot check freshness (mvault hook install REPO --root-key KEY.pub --server-key FILE)"
            ));
            return;
        }
        Err(e) => {
            r.item(false, format!("the server key ({SERVER_KEY_CONFIG}): {e}"));
            return;
        }
        Ok(Some(k)) => k,
    };
    {
        use crate::crypto::Signer;
        r.item(
            true,
            format!(
                "the server key signs receipts ({})",
                crypto::fingerprint(key.public_key())
            ),
        );
    }
    let hooks = store.git_dir().join("hooks");
    let post = if gitolite {
        std::fs::read_dir(&hooks)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("post-receive"))
                    && runs_post_receive(p)
            })
    } else {
        Some(hooks.join("post-receive")).filter(|p| runs_post_receive(p))
    };
    r.item(
        post.is_some(),
        match &post {
            Some(p) => format!("{} writes receipts (mvault hook post-receive)", p.display()),
            None => format!(
                "no post-receive hook in {} runs mvault hook post-receive: pushes land without receipts (run mvault hook install again)",
                hooks.display()
            ),
        },
    );
    let stamp = store
        .ref_target(crate::model::receipt::TIMESTAMP_REF)
        .ok()
        .flatten()
        .and_then(|id| crate::rules::receipts::read_timestamp(store, id).ok());
    match stamp {
        Some((t, _)) => r.0.push(CheckItem {
            status: CheckStatus::Ok,
            what: format!("the newest timestamp is {} (receipt {})", t.time, t.seq),
        }),
        None => r.warn(
            "no signed timestamp yet: run mvault hook heartbeat REPO (and from cron, see hook install)"
                .into(),
        ),
    }
}

/// What `check` found so far.
#[derive(Default)]
struct Report(Vec<CheckItem>);

impl Report {
    fn item(&mut self, ok: bool, what: String) {
        self.0.push(CheckItem::new(ok, what));
    }

    fn warn(&mut self, what: String) {
        self.0.push(CheckItem {
            status: CheckStatus::Warn,
            what,
        });
    }
}

/// Whether fetches are logged: `uploadpack.packObjectsHook` runs this
/// mvault's `hook pack-objects`, from configuration git honours for it.
fn fetch_logging(store: &Store, config_file: Option<&Path>) -> CheckItem {
    let judge = |value: &str, place: &str| -> CheckItem {
        match value.trim().strip_suffix(" hook pack-objects") {
            Some(bin) if Path::new(bin).exists() => CheckItem {
                status: CheckStatus::Ok,
                what: format!("fetches are logged: {FETCH_LOG_CONFIG} in {place}"),
            },
            Some(bin) => CheckItem {
                status: CheckStatus::Fail,
                what: format!(
                    "fetches are logged: {FETCH_LOG_CONFIG} in {place} runs {bin}, which does not exist (every fetch fails)"
                ),
            },
            None => CheckItem {
                status: CheckStatus::Warn,
                what: format!(
                    "fetches are not in mvault's log: {FETCH_LOG_CONFIG} in {place} runs {value:?}, not mvault hook pack-objects"
                ),
            },
        }
    };
    if let Some(file) = config_file {
        let path = file.display().to_string();
        return match crate::store::run_git(
            store.git_dir(),
            &["config", "--file", &path, "--get", FETCH_LOG_CONFIG],
        ) {
            Ok(v) => judge(&v, &path),
            Err(_) => CheckItem {
                status: CheckStatus::Warn,
                what: format!(
                    "fetches are not logged: {path} sets no {FETCH_LOG_CONFIG} (mvault hook install --log-fetches {path})"
                ),
            },
        };
    }
    // What the server's git would read here: scope, origin, value.
    let found = store
        .git(&[
            "config",
            "--show-scope",
            "--show-origin",
            "--get-all",
            FETCH_LOG_CONFIG,
        ])
        .unwrap_or_default();
    let mut repo_only = None;
    let mut protected = None;
    for line in found.lines() {
        let mut cells = line.splitn(3, '\t');
        let (Some(scope), Some(origin), Some(value)) = (cells.next(), cells.next(), cells.next())
        else {
            continue;
        };
        match scope {
            "system" | "global" | "command" => {
                protected = Some((format!("the {scope} config ({origin})"), value.to_owned()))
            }
            _ => repo_only = Some(origin.to_owned()),
        }
    }
    match (protected, repo_only) {
        (Some((place, value)), _) => judge(&value, &place),
        (None, Some(origin)) => CheckItem {
            status: CheckStatus::Fail,
            what: format!(
                "fetches are not logged: {FETCH_LOG_CONFIG} is set in the repository's config ({origin}), where git ignores it; set it in the server user's global config (mvault hook install --log-fetches FILE)"
            ),
        },
        (None, None) => CheckItem {
            status: CheckStatus::Warn,
            what: format!(
                "fetches are not logged: no {FETCH_LOG_CONFIG} in the global or system git config this check reads (mvault hook install --log-fetches FILE; for a web server, pass its GIT_CONFIG_GLOBAL file to hook check --log-fetches)"
            ),
        },
    }
}

/// The client-side pre-push shim `mvault hook install-pre-push` writes.
pub fn pre_push_shim(mvault_bin: &Path) -> String {
    format!(
        "#!/bin/sh\n# mvault pre-push check, installed by `mvault hook install-pre-push`:\n# runs the server's rules locally so a refusal is known before pushing.\nexec '{}' hook pre-push \"$@\"\n",
        mvault_bin.display().to_string().replace('\'', "'\\''")
    )
}

/// Install the pre-push shim into a clone's hooks directory.
pub fn install_pre_push(store: &Store, mvault_bin: &Path) -> std::io::Result<PathBuf> {
    let hooks = store.git_dir().join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let path = hooks.join("pre-push");
    std::fs::write(&path, pre_push_shim(mvault_bin))?;
    set_executable(&path)?;
    Ok(path)
}
