//! A real SSH transport for the tests that need one (`hook_ssh`,
//! `audit_ssh`): Debian's `sshd` as the current user on a free port of
//! 127.0.0.1, with its own host key and configuration in the test's
//! directory, and an `authorized_keys` whose forced command
//! (`env MVAULT_USER=<name> … git-shell -c "$SSH_ORIGINAL_COMMAND"`) is the
//! only place the user's identity comes from. Clients reach it with stock
//! `git`/`mvault` and `GIT_SSH_COMMAND` (`Sshd::connect_as`).
//!
//! Other servers that sit behind sshd (gitolite, `common::gitolite`) bring
//! their own `authorized_keys` and the session environment they need
//! (`Sshd::start_with`). When the test fails, sshd's log is printed.
//!
//! A missing `sshd` fails the test with the package to install; it is never
//! skipped. Run as root, the fixture creates `/run/sshd` (the privilege
//! separation directory OpenSSH insists on) when it is missing; as another
//! user, sshd needs no privilege separation and can only log that user in,
//! which is all the tests do.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{path_str, require_program, write_file, Key, TestEnv, NOW};

/// Debian's OpenSSH server (package openssh-server).
pub const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory on Debian; it must exist when sshd
/// starts as root.
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running `sshd -D -e`, killed (by its own process id) when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The login every client uses: the user running the tests.
    pub user: String,
    log: PathBuf,
    known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- sshd log ({}) ---\n{}", self.log.display(), self.log());
        }
    }
}

/// Who sshd lets in and with what environment: the `authorized_keys` file
/// it reads (each line's forced command decides what a login runs), and
/// variables it sets in every session after its own (`SetEnv`; they win
/// over sshd's `HOME` and `PATH`).
pub struct Logins {
    pub authorized_keys: PathBuf,
    pub set_env: Vec<(String, String)>,
}

/// One line of output of a command that must succeed.
pub fn output_line(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `git-shell`, which ships with git: next to the `git` on PATH, in its exec
/// path, or Debian's /usr/bin.
pub fn git_shell() -> PathBuf {
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
pub fn sh_quote(s: &str) -> String {
    assert!(
        !s.contains('\'') && !s.contains('"') && !s.contains('\\'),
        "unexpected quote in {s:?}"
    );
    format!("'{s}'")
}

/// As root, OpenSSH insists on its privilege separation directory.
fn ensure_privsep_dir() {
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
}

/// `authorized_keys` with one line per key: a forced command running
/// git-shell with the identity sshd vouches for (`MVAULT_USER=<key name>`)
/// and `GIT_CONFIG_GLOBAL=<git_config_global>`. PATH reaches the git the
/// tests use (the hook shim calls mvault by absolute path, mvault calls git).
fn authorized_keys(env: &TestEnv, keys: &[&Key], git_config_global: &Path, path: &str) -> String {
    let git_shell = git_shell();
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
            path = sh_quote(path),
            home = sh_quote(path_str(&server_home)),
            tmp = sh_quote(path_str(&server_tmp)),
            config = sh_quote(path_str(git_config_global)),
            git_shell = sh_quote(path_str(&git_shell)),
        );
        authorized.push_str(&format!(
            "command=\"{command}\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}\n",
            key.public_line()
        ));
    }
    authorized
}

impl Sshd {
    /// Starts sshd with its own host key and configuration in `env`'s
    /// directory, letting in the current user with each of `keys` (the
    /// key's name is the mvault user; the session's git reads
    /// `git_config_global` as its global configuration), and waits until it
    /// listens.
    pub fn start(env: &TestEnv, keys: &[&Key], git_config_global: &Path) -> Sshd {
        let path = std::env::var("PATH").expect("PATH is set");
        let dir = env.path("sshd");
        fs::create_dir_all(&dir).expect("create sshd dir");
        let authorized_keys_file = dir.join("authorized_keys");
        write_file(
            &authorized_keys_file,
            authorized_keys(env, keys, git_config_global, &path).as_bytes(),
        );
        Sshd::start_with(
            env,
            &Logins {
                authorized_keys: authorized_keys_file,
                set_env: Vec::new(),
            },
        )
    }

    /// Starts sshd reading `logins.authorized_keys` and setting
    /// `logins.set_env` in each session, and waits until it listens.
    pub fn start_with(env: &TestEnv, logins: &Logins) -> Sshd {
        if !Path::new(SSHD).is_file() {
            panic!("{SSHD} is missing; install openssh-server (apt-get install openssh-server)");
        }
        require_program("ssh", "openssh-client");
        let user = output_line(Command::new("id").arg("-un"));
        let dir = env.path("sshd");
        fs::create_dir_all(&dir).expect("create sshd dir");
        ensure_privsep_dir();

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

        let path = std::env::var("PATH").expect("PATH is set");
        let authorized_keys_file = &logins.authorized_keys;
        // One SetEnv line: sshd keeps only the first.
        let set_env: Vec<String> = logins
            .set_env
            .iter()
            .map(|(k, v)| {
                assert!(
                    !v.contains('"') && !v.contains(char::is_whitespace),
                    "SetEnv value {v:?} needs quoting"
                );
                format!("{k}={v}")
            })
            .collect();
        let set_env = if set_env.is_empty() {
            String::new()
        } else {
            format!("SetEnv {}\n", set_env.join(" "))
        };

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
                 LogLevel VERBOSE\n\
                 {set_env}",
                host_key = path_str(&host_key),
                pid = path_str(&dir.join("sshd.pid")),
                authorized_keys = path_str(authorized_keys_file),
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
                .args(["-D", "-e", "-f"])
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
                user: user.clone(),
                log: log.clone(),
                known_hosts: env.path("known_hosts"),
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

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh://USER@127.0.0.1:PORT/REPO`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path_str(repo)
        )
    }

    /// What git runs to reach the server as `key`'s owner.
    pub fn ssh_command(&self, key: &Key) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new -p {}",
            sh_quote(path_str(&key.private)),
            sh_quote(path_str(&self.known_hosts)),
            self.port
        )
    }

    /// Makes `cmd` (stock git, or mvault that pushes) connect as `key`'s
    /// owner. The identity must come from the SSH login: no `MVAULT_USER`.
    pub fn connect_as(&self, cmd: &mut Command, key: &Key) {
        cmd.env("GIT_SSH_COMMAND", self.ssh_command(key))
            .env_remove("MVAULT_USER");
    }

    /// Asserts that sshd authenticated someone by public key, so the
    /// connection really went through it.
    #[track_caller]
    pub fn assert_accepted_a_key(&self) {
        let log = self.log();
        assert!(
            log.contains(&format!("Accepted publickey for {}", self.user)),
            "sshd did not log a public-key login:\n{log}"
        );
    }
}
