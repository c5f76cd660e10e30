//! The server hook behind a real SSH transport (`common::sshd`): each test
//! starts Debian's `sshd` as the current user on a free port of 127.0.0.1,
//! with its own host key and configuration, and an `authorized_keys` whose
//! forced command (`env MVAULT_USER=<name> … git-shell -c
//! "$SSH_ORIGINAL_COMMAND"`) is the only place the pusher's identity comes
//! from. The clients are stock `git` and `mvault` with `GIT_SSH_COMMAND` and
//! an `ssh://` origin; nothing on the client side sets `MVAULT_USER`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::sshd::Sshd;
use crate::common::*;

/// A vault served over SSH: the bare `server.git` with the hook installed,
/// sshd in front of it, and the users' keys in its `authorized_keys`.
struct World {
    vault: Vault,
    bob: Key,
    server: PathBuf,
    sshd: Sshd,
}

impl std::ops::Deref for World {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.vault
    }
}

impl World {
    /// alice: developer on `nlp/*`; bob: viewer on `nlp/*`; admin: the root
    /// key pinned in the server's config.
    fn new() -> Self {
        let vault = Vault::new();
        let admin = |args: &[&str]| {
            vault.mvault(&vault.repo, &vault.admin, args).success();
        };
        // The harness makes alice an ml_engineer; this world wants a developer.
        admin(&[
            "policy",
            "grant",
            "alice",
            "--role",
            "developer",
            "--models",
            "nlp/*",
        ]);
        admin(&[
            "policy",
            "revoke",
            "alice",
            "--role",
            "ml_engineer",
            "--models",
            "nlp/*",
        ]);
        let bob = vault.add_user("bob");
        admin(&[
            "policy", "grant", "bob", "--role", "viewer", "--models", "nlp/*",
        ]);
        vault
            .mvault(&vault.repo, &vault.admin, &["policy", "show"])
            .success()
            .mentions(&["developer", "viewer"]);

        // The server: the history so far, pushed before the hook exists,
        // then the hook with the admin's key pinned as root.
        let (server, _) = vault.hooked_server("server.git", &[]);

        let sshd = Sshd::start(&vault, &[&vault.alice, &bob], Path::new("/dev/null"));
        World {
            vault,
            bob,
            server,
            sshd,
        }
    }

    /// Stock `git -C DIR ARGS…` connecting as `key`'s owner.
    fn git_as(&self, key: &Key, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.git_command(dir, args);
        self.sshd.connect_as(&mut cmd, key);
        self.run(cmd)
    }

    /// `mvault --key SIGNER -C DIR add MODEL_DIR --model nlp/bert --version
    /// VERSION EXTRA…`, whose push connects as `login`'s owner.
    fn add_as(
        &self,
        login: &Key,
        signer: &Key,
        dir: &Path,
        model_dir: &Path,
        version: &str,
        extra: &[&str],
    ) -> Run {
        let mut args = vec![
            "add",
            path_str(model_dir),
            "--model",
            "nlp/bert",
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.mvault_command(dir, signer, &args);
        self.sshd.connect_as(&mut cmd, login);
        self.run(cmd)
    }

    /// `git clone ssh://…/server.git ROOT/NAME` as `key`'s owner.
    fn clone_as(&self, key: &Key, name: &str) -> PathBuf {
        let dest = self.path(name);
        let url = self.sshd.url(&self.server);
        self.git_as(key, self.root(), &["clone", "-q", &url, path_str(&dest)])
            .success();
        dest
    }

    fn server_rev(&self, rev: &str) -> Option<String> {
        let run = self.git(&self.server, &["rev-parse", "-q", "--verify", rev]);
        run.status.success().then(|| run.stdout().trim().to_owned())
    }

    /// The last line of the server's decision log, parsed.
    fn last_decision(&self) -> serde_json::Value {
        let log = fs::read_to_string(self.server.join("mvault-decisions.jsonl"))
            .expect("the server has a decision log");
        let last = log.lines().last().expect("the decision log has a line");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("log line is not JSON: {e}: {last}"))
    }
}

#[test]
fn hook_ssh_developer_adds_a_version_and_the_log_names_the_ssh_login() {
    let w = World::new();
    let clone = w.clone_as(&w.alice, "alice-clone");
    let origin = w.git_ok(&clone, &["remote", "get-url", "origin"]);
    assert!(origin.starts_with("ssh://"), "origin is {origin}");

    let model = w.path("model");
    sample_model(&model, 200_000, 31);
    w.add_as(&w.alice, &w.alice, &clone, &model, "1.0.0", &[])
        .success();

    // Landed: the server's main and tag are the clone's.
    let ours = w.git_ok(&clone, &["rev-parse", "refs/heads/main"]);
    assert_eq!(w.server_rev("refs/heads/main").as_deref(), Some(&*ours));
    let tag = w.git_ok(&clone, &["rev-parse", "refs/tags/nlp/bert@v1.0.0"]);
    assert_eq!(
        w.server_rev("refs/tags/nlp/bert@v1.0.0").as_deref(),
        Some(&*tag)
    );

    // The pusher is the SSH login's user, from authorized_keys.
    let decision = w.last_decision();
    assert_eq!(decision["pusher"], "alice", "decision: {decision}");
    assert_eq!(decision["decision"], "accept", "decision: {decision}");
    w.sshd.assert_accepted_a_key();

    let mut verify = w.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&w.server);
    w.run(verify).success().mentions(&["chain intact"]);
}

#[test]
fn hook_ssh_viewer_pushing_a_developers_signed_commit_is_refused_by_role() {
    let w = World::new();
    let before_main = w.server_rev("refs/heads/main").expect("server main");
    let clone = w.clone_as(&w.bob, "bob-clone");

    // A commit and tag alice signed, built locally; bob pushes them.
    let model = w.path("model");
    sample_model(&model, 50_000, 32);
    w.add_as(&w.bob, &w.alice, &clone, &model, "2.0.0", &["--no-push"])
        .success();
    let pushed = w.git_as(
        &w.bob,
        &clone,
        &[
            "push",
            "--atomic",
            "origin",
            "refs/heads/main:refs/heads/main",
            "refs/tags/nlp/bert@v2.0.0:refs/tags/nlp/bert@v2.0.0",
        ],
    );
    let pushed = pushed.failure();
    assert!(
        pushed
            .stderr()
            .contains("mvault: refused refs/heads/main: pusher role:"),
        "expected the hook's role refusal:\n{}",
        pushed.stderr()
    );
    pushed.mentions(&["bob"]);

    // No ref moved.
    assert_eq!(
        w.server_rev("refs/heads/main").as_deref(),
        Some(&*before_main)
    );
    assert_eq!(w.server_rev("refs/tags/nlp/bert@v2.0.0"), None);

    let decision = w.last_decision();
    assert_eq!(decision["pusher"], "bob", "decision: {decision}");
    assert_eq!(decision["decision"], "refuse", "decision: {decision}");
    assert_eq!(
        decision["refusal"]["rule"], "pusher role",
        "decision: {decision}"
    );
    w.sshd.assert_accepted_a_key();
}

#[test]
fn hook_ssh_unsigned_commit_is_refused() {
    let w = World::new();
    let before_main = w.server_rev("refs/heads/main").expect("server main");
    let clone = w.clone_as(&w.alice, "alice-clone");

    write_file(&clone.join("notes.txt"), b"not signed\n");
    w.git_ok(&clone, &["add", "notes.txt"]);
    w.git_ok(&clone, &["commit", "-q", "-m", "unsigned"]);
    let pushed = w
        .git_as(&w.alice, &clone, &["push", "origin", "main"])
        .failure();
    assert!(
        pushed
            .stderr()
            .contains("mvault: refused refs/heads/main: unsigned commit:"),
        "expected the hook's unsigned-commit refusal:\n{}",
        pushed.stderr()
    );
    assert_eq!(
        w.server_rev("refs/heads/main").as_deref(),
        Some(&*before_main)
    );
    let decision = w.last_decision();
    assert_eq!(decision["pusher"], "alice", "decision: {decision}");
    assert_eq!(decision["decision"], "refuse", "decision: {decision}");
}

#[test]
fn hook_ssh_fetch_and_clone_work() {
    let w = World::new();
    // bob's clone predates the version; a fetch brings it.
    let bobs = w.clone_as(&w.bob, "bob-clone");
    let alices = w.clone_as(&w.alice, "alice-clone");
    let model = w.path("model");
    sample_model(&model, 300_000, 33);
    w.add_as(&w.alice, &w.alice, &alices, &model, "1.0.0", &[])
        .success();
    let server_main = w.server_rev("refs/heads/main").expect("server main");

    w.git_as(&w.bob, &bobs, &["fetch", "-q", "--tags", "origin"])
        .success();
    w.git_as(&w.bob, &bobs, &["merge", "-q", "--ff-only", "origin/main"])
        .success();
    assert_eq!(w.git_ok(&bobs, &["rev-parse", "main"]), server_main);
    // The clone has the record only: pull fetches the version's payload
    // over ssh, as bob.
    let out = w.path("out-fetched");
    let mut pull = w.mvault_command(
        &bobs,
        &w.bob,
        &["pull", "nlp/bert@1.0.0", "-o", path_str(&out)],
    );
    w.sshd.connect_as(&mut pull, &w.bob);
    w.run(pull).success();
    assert_same_tree(&model, &out);

    // A fresh clone over ssh holds the same history and the same bytes.
    let fresh = w.clone_as(&w.bob, "bob-fresh");
    assert_eq!(w.git_ok(&fresh, &["rev-parse", "main"]), server_main);
    assert_eq!(
        w.git_ok(&fresh, &["rev-parse", "refs/tags/nlp/bert@v1.0.0"]),
        w.server_rev("refs/tags/nlp/bert@v1.0.0")
            .expect("server tag")
    );
    let out = w.path("out-cloned");
    let mut pull = w.mvault_command(
        &fresh,
        &w.bob,
        &["pull", "nlp/bert@1.0.0", "-o", path_str(&out)],
    );
    w.sshd.connect_as(&mut pull, &w.bob);
    w.run(pull).success();
    assert_same_tree(&model, &out);
    w.sshd.assert_accepted_a_key();
}
