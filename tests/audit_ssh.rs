//! The server's access log over a real SSH transport (issue "Audit",
//! acceptance 5): `mvault hook install --log-fetches FILE` sets git's
//! `uploadpack.packObjectsHook` in FILE, the server user's global git
//! configuration (sshd's forced command points `GIT_CONFIG_GLOBAL` at it);
//! a `git clone` over ssh then appears in the server log with the user the
//! forced command vouches for (`MVAULT_USER`), chained with the hook's
//! decisions, and `mvault hook log verify` still passes.
//!
//! The sshd fixture is this file's own (`hook_ssh`'s is private to it):
//! Debian's `sshd` as the current user on a free port of 127.0.0.1, its own
//! host key and configuration. A missing `sshd` fails the test with the
//! package to install; it is never skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory on Debian; it must exist when sshd
/// starts as root.
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running `sshd -D -e`, killed (by its own process id) when dropped.
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

fn output_line(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn git_shell() -> PathBuf {
    let git = require_program("git", "git");
    let exec_path = PathBuf::from(output_line(Command::new(&git).arg("--exec-path")));
    [
        git.with_file_name("git-shell"),
        exec_path.join("git-shell"),
        PathBuf::from("/usr/bin/git-shell"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| panic!("git-shell not found; install git (apt-get install git)"))
}

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

/// Starts sshd whose `authorized_keys` gives each key a forced command
/// running git-shell as that key's user (`MVAULT_USER=<key name>`) with
/// `GIT_CONFIG_GLOBAL=<server_config>`.
fn start_sshd(env: &TestEnv, user: &str, keys: &[&Key], server_config: &Path) -> Sshd {
    if !Path::new(SSHD).is_file() {
        panic!("{SSHD} is missing; install openssh-server (apt-get install openssh-server)");
    }
    require_program("ssh", "openssh-client");
    let dir = env.path("sshd");
    fs::create_dir_all(&dir).expect("create sshd dir");
    if output_line(Command::new("id").arg("-u")) == "0" && !Path::new(PRIVSEP_DIR).is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(PRIVSEP_DIR)
        {
            assert!(
                Path::new(PRIVSEP_DIR).is_dir(),
                "cannot create {PRIVSEP_DIR}: {e}"
            );
        }
    }
    let host_key = dir.join("host_ed25519");
    let mut keygen = env.command("ssh-keygen");
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "audit-host", "-f"])
        .arg(&host_key);
    env.run(keygen).success();

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
             GIT_CONFIG_GLOBAL={config} GIT_CONFIG_NOSYSTEM=1 LC_ALL=C \
             {git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\"",
            name = key.name,
            path = sh_quote(&path),
            home = sh_quote(path_str(&server_home)),
            tmp = sh_quote(path_str(&server_tmp)),
            config = sh_quote(path_str(server_config)),
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
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let text = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\nPrintMotd no\nLogLevel VERBOSE\n",
            path_str(&host_key),
            path_str(&dir.join("sshd.pid")),
            path_str(&authorized_keys),
        );
        write_file(&config, text.as_bytes());
        let checked = Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&config)
            .output()
            .expect("run sshd -t");
        assert!(
            checked.status.success(),
            "sshd -t rejects the configuration:\n{}\n{text}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .env_clear()
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create sshd log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let mut sshd = Sshd {
            child,
            port,
            log: log.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if sshd
                .log()
                .contains(&format!("Server listening on 127.0.0.1 port {port}"))
            {
                return sshd;
            }
            if let Some(status) = sshd.child.try_wait().expect("poll sshd") {
                last = format!("sshd exited with {status}:\n{}", sshd.log());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen within 20 s:\n{}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if !last.contains("Address already in use") {
            break;
        }
    }
    panic!("sshd did not start: {last}");
}

#[test]
fn audit_ssh_clone_over_ssh_is_in_the_server_access_log_with_the_fetching_user() {
    let v = Vault::new();
    let bob = v.add_user("bob");
    v.mvault(
        &v.repo,
        &v.admin,
        &[
            "policy", "grant", "bob", "--role", "viewer", "--models", "nlp/*",
        ],
    )
    .success();
    let model = v.path("model");
    sample_model(&model, 20_000, 41);
    v.add(&model, "nlp/bert", "1.0.0", &[]).success();

    // The server: the history, then the hook with fetch logging into the
    // server user's global git configuration.
    let server = v.bare_remote("server.git");
    v.git_ok(&v.repo, &["push", "-q", path_str(&server), "main"]);
    v.git_ok(&v.repo, &["push", "-q", "--tags", path_str(&server)]);
    let server_config = v.path("server-gitconfig");
    let mut install = v.command(env!("CARGO_BIN_EXE_mvault"));
    install
        .args(["hook", "install"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public)
        .arg("--log-fetches")
        .arg(&server_config);
    v.run(install)
        .success()
        .mentions(&["uploadpack.packObjectsHook"]);
    let mut get = v.command("git");
    get.args(["config", "--file"])
        .arg(&server_config)
        .args(["--get", "uploadpack.packObjectsHook"]);
    let hook_value = v.run(get).success().stdout();
    assert!(
        hook_value.contains("hook pack-objects"),
        "uploadpack.packObjectsHook = {hook_value}"
    );

    let user = output_line(Command::new("id").arg("-un"));
    let sshd = start_sshd(&v, &user, &[&v.alice, &bob], &server_config);
    let url = format!("ssh://{user}@127.0.0.1:{}{}", sshd.port, path_str(&server));
    let clone_as = |key: &Key, name: &str| -> PathBuf {
        let dest = v.path(name);
        let ssh = format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new -p {}",
            sh_quote(path_str(&key.private)),
            sh_quote(path_str(&v.path("known_hosts"))),
            sshd.port
        );
        let mut cmd = v.git_command(v.root(), &["clone", "-q", &url, path_str(&dest)]);
        cmd.env("GIT_SSH_COMMAND", ssh).env_remove("MVAULT_USER");
        v.run(cmd).success();
        dest
    };

    let bobs = clone_as(&bob, "bob-clone");
    assert_eq!(
        v.git_ok(&bobs, &["rev-parse", "main"]),
        v.git_ok(&server, &["rev-parse", "main"])
    );
    assert!(
        sshd.log()
            .contains(&format!("Accepted publickey for {user}")),
        "the clone went through sshd:\n{}",
        sshd.log()
    );

    let server_log = |args: &[&str]| {
        let mut all = vec!["log", "--server"];
        all.extend_from_slice(args);
        v.mvault(&server, &v.admin, &all).success().stdout()
    };
    let text = server_log(&[]);
    let fetch_line = text
        .lines()
        .find(|l| l.contains(" fetch ") && l.contains(" bob "))
        .unwrap_or_else(|| panic!("no fetch by bob in `mvault log --server`:\n{text}"));
    assert!(fetch_line.contains("refs/heads/main"), "{fetch_line}");
    assert!(
        fetch_line.starts_with("2026-11-22T10:00:00Z"),
        "{fetch_line}"
    );

    // A second user is told apart from the first.
    clone_as(&v.alice, "alice-clone");
    let lines: Vec<serde_json::Value> = server_log(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("server log lines are JSON"))
        .collect();
    let fetchers: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "fetch")
        .map(|l| l["user"].as_str().expect("user"))
        .collect();
    assert_eq!(fetchers, ["bob", "alice"], "{lines:?}");
    let refs = lines[0]["refs"].as_array().expect("refs");
    assert!(
        refs.iter().any(|r| r == "refs/tags/nlp/bert@v1.0.0"),
        "the clone wanted the registration tag: {refs:?}"
    );

    let mut verify = v.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&server);
    v.run(verify)
        .success()
        .mentions(&["2 entries", "chain intact"]);
    v.mvault(&server, &v.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
}
