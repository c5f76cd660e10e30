//! The server hook behind a real SSH transport: each test starts Debian's
//! `sshd` as the current user on a free port of 127.0.0.1, with its own host
//! key and configuration, and an `authorized_keys` whose forced command
//! (`env MVAULT_USER=<name> … git-shell -c "$SSH_ORIGINAL_COMMAND"`) is the
//! only place the pusher's identity comes from. The clients are stock `git`
//! and `mvault` with `GIT_SSH_COMMAND` and an `ssh://` origin; nothing on the
//! client side sets `MVAULT_USER`.
//!
//! A missing `sshd` fails the test with the package to install; it is never
//! skipped. Run as root, the test creates `/run/sshd` (the privilege
//! separation directory OpenSSH insists on) when it is missing; as another
//! user, sshd needs no privilege separation and can only log that user in,
//! which is all the tests do.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Debian's OpenSSH server (package openssh-server).
const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory on Debian; it must exist when sshd
/// starts as root.
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running `sshd -D -e`, killed (by its process id) when dropped.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of output of a command that must succeed.
fn output_line(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `git-shell`, which ships with git: next to the `git` on PATH, in its exec
/// path, or Debian's /usr/bin.
fn git_shell() -> PathBuf {
    let git = require_program("git", "git");
    let exec_path = PathBuf::from(output_line(Command::new(&git).arg("--exec-path")));
    let candidates = [
        git.with_file_name("git-shell"),
        exec_path.join("git-shell"),
        PathBuf::from("/usr/bin/git-shell"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("git-shell not found (tried {candidates:?}); install git (apt-get install git)")
        })
}

/// Single-quotes `s` for sh; the tests' paths never hold a quote.
fn sh_quote(s: &str) -> String {
    assert!(
        !s.contains('\'') && !s.contains('"') && !s.contains('\\'),
        "unexpected quote in {s:?}"
    );
    format!("'{s}'")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A vault served over SSH: the bare `server.git` with the hook installed,
/// sshd in front of it, and the users' keys in its `authorized_keys`.
struct World {
    vault: Vault,
    bob: Key,
    server: PathBuf,
    user: String,
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
        let server = vault.bare_remote("server.git");
        let server_s = path_str(&server).to_owned();
        vault.git_ok(&vault.repo, &["push", "-q", &server_s, "main"]);
        vault.git_ok(&vault.repo, &["push", "-q", "--tags", &server_s]);
        let mut install = vault.command(env!("CARGO_BIN_EXE_mvault"));
        install
            .args(["hook", "install"])
            .arg(&server)
            .arg("--root-key")
            .arg(&vault.admin.public);
        vault.run(install).success();

        let user = output_line(Command::new("id").arg("-un"));
        let sshd = start_sshd(&vault, &user, &[&vault.alice, &bob]);
        World {
            vault,
            bob,
            server,
            user,
            sshd,
        }
    }

    fn url(&self) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.sshd.port,
            path_str(&self.server)
        )
    }

    /// What git runs to reach the server as `key`'s owner.
    fn ssh_command(&self, key: &Key) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new -p {}",
            sh_quote(path_str(&key.private)),
            sh_quote(path_str(&self.path("known_hosts"))),
            self.sshd.port
        )
    }

    /// Stock `git -C DIR ARGS…` connecting as `key`'s owner.
    fn git_as(&self, key: &Key, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.git_command(dir, args);
        cmd.env("GIT_SSH_COMMAND", self.ssh_command(key))
            .env_remove("MVAULT_USER");
        self.run(cmd)
    }

    /// `mvault --key SIGNER -C DIR ARGS…` whose pushes connect as `login`'s
    /// owner. The identity must come from the SSH login: no `MVAULT_USER`.
    fn mvault_as(&self, login: &Key, signer: &Key, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.mvault_command(dir, signer, args);
        cmd.env("GIT_SSH_COMMAND", self.ssh_command(login))
            .env_remove("MVAULT_USER");
        self.run(cmd)
    }

    /// `git clone ssh://…/server.git ROOT/NAME` as `key`'s owner.
    fn clone_as(&self, key: &Key, name: &str) -> PathBuf {
        let dest = self.path(name);
        let url = self.url();
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

    /// Asserts that sshd authenticated someone by public key, so the push
    /// really went through it.
    fn assert_sshd_accepted_a_key(&self) {
        let log = self.sshd.log();
        assert!(
            log.contains(&format!("Accepted publickey for {}", self.user)),
            "sshd did not log a public-key login:\n{log}"
        );
    }
}

/// Starts sshd with its own host key and configuration in the test's
/// directory, one `authorized_keys` line per key (the key's name is the
/// mvault user), and waits until it listens.
fn start_sshd(env: &TestEnv, user: &str, keys: &[&Key]) -> Sshd {
    if !Path::new(SSHD).is_file() {
        panic!("{SSHD} is missing; install openssh-server (apt-get install openssh-server)");
    }
    require_program("ssh", "openssh-client");
    let dir = env.path("sshd");
    fs::create_dir_all(&dir).expect("create sshd dir");

    // As root, OpenSSH insists on its privilege separation directory.
    let uid = output_line(Command::new("id").arg("-u"));
    if uid == "0" && !Path::new(PRIVSEP_DIR).is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        let made = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(PRIVSEP_DIR);
        if let Err(e) = made {
            // Another test may have made it meanwhile.
            assert!(
                Path::new(PRIVSEP_DIR).is_dir(),
                "cannot create {PRIVSEP_DIR}: {e}"
            );
        }
    }

    let host_key = dir.join("host_ed25519");
    let mut keygen = env.command("ssh-keygen");
    keygen
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "mvault-test-host",
            "-f",
        ])
        .arg(&host_key);
    env.run(keygen).success();

    // The session of every key runs git-shell with the identity sshd vouches
    // for; PATH reaches the git the tests use (the hook shim calls mvault by
    // absolute path, mvault calls git).
    let git_shell = git_shell();
    let path = std::env::var("PATH").expect("PATH is set");
    let server_home = env.path("server-home");
    let server_tmp = env.path("server-tmp");
    fs::create_dir_all(&server_home).expect("create server HOME");
    fs::create_dir_all(&server_tmp).expect("create server TMPDIR");
    let mut authorized = String::new();
    for key in keys {
        let command = format!(
            "env MVAULT_USER={name} MVAULT_NOW={NOW} PATH={path} HOME={home} TMPDIR={tmp} \
             GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 LC_ALL=C \
             {git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\"",
            name = key.name,
            path = sh_quote(&path),
            home = sh_quote(path_str(&server_home)),
            tmp = sh_quote(path_str(&server_tmp)),
            git_shell = sh_quote(path_str(&git_shell)),
        );
        authorized.push_str(&format!(
            "command=\"{command}\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}\n",
            key.public_line()
        ));
    }
    let authorized_keys = dir.join("authorized_keys");
    write_file(&authorized_keys, authorized.as_bytes());

    let config = dir.join("sshd_config");
    let log = dir.join("sshd.log");
    let mut last_log = String::new();
    // The port is free when picked; another process may still take it
    // before sshd binds, so try a few.
    for _ in 0..5 {
        let port = free_port();
        let text = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             AllowUsers {user}\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n",
            host_key = path_str(&host_key),
            pid = path_str(&dir.join("sshd.pid")),
            authorized_keys = path_str(&authorized_keys),
        );
        write_file(&config, text.as_bytes());

        let mut check = Command::new(SSHD);
        check.arg("-t").arg("-f").arg(&config);
        let checked = check.output().expect("run sshd -t");
        assert!(
            checked.status.success(),
            "sshd -t rejects the test's configuration:\n{}\n{text}",
            String::from_utf8_lossy(&checked.stderr)
        );

        let log_file = fs::File::create(&log).expect("create sshd log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .env_clear()
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let mut sshd = Sshd {
            child,
            port,
            log: log.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = sshd.log();
            if text.contains(&format!("Server listening on 127.0.0.1 port {port}")) {
                return sshd;
            }
            if let Some(status) = sshd.child.try_wait().expect("poll sshd") {
                last_log = format!("sshd exited with {status}:\n{}", sshd.log());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not start listening within 20 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if !last_log.contains("Address already in use") {
            break;
        }
    }
    panic!("sshd did not start: {last_log}");
}

#[test]
fn hook_ssh_developer_adds_a_version_and_the_log_names_the_ssh_login() {
    let w = World::new();
    let clone = w.clone_as(&w.alice, "alice-clone");
    let origin = w.git_ok(&clone, &["remote", "get-url", "origin"]);
    assert!(origin.starts_with("ssh://"), "origin is {origin}");

    let model = w.path("model");
    sample_model(&model, 200_000, 31);
    w.mvault_as(
        &w.alice,
        &w.alice,
        &clone,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
        ],
    )
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
    w.assert_sshd_accepted_a_key();

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
    w.mvault_as(
        &w.bob,
        &w.alice,
        &clone,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            "2.0.0",
            "--no-push",
        ],
    )
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
            .contains("mvault: refused refs/heads/main: role:"),
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
    assert_eq!(decision["refusal"]["rule"], "role", "decision: {decision}");
    w.assert_sshd_accepted_a_key();
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
    w.mvault_as(
        &w.alice,
        &w.alice,
        &alices,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
        ],
    )
    .success();
    let server_main = w.server_rev("refs/heads/main").expect("server main");

    w.git_as(&w.bob, &bobs, &["fetch", "-q", "--tags", "origin"])
        .success();
    w.git_as(&w.bob, &bobs, &["merge", "-q", "--ff-only", "origin/main"])
        .success();
    assert_eq!(w.git_ok(&bobs, &["rev-parse", "main"]), server_main);
    let out = w.path("out-fetched");
    w.pull_in(&bobs, &w.bob, "nlp/bert@1.0.0", &out).success();
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
    w.pull_in(&fresh, &w.bob, "nlp/bert@1.0.0", &out).success();
    assert_same_tree(&model, &out);
    w.assert_sshd_accepted_a_key();
}
