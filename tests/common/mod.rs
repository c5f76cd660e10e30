//! The hermetic world every integration test runs in.
//!
//! A `TestEnv` is a temporary directory with its own `HOME`, no global or
//! system git configuration, a fixed clock (`MVAULT_NOW`) and a cleared
//! environment, so that a test behaves the same on a laptop full of dotfiles
//! and on a fresh CI machine. Tests drive the real `mvault` binary and the
//! stock `git`, `age` and `ssh-keygen`, and read results back with the stock
//! tools: the formats are the contract, not our own code.
//!
//! A required program that is missing makes the test fail with the package to
//! install; tests are never skipped.

#![allow(dead_code)]

pub mod sshd;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use sha2::{Digest, Sha256};

/// The fixed clock of every test: 2026-11-22T10:00:00Z.
pub const NOW: u64 = 1_795_341_600;
/// `NOW` as the manifest writes it.
pub const NOW_RFC3339: &str = "2026-11-22T10:00:00Z";

pub const MIB: u64 = 1024 * 1024;

/// The git identity of the environment (not of any vault user).
pub const RUNNER_NAME: &str = "Test Runner";
pub const RUNNER_EMAIL: &str = "runner@example.invalid";

/// The programs the tests need, with the Debian package that provides each.
const REQUIRED_PROGRAMS: &[(&str, &str)] = &[
    ("git", "git"),
    ("age", "age"),
    ("ssh-keygen", "openssh-client"),
];

/// Fails the test, with the package to install, when `program` is not on PATH.
#[track_caller]
pub fn require_program(program: &str, package: &str) -> PathBuf {
    match find_on_path(program) {
        Some(path) => path,
        None => panic!(
            "`{program}` is not on PATH; install {program} (apt-get install {package}) \
             — .ci/run does this on CI"
        ),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// An ed25519 key pair made by stock `ssh-keygen`; `name` is its comment and
/// the policy user name the tests give it.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn public_line(&self) -> String {
        fs::read_to_string(&self.public)
            .expect("read public key")
            .trim()
            .to_owned()
    }
}

/// What a finished command left behind.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout and stderr together, for assertions that do not care which
    /// stream a report went to.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    fn describe(&self) -> String {
        const LIMIT: usize = 4000;
        let stdout = if self.stdout.len() > LIMIT {
            format!(
                "{}… ({} bytes)",
                String::from_utf8_lossy(&self.stdout[..LIMIT]),
                self.stdout.len()
            )
        } else {
            self.stdout()
        };
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            stdout,
            self.stderr()
        )
    }

    /// Asserts exit status 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    /// Asserts a non-zero exit and returns self.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            !self.status.success(),
            "expected failure: {}",
            self.describe()
        );
        self
    }

    /// Asserts a non-zero exit with mvault's error shape: a first stderr line
    /// `mvault: <message>`.
    #[track_caller]
    pub fn mvault_error(self) -> Self {
        let run = self.failure();
        let stderr = run.stderr();
        assert!(
            stderr.lines().any(|l| l.starts_with("mvault: ")),
            "expected an `mvault: <message>` line on stderr: {}",
            run.describe()
        );
        run
    }

    /// Asserts that stdout+stderr, lowercased, contain every fragment.
    #[track_caller]
    pub fn mentions(self, fragments: &[&str]) -> Self {
        let all = self.output().to_lowercase();
        for fragment in fragments {
            assert!(
                all.contains(&fragment.to_lowercase()),
                "expected output to mention {fragment:?}: {}",
                self.describe()
            );
        }
        self
    }

    /// Asserts that stdout+stderr, lowercased, contain at least one of the
    /// fragments (for wording the contract does not fix).
    #[track_caller]
    pub fn mentions_any(self, fragments: &[&str]) -> Self {
        let all = self.output().to_lowercase();
        assert!(
            fragments.iter().any(|f| all.contains(&f.to_lowercase())),
            "expected output to mention one of {fragments:?}: {}",
            self.describe()
        );
        self
    }
}

/// A temporary, hermetic directory tree for one test.
pub struct TestEnv {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        for (program, package) in REQUIRED_PROGRAMS {
            require_program(program, package);
        }
        let tmp = tempfile::Builder::new()
            .prefix("mvault-test-")
            .tempdir()
            .expect("create temp dir");
        // Canonical, so that paths compare equal to what git and mvault print.
        let root = tmp.path().canonicalize().expect("canonicalize temp dir");
        let home = root.join("home");
        fs::create_dir_all(home.join(".ssh")).expect("create HOME");
        TestEnv {
            _tmp: tmp,
            root,
            home,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A command with the hermetic environment, run from the test root.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("MVAULT_NOW", NOW.to_string())
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env("TMPDIR", self.root.join("tmp"))
            // A fixed git identity, as on any machine where git is set up.
            // mvault must not use it (its commits are by the policy user);
            // `core_cli_errors` runs mvault without one.
            .env("GIT_AUTHOR_NAME", RUNNER_NAME)
            .env("GIT_AUTHOR_EMAIL", RUNNER_EMAIL)
            .env("GIT_COMMITTER_NAME", RUNNER_NAME)
            .env("GIT_COMMITTER_EMAIL", RUNNER_EMAIL)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        fs::create_dir_all(self.root.join("tmp")).expect("create TMPDIR");
        cmd
    }

    /// Runs `cmd` to completion, capturing its output.
    pub fn run(&self, mut cmd: Command) -> Run {
        let what = describe_command(&cmd);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
        Run {
            what,
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// Runs `cmd` with `input` on its stdin.
    pub fn run_with_input(&self, mut cmd: Command, input: &[u8]) -> Run {
        let what = describe_command(&cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            // The child may exit before reading everything; that is its answer.
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait");
        writer.join().expect("stdin writer");
        Run {
            what,
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// `mvault --key KEY -C DIR ARGS…`, ready to spawn.
    pub fn mvault_command(&self, dir: &Path, key: &Key, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_mvault"));
        cmd.arg("--key")
            .arg(&key.private)
            .arg("-C")
            .arg(dir)
            .args(args);
        cmd
    }

    /// Runs `mvault --key KEY -C DIR ARGS…`.
    pub fn mvault(&self, dir: &Path, key: &Key, args: &[&str]) -> Run {
        self.run(self.mvault_command(dir, key, args))
    }

    /// `git -C DIR ARGS…`, with the fixed clock for the commits the tests
    /// make with stock git: `NOW`, or the date of the commit a new one
    /// builds on when that is later (the hook refuses a commit dated
    /// before its parent; a test about dates sets its own).
    pub fn git_command(&self, dir: &Path, args: &[&str]) -> Command {
        let when = self.honest_date(dir, args);
        let mut cmd = self.command("git");
        cmd.env("GIT_AUTHOR_DATE", format!("{when} +0000"))
            .env("GIT_COMMITTER_DATE", format!("{when} +0000"))
            .arg("-C")
            .arg(dir)
            .args(args);
        cmd
    }

    /// The date a commit made by `git ARGS` in `dir` honestly carries.
    fn honest_date(&self, dir: &Path, args: &[&str]) -> u64 {
        let mut rest = args.iter().copied();
        let sub = loop {
            match rest.next() {
                Some("-c") => {
                    rest.next();
                }
                other => break other,
            }
        };
        let parent = match sub {
            Some("commit") => "HEAD".to_owned(),
            Some("commit-tree") => {
                let mut parent = None;
                let mut it = args.iter();
                while let Some(a) = it.next() {
                    if *a == "-p" {
                        parent = it.next().map(|p| p.to_string());
                    }
                }
                match parent {
                    Some(p) => p,
                    None => return NOW,
                }
            }
            // A tag: not before the commit it names (its last argument)
            // nor main.
            Some("tag") => {
                let target = args.last().copied().unwrap_or("HEAD");
                return NOW
                    .max(self.commit_date(dir, target))
                    .max(self.commit_date(dir, "main"));
            }
            _ => return NOW,
        };
        // Nor before the newest tag: a replay reads the order of policy
        // changes and tags from their dates.
        let mut cmd = self.command("git");
        cmd.arg("-C").arg(dir).args([
            "for-each-ref",
            "--sort=-taggerdate",
            "--count=1",
            "--format=%(taggerdate:unix)",
            "refs/tags",
        ]);
        let newest_tag: u64 = String::from_utf8_lossy(&self.run(cmd).stdout)
            .trim()
            .parse()
            .unwrap_or(NOW);
        NOW.max(self.commit_date(dir, &parent)).max(newest_tag)
    }

    /// The committer date of `rev` in `dir` (`NOW` when it names no commit).
    fn commit_date(&self, dir: &Path, rev: &str) -> u64 {
        let mut cmd = self.command("git");
        cmd.arg("-C")
            .arg(dir)
            .args(["log", "-1", "--format=%ct", rev, "--"]);
        let out = self.run(cmd);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(NOW)
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> Run {
        self.run(self.git_command(dir, args))
    }

    /// `git … ARGS` that must succeed; returns stdout, trimmed.
    #[track_caller]
    pub fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        self.git(dir, args).success().stdout().trim().to_owned()
    }

    /// `git -C DIR -c gpg.format=ssh -c user.signingkey=KEY ARGS…`: stock
    /// git signing (`commit -S`, `commit-tree -S`, `tag -s`) with `key`.
    /// The commits and tags it makes claim the key's owner as author,
    /// committer and tagger, as the hook requires of honest objects; a test
    /// about misattribution sets other names on the command.
    pub fn git_signing_command(&self, dir: &Path, key: &Key, args: &[&str]) -> Command {
        let signing_key = format!("user.signingkey={}", key.private.display());
        let mut full = vec!["-c", "gpg.format=ssh", "-c", &signing_key];
        full.extend_from_slice(args);
        let mut cmd = self.git_command(dir, &full);
        as_key_owner(&mut cmd, key);
        cmd
    }

    /// Runs `git_signing_command`.
    pub fn git_signing(&self, dir: &Path, key: &Key, args: &[&str]) -> Run {
        self.run(self.git_signing_command(dir, key, args))
    }

    /// Signs tag `name` on `target` with `key` and message `message` (stock
    /// `git tag -s`, `-f` to replace a local one) in `dir`; returns the tag's
    /// object id.
    #[track_caller]
    pub fn sign_tag(
        &self,
        dir: &Path,
        key: &Key,
        name: &str,
        target: &str,
        message: &str,
    ) -> String {
        // Approvals and promotions name the commit of main they are made
        // against, as mvault writes them: `dir`'s main, unless given.
        let mut message = message.to_owned();
        let judged = ["approve", "promote", "rollback"]
            .iter()
            .any(|a| message.contains(&format!("Mvault-Action: {a}\n")));
        if judged && !message.contains("Mvault-Record: ") {
            let main = self.git_ok(dir, &["rev-parse", "main"]);
            if !message.ends_with('\n') {
                message.push('\n');
            }
            message.push_str(&format!("Mvault-Record: {main}\n"));
        }
        // Dated as mvault dates tags: not before the commit it points at
        // nor the record it names.
        let dated = |rev: &str| -> u64 {
            self.git(dir, &["log", "-1", "--format=%ct", rev])
                .stdout()
                .trim()
                .parse()
                .unwrap_or(NOW)
        };
        let when = NOW.max(dated(target)).max(dated("main"));
        let mut cmd =
            self.git_signing_command(dir, key, &["tag", "-f", "-s", "-m", &message, name, target]);
        cmd.env("GIT_COMMITTER_DATE", format!("{when} +0000"));
        self.run(cmd).success();
        self.git_ok(dir, &["rev-parse", &format!("refs/tags/{name}")])
    }

    /// `SHA256:…` of a public key, as `ssh-keygen -l` prints it.
    #[track_caller]
    pub fn fingerprint(&self, key: &Key) -> String {
        let mut cmd = self.command("ssh-keygen");
        cmd.args(["-l", "-E", "sha256", "-f"]).arg(&key.public);
        let out = self.run(cmd).success().stdout();
        out.split_whitespace()
            .nth(1)
            .expect("ssh-keygen -l prints a fingerprint")
            .to_owned()
    }

    /// Writes `bytes` to `file` and signs it with `key` in `namespace` with
    /// stock `ssh-keygen -Y sign`; returns the signature (`FILE.sig`).
    #[track_caller]
    pub fn ssh_sign(&self, key: &Key, namespace: &str, file: &Path, bytes: &[u8]) -> Vec<u8> {
        write_file(file, bytes);
        let mut cmd = self.command("ssh-keygen");
        cmd.args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(&key.private)
            .arg(file);
        self.run(cmd).success();
        fs::read(format!("{}.sig", file.display())).expect("ssh-keygen wrote the signature")
    }

    /// The raw bytes of `REV:PATH`, read with `git cat-file blob`.
    #[track_caller]
    pub fn git_show_bytes(&self, dir: &Path, rev_path: &str) -> Vec<u8> {
        self.git(dir, &["cat-file", "blob", rev_path])
            .success()
            .stdout
    }

    /// Writes `git cat-file blob REV:PATH` to `out`.
    #[track_caller]
    pub fn git_show_to(&self, dir: &Path, rev_path: &str, out: &Path) {
        write_file(out, &self.git_show_bytes(dir, rev_path));
    }

    /// A new ed25519 key made by stock `ssh-keygen`, comment `name`.
    pub fn keygen(&self, name: &str) -> Key {
        let dir = self.root.join("keys");
        fs::create_dir_all(&dir).expect("create keys dir");
        let private = dir.join(name);
        let mut cmd = self.command("ssh-keygen");
        cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private);
        self.run(cmd).success();
        Key {
            name: name.to_owned(),
            public: dir.join(format!("{name}.pub")),
            private,
        }
    }

    /// `git init --bare -b main ROOT/NAME`.
    pub fn bare_remote(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let mut cmd = self.command("git");
        cmd.args(["init", "-q", "--bare", "-b", "main"]).arg(&path);
        self.run(cmd).success();
        path
    }

    /// Stock `git clone SOURCE ROOT/NAME`.
    pub fn git_clone(&self, source: &Path, name: &str) -> PathBuf {
        let path = self.path(name);
        let mut cmd = self.command("git");
        cmd.args(["clone", "-q"]).arg(source).arg(&path);
        self.run(cmd).success();
        path
    }

    /// Writes `mvault signers` of `repo` to a file and returns its path.
    pub fn signers_file(&self, repo: &Path, key: &Key) -> PathBuf {
        let run = self.mvault(repo, key, &["signers"]).success();
        let path = self.path("allowed_signers");
        write_file(&path, &run.stdout);
        path
    }
}

/// Makes the git objects `cmd` writes claim `key`'s owner as author and
/// committer (`NAME <NAME@mvault>`), as a forger would write them.
pub fn as_key_owner<'c>(cmd: &'c mut Command, key: &Key) -> &'c mut Command {
    cmd.env("GIT_AUTHOR_NAME", &key.name)
        .env("GIT_AUTHOR_EMAIL", format!("{}@mvault", key.name))
        .env("GIT_COMMITTER_NAME", &key.name)
        .env("GIT_COMMITTER_EMAIL", format!("{}@mvault", key.name))
}

fn describe_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// A vault: an `mvault init` repository with an admin and an ML engineer,
/// alice, who may register versions of `nlp/*`; optionally with a bare
/// `origin` it has been pushed to.
pub struct Vault {
    pub env: TestEnv,
    pub repo: PathBuf,
    pub admin: Key,
    pub alice: Key,
    pub remote: Option<PathBuf>,
}

impl std::ops::Deref for Vault {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl Vault {
    /// A vault with no remote: `add` commits locally.
    pub fn new() -> Self {
        let env = TestEnv::new();
        let admin = env.keygen("admin");
        let alice = env.keygen("alice");
        let repo = env.path("repo");
        let mut init = env.command(env!("CARGO_BIN_EXE_mvault"));
        init.arg("--key")
            .arg(&admin.private)
            .arg("init")
            .arg(&repo)
            .arg("--admin-key")
            .arg(&admin.public);
        env.run(init).success();
        let pub_path = alice.public.to_str().expect("utf-8 path").to_owned();
        env.mvault(
            &repo,
            &admin,
            &["policy", "add-user", "alice", "--key-file", &pub_path],
        )
        .success();
        env.mvault(
            &repo,
            &admin,
            &[
                "policy",
                "grant",
                "alice",
                "--role",
                "ml_engineer",
                "--models",
                "nlp/*",
            ],
        )
        .success();
        Vault {
            env,
            repo,
            admin,
            alice,
            remote: None,
        }
    }

    /// A vault whose main has been pushed with stock git to a bare `origin`.
    pub fn with_remote() -> Self {
        let mut vault = Vault::new();
        let remote = vault.env.bare_remote("remote.git");
        let remote_str = remote.to_str().expect("utf-8 path").to_owned();
        vault.git_ok(&vault.repo, &["remote", "add", "origin", &remote_str]);
        vault.git_ok(&vault.repo, &["push", "-q", "-u", "origin", "main"]);
        vault.remote = Some(remote);
        vault
    }

    pub fn remote(&self) -> &Path {
        self.remote.as_deref().expect("vault has a remote")
    }

    /// Adds a user with no grant.
    pub fn add_user(&self, name: &str) -> Key {
        let key = self.keygen(name);
        let pub_path = key.public.to_str().expect("utf-8 path").to_owned();
        self.mvault(
            &self.repo,
            &self.admin,
            &["policy", "add-user", name, "--key-file", &pub_path],
        )
        .success();
        key
    }

    /// `mvault policy grant USER --role ROLE --models GLOB` as the admin.
    #[track_caller]
    pub fn grant(&self, user: &str, role: &str, models: &str) {
        self.mvault(
            &self.repo,
            &self.admin,
            &["policy", "grant", user, "--role", role, "--models", models],
        )
        .success();
    }

    /// A bare `ROOT/NAME` holding the vault's main and tags (pushed with
    /// stock git before the hook exists), then guarded by `mvault hook
    /// install NAME --root-key <admin's key> EXTRA…`; returns it and the
    /// install's (successful) run.
    #[track_caller]
    pub fn hooked_server(&self, name: &str, extra: &[&str]) -> (PathBuf, Run) {
        let server = self.bare_remote(name);
        self.git_ok(&self.repo, &["push", "-q", path_str(&server), "main"]);
        self.git_ok(&self.repo, &["push", "-q", "--tags", path_str(&server)]);
        let mut install = self.command(env!("CARGO_BIN_EXE_mvault"));
        install
            .args(["hook", "install"])
            .arg(&server)
            .arg("--root-key")
            .arg(&self.admin.public)
            .args(extra);
        let run = self.run(install).success();
        (server, run)
    }

    /// `mvault add DIR --model MODEL --version VERSION EXTRA…` as alice, in
    /// the vault's repository.
    pub fn add(&self, model_dir: &Path, model: &str, version: &str, extra: &[&str]) -> Run {
        self.add_in(&self.repo, &self.alice, model_dir, model, version, extra)
    }

    pub fn add_in(
        &self,
        repo: &Path,
        key: &Key,
        model_dir: &Path,
        model: &str,
        version: &str,
        extra: &[&str],
    ) -> Run {
        let dir = model_dir.to_str().expect("utf-8 path");
        let mut args = vec!["add", dir, "--model", model, "--version", version];
        args.extend_from_slice(extra);
        self.mvault(repo, key, &args)
    }

    /// `mvault pull REF -o OUT` as `key` in `repo`.
    pub fn pull_in(&self, repo: &Path, key: &Key, reference: &str, out: &Path) -> Run {
        let out = out.to_str().expect("utf-8 path");
        self.mvault(repo, key, &["pull", reference, "-o", out])
    }

    /// The manifest of `model@version` on main, parsed.
    pub fn manifest(&self, repo: &Path, model: &str, version: &str) -> Manifest {
        let text = self.git_show_bytes(
            repo,
            &format!("main:models/{model}/{version}/manifest.toml"),
        );
        Manifest::parse(&String::from_utf8(text).expect("manifest is UTF-8"))
    }
}

impl Default for Vault {
    fn default() -> Self {
        Self::new()
    }
}

/// The parts of a manifest (docs/formats.md) the tests look at.
pub struct Manifest {
    pub table: toml::Table,
    pub files: Vec<ManifestFile>,
}

pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub parts: Vec<ManifestPart>,
}

/// One part of a file: an age file in the version's payload tree, named
/// by its plaintext digest.
pub struct ManifestPart {
    pub sha256: String,
    pub size: u64,
    pub blob_size: u64,
}

impl Manifest {
    #[track_caller]
    pub fn parse(text: &str) -> Self {
        let table: toml::Table =
            toml::from_str(text).unwrap_or_else(|e| panic!("manifest is not TOML: {e}\n{text}"));
        let files = table
            .get("files")
            .and_then(|f| f.as_array())
            .unwrap_or_else(|| panic!("manifest has no [[files]]:\n{text}"))
            .iter()
            .map(|f| {
                let s = |k: &str| {
                    f.get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or_else(|| panic!("file entry without string {k}: {f}"))
                        .to_owned()
                };
                let n = |k: &str| {
                    f.get(k)
                        .and_then(|v| v.as_integer())
                        .unwrap_or_else(|| panic!("file entry without integer {k}: {f}"))
                        as u64
                };
                let parts = f
                    .get("parts")
                    .and_then(|p| p.as_array())
                    .map(|ps| {
                        ps.iter()
                            .map(|p| ManifestPart {
                                sha256: p
                                    .get("sha256")
                                    .and_then(|v| v.as_str())
                                    .unwrap_or_else(|| panic!("part without sha256: {p}"))
                                    .to_owned(),
                                size: p.get("size").and_then(|v| v.as_integer()).unwrap_or(-1)
                                    as u64,
                                blob_size: p
                                    .get("blob_size")
                                    .and_then(|v| v.as_integer())
                                    .unwrap_or(-1)
                                    as u64,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ManifestFile {
                    path: s("path"),
                    size: n("size"),
                    sha256: s("sha256"),
                    parts,
                }
            })
            .collect();
        Manifest { table, files }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.table.get(key).and_then(|v| v.as_str())
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.table.get(key).and_then(|v| v.as_integer())
    }

    /// The payload tree id the manifest names.
    pub fn payload(&self) -> &str {
        self.str("payload").expect("manifest names a payload")
    }
}

/// `git` revision of one part of a version: `refs/mvault/data/M/V:SHA`.
pub fn part_rev(model: &str, version: &str, sha256: &str) -> String {
    format!("refs/mvault/data/{model}/{version}:{sha256}")
}

// ---------------------------------------------------------------- files

/// `p` as `&str`; the tests' paths are UTF-8.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dir");
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `size` deterministic pseudo-random bytes (xorshift64, seeded) to
/// `path`, 1 MiB at a time: 64 MiB takes a fraction of a second in release.
pub fn write_pseudo_random(path: &Path, size: u64, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dir");
    }
    let mut file =
        fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n]).expect("write pseudo-random data");
        left -= n as u64;
    }
}

/// Overwrites bytes of an existing file at `offset`.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all_at(bytes, offset).expect("write_at");
}

/// A small model directory: a config, a tokenizer in a nested directory and
/// `weights` pseudo-random bytes of weights.
pub fn sample_model(dir: &Path, weights: u64, seed: u64) {
    write_file(
        &dir.join("config.json"),
        format!("{{\"hidden\": 768, \"seed\": {seed}}}\n").as_bytes(),
    );
    write_file(
        &dir.join("tokenizer/vocab.txt"),
        b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nof\n",
    );
    write_pseudo_random(&dir.join("model.safetensors"), weights, seed);
}

/// Every regular file under `dir`, as '/'-separated relative paths, sorted.
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("read dir entry");
            let path = entry.path();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).expect("under base");
                out.push(rel.to_str().expect("utf-8 path").replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Total bytes of the regular files under `dir` (`du -sb`, without the
/// directories' own sizes).
pub fn dir_size(dir: &Path) -> u64 {
    list_files(dir)
        .iter()
        .map(|rel| fs::metadata(dir.join(rel)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Path → SHA-256 of every file under `dir`.
pub fn digests(dir: &Path) -> BTreeMap<String, String> {
    list_files(dir)
        .into_iter()
        .map(|rel| {
            let digest = sha256_file(&dir.join(&rel));
            (rel, digest)
        })
        .collect()
}

/// Asserts that two directories hold the same files with the same bytes.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let want = list_files(expected);
    let got = list_files(actual);
    assert_eq!(
        want,
        got,
        "file lists differ between {} and {}",
        expected.display(),
        actual.display()
    );
    for rel in &want {
        assert_same_file(&expected.join(rel), &actual.join(rel));
    }
}

/// Asserts byte equality of two files, streamed.
#[track_caller]
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let open = |p: &Path| fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let (mut a, mut b) = (open(expected), open(actual));
    let (la, lb) = (
        a.metadata().expect("metadata").len(),
        b.metadata().expect("metadata").len(),
    );
    assert_eq!(
        la,
        lb,
        "sizes differ: {} vs {}",
        expected.display(),
        actual.display()
    );
    let mut ba = vec![0u8; MIB as usize];
    let mut bb = vec![0u8; MIB as usize];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba);
        let m = read_full(&mut b, &mut bb);
        assert_eq!(n, m, "short read comparing {}", actual.display());
        if n == 0 {
            break;
        }
        if ba[..n] != bb[..n] {
            let at = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "{} differs from {} at byte {}",
                actual.display(),
                expected.display(),
                offset + at as u64
            );
        }
        offset += n as u64;
    }
}

fn read_full(file: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).expect("read");
        if n == 0 {
            break;
        }
        filled += n;
    }
    filled
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut start = 0;
    while let Some(pos) = haystack[start..].iter().position(|&b| b == first) {
        let at = start + pos;
        if haystack[at..].starts_with(needle) {
            return true;
        }
        start = at + 1;
    }
    false
}

/// Files (regular, recursively) under `dir` that are not in `allowed`.
pub fn unexpected_files(dir: &Path, allowed: &[String]) -> Vec<String> {
    list_files(dir)
        .into_iter()
        .filter(|f| !allowed.contains(f))
        .collect()
}
