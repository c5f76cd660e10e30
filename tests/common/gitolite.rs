//! A real gitolite (Debian's gitolite3) for the server tests: `gitolite
//! setup -pk admin.pub` as the current user with HOME pointed at a
//! directory of the test (the "hosting user"'s home), its rc changed the
//! way its documentation says to enable repo-specific hooks (`LOCAL_CODE`
//! and `'repo-specific-hooks'` in `ENABLE`) and to let ref names carry the
//! '#' of promotion tags (`$REF_OR_FILENAME_PATT`), and the shared sshd fixture in
//! front of it reading the `authorized_keys` gitolite writes itself: each
//! key's forced command is gitolite-shell with the user's name, which
//! gitolite hands to hooks as `GL_USER`. sshd's `SetEnv` gives the sessions
//! the hosting user's HOME (and the tests' PATH and clock).
//!
//! Users and repositories are added as a gitolite admin does it: a clone of
//! `gitolite-admin` over ssh as the admin, a key in `keydir/`, rules in
//! `conf/gitolite.conf`, a push.
//!
//! A missing gitolite fails the test with the package to install; when the
//! test fails, gitolite's log is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::sshd::{output_line, Logins, Sshd};
use super::{path_str, require_program, write_file, Key, TestEnv, NOW};

/// The line of `.gitolite.rc` that lets ref names carry a '#' (gitolite's
/// own pattern, plus '#').
pub const HASH_IN_REF_NAMES: &str =
    r"$REF_OR_FILENAME_PATT = qr(^[0-9a-zA-Z][-0-9a-zA-Z._\@/+ :,#]*$);";

/// A gitolite installation and the sshd in front of it.
pub struct Gitolite {
    /// The hosting user's HOME: `.gitolite.rc`, `.gitolite/`,
    /// `repositories/`, `.ssh/authorized_keys`, `local/`.
    pub home: PathBuf,
    pub sshd: Sshd,
    admin: Key,
    path: String,
}

impl Drop for Gitolite {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- gitolite logs ({}) ---\n{}",
                self.home.display(),
                self.log()
            );
        }
    }
}

impl Gitolite {
    /// Sets gitolite up with `admin` as its administrator and starts sshd
    /// in front of it.
    pub fn start(env: &TestEnv, admin: &Key) -> Gitolite {
        let gitolite = require_program("gitolite", "gitolite3");
        let home = env.path("gitolite-home");
        fs::create_dir_all(&home).expect("create gitolite HOME");
        let path = std::env::var("PATH").expect("PATH is set");
        let user = output_line(Command::new("id").arg("-un"));

        // gitolite names a user after the key file: admin.pub -> admin.
        let admin_pub = env
            .path("gitolite-setup")
            .join(format!("{}.pub", admin.name));
        write_file(&admin_pub, admin.public_line().as_bytes());
        let mut setup = hosting_command(env, &home, &path, &user, gitolite.as_os_str());
        setup.arg("setup").arg("-pk").arg(&admin_pub);
        env.run(setup).success();

        // Repo-specific hooks, as gitolite's rc documents them.
        let rc_path = home.join(".gitolite.rc");
        let rc = fs::read_to_string(&rc_path).expect("gitolite setup wrote .gitolite.rc");
        let enabled = rc
            .replacen(
                "# LOCAL_CODE                =>  \"$ENV{HOME}/local\",",
                "LOCAL_CODE                =>  \"$ENV{HOME}/local\",",
                1,
            )
            .replacen("# 'repo-specific-hooks',", "'repo-specific-hooks',", 1);
        assert!(
            enabled.contains("\n        LOCAL_CODE ")
                && enabled.contains("\n            'repo-specific-hooks',"),
            "this gitolite's rc has no commented LOCAL_CODE or repo-specific-hooks line to enable:\n{rc}"
        );
        // mvault's promotion tags (`nlp/bert#production#3`) carry a '#',
        // which gitolite's default pattern for ref names refuses.
        let enabled = format!("{HASH_IN_REF_NAMES}\n{enabled}");
        write_file(&rc_path, enabled.as_bytes());
        // The trigger refuses to run without the directory.
        fs::create_dir_all(home.join("local/hooks/repo-specific"))
            .expect("create LOCAL_CODE/hooks/repo-specific");

        let sshd = Sshd::start_with(
            env,
            &Logins {
                authorized_keys: home.join(".ssh/authorized_keys"),
                set_env: server_env(env, &home, &path),
            },
        );
        Gitolite {
            home,
            sshd,
            admin: admin.clone(),
            path,
        }
    }

    /// A command run as the hosting user on the server: HOME is gitolite's,
    /// the global git config is its `~/.gitconfig`.
    pub fn server_command(&self, env: &TestEnv, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let user = output_line(Command::new("id").arg("-un"));
        hosting_command(env, &self.home, &self.path, &user, program.as_ref())
    }

    /// The hosting user's global git config, where fetch logging goes.
    pub fn gitconfig(&self) -> PathBuf {
        self.home.join(".gitconfig")
    }

    /// The bare repository of gitolite repo `name`.
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.home.join("repositories").join(format!("{name}.git"))
    }

    /// `ssh://USER@127.0.0.1:PORT/NAME`, gitolite's name for the repo.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}/{name}",
            self.sshd.user, self.sshd.port
        )
    }

    /// Makes `cmd` reach gitolite as `key`'s owner.
    pub fn connect_as(&self, cmd: &mut Command, key: &Key) {
        self.sshd.connect_as(cmd, key);
    }

    /// As the admin: adds `keys` to `keydir/` and `conf` to
    /// `conf/gitolite.conf` in the gitolite-admin repository and pushes it;
    /// gitolite then creates the repositories and writes the keys into
    /// `authorized_keys`.
    pub fn admin_push(&self, env: &TestEnv, keys: &[&Key], conf: &str) {
        let admin_clone = env.path("gitolite-admin");
        if !admin_clone.exists() {
            let mut clone = env.git_command(
                env.root(),
                &[
                    "clone",
                    "-q",
                    &self.url("gitolite-admin"),
                    path_str(&admin_clone),
                ],
            );
            self.connect_as(&mut clone, &self.admin);
            env.run(clone).success();
        }
        for key in keys {
            write_file(
                &admin_clone.join("keydir").join(format!("{}.pub", key.name)),
                format!("{}\n", key.public_line()).as_bytes(),
            );
        }
        let conf_path = admin_clone.join("conf/gitolite.conf");
        let mut text = fs::read_to_string(&conf_path).expect("gitolite.conf");
        text.push('\n');
        text.push_str(conf);
        write_file(&conf_path, text.as_bytes());
        env.git_ok(&admin_clone, &["add", "-A"]);
        env.git_ok(
            &admin_clone,
            &["commit", "-q", "-m", "mvault test: users and repos"],
        );
        let mut push = env.git_command(&admin_clone, &["push", "-q", "origin", "HEAD"]);
        self.connect_as(&mut push, &self.admin);
        let pushed = env.run(push).success();
        assert!(
            !pushed.stderr().contains("FATAL"),
            "gitolite refused the admin push:\n{}",
            pushed.stderr()
        );
    }

    /// gitolite's own log and sshd's.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let logs = self.home.join(".gitolite/logs");
        let mut files: Vec<PathBuf> = fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            text.push_str(&format!("== {}\n", f.display()));
            text.push_str(&fs::read_to_string(&f).unwrap_or_default());
        }
        text
    }
}

/// The environment of the hosting user's commands run by the test.
fn hosting_command(
    env: &TestEnv,
    home: &Path,
    path: &str,
    user: &str,
    program: &std::ffi::OsStr,
) -> Command {
    let mut cmd = env.command(program);
    cmd.env("HOME", home)
        .env("USER", user)
        .env("PATH", path)
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"));
    cmd
}

/// What sshd sets in every session: the hosting user's HOME (gitolite reads
/// its rc there), the tests' PATH and clock, a hermetic git.
fn server_env(env: &TestEnv, home: &Path, path: &str) -> Vec<(String, String)> {
    let tmp = env.path("server-tmp");
    fs::create_dir_all(&tmp).expect("create server TMPDIR");
    [
        ("HOME", path_str(home).to_owned()),
        ("PATH", path.to_owned()),
        (
            "GIT_CONFIG_GLOBAL",
            path_str(&home.join(".gitconfig")).to_owned(),
        ),
        ("GIT_CONFIG_NOSYSTEM", "1".to_owned()),
        ("MVAULT_NOW", NOW.to_string()),
        ("TMPDIR", path_str(&tmp).to_owned()),
        ("LC_ALL", "C".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
