//! A vault behind a real git server other than plain sshd, and what every
//! such server must do for mvault (issue "Real servers in the tests",
//! acceptance 8): an allowed push lands, a refused push shows mvault's line
//! to the client and moves no ref, a clone pulls one version, the server's
//! access log names who fetched which version from where, and a purge
//! deletes one archived version's payload ref through the server.
//!
//! The same scenarios run on gitolite (`server_gitolite`) and on smart HTTP
//! (`server_http`); only how a client reaches the server differs (`Front`).
//! The vault: alice is an ml_engineer on `nlp/*`, bob a viewer; the admin's
//! key is the server's pinned root.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::gitolite::Gitolite;
use super::http::HttpServer;
use super::*;

/// How clients reach the server.
pub enum Front {
    /// gitolite behind sshd; the repository's gitolite name.
    Gitolite { gitolite: Gitolite, name: String },
    /// git http-backend behind nginx; the URL path under `/git/`, and the
    /// config file the web server gives git as `GIT_CONFIG_GLOBAL`.
    Http {
        http: HttpServer,
        name: String,
        git_config_global: PathBuf,
    },
}

/// A vault served by `front`, history pushed, hook installed.
pub struct Served {
    /// First, so that it is dropped (and prints its logs when the test
    /// failed) before the vault's directory is removed.
    pub front: Front,
    pub vault: Vault,
    pub bob: Key,
    /// The server's bare repository.
    pub server: PathBuf,
    /// `mvault hook install`'s run.
    pub install: Run,
}

impl std::ops::Deref for Served {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.vault
    }
}

/// The vault of every served world: alice (ml_engineer) and bob (viewer).
fn vault_with_bob() -> (Vault, Key) {
    let vault = Vault::new();
    let bob = vault.add_user("bob");
    vault.grant("bob", "viewer", "nlp/*");
    (vault, bob)
}

impl Served {
    /// gitolite: `repo vault` with RW for alice and bob (mvault, not
    /// gitolite, decides who may register) and `option hook.pre-receive =
    /// mvault`; the vault's history pushed by the admin over ssh before the
    /// hook exists; the hook installed by the hosting user with fetch
    /// logging in its `~/.gitconfig`.
    pub fn gitolite() -> Served {
        let (vault, bob) = vault_with_bob();
        let gitolite = Gitolite::start(&vault, &vault.admin);
        gitolite.admin_push(
            &vault,
            &[&vault.alice, &bob],
            "repo vault\n    RW+     =   admin\n    RW      =   alice bob\n    option hook.pre-receive = mvault\n",
        );
        let server = gitolite.repo_path("vault");
        assert!(
            server.is_dir(),
            "gitolite did not create {}",
            server.display()
        );
        let url = gitolite.url("vault");
        for what in [
            &["push", "-q", &url, "main"][..],
            &["push", "-q", "--tags", &url][..],
        ] {
            let mut push = vault.git_command(&vault.repo, what);
            gitolite.connect_as(&mut push, &vault.admin);
            vault.run(push).success();
        }
        let mut install = gitolite.server_command(&vault, env!("CARGO_BIN_EXE_mvault"));
        install
            .args(["hook", "install"])
            .arg(&server)
            .arg("--root-key")
            .arg(&vault.admin.public)
            .arg("--log-fetches")
            .arg(gitolite.gitconfig());
        let install = vault.run(install).success();
        Served {
            vault,
            bob,
            server,
            front: Front::Gitolite {
                gitolite,
                name: "vault".into(),
            },
            install,
        }
    }

    /// Smart HTTP: a bare repository made by stock `git init --bare` (HEAD
    /// on master) under the web server's project root, the vault's history
    /// pushed by path before the hook exists, `http.receivepack` on, the
    /// hook installed with fetch logging in the web server's
    /// `GIT_CONFIG_GLOBAL` file.
    pub fn http() -> Served {
        let (vault, bob) = vault_with_bob();
        let root = vault.path("srv");
        let server = root.join("vault.git");
        let mut init = vault.command("git");
        init.args(["init", "-q", "--bare"]).arg(&server);
        vault.run(init).success();
        vault.git_ok(&vault.repo, &["push", "-q", path_str(&server), "main"]);
        vault.git_ok(&vault.repo, &["push", "-q", "--tags", path_str(&server)]);
        vault.git_ok(&server, &["config", "http.receivepack", "true"]);
        let git_config_global = vault.path("srv-gitconfig");
        let mut install = vault.command(env!("CARGO_BIN_EXE_mvault"));
        install
            .args(["hook", "install"])
            .arg(&server)
            .arg("--root-key")
            .arg(&vault.admin.public)
            .arg("--log-fetches")
            .arg(&git_config_global);
        let install = vault.run(install).success();
        let http = HttpServer::start(
            &vault,
            &root,
            // `Alice`: alice's login as the web server knows it (an alias).
            &["admin", "alice", "bob", "Alice"],
            &git_config_global,
        );
        Served {
            vault,
            bob,
            server,
            front: Front::Http {
                http,
                name: "vault.git".into(),
                git_config_global,
            },
            install,
        }
    }

    /// The URL `key`'s owner clones from.
    pub fn url(&self, key: &Key) -> String {
        match &self.front {
            Front::Gitolite { gitolite, name } => gitolite.url(name),
            Front::Http { http, name, .. } => http.url(&key.name, name),
        }
    }

    /// Makes `cmd` (stock git, or mvault that pushes or fetches) reach the
    /// server as `key`'s owner; the identity comes from the server alone.
    pub fn connect_as(&self, cmd: &mut Command, key: &Key) {
        cmd.env_remove("MVAULT_USER");
        match &self.front {
            Front::Gitolite { gitolite, .. } => gitolite.connect_as(cmd, key),
            // The credentials are in the clone's URL; never a prompt.
            Front::Http { .. } => {
                cmd.env("GIT_TERMINAL_PROMPT", "0");
            }
        }
    }

    /// Stock `git -C DIR ARGS…` as `key`'s owner.
    pub fn git_as(&self, key: &Key, dir: &Path, args: &[&str]) -> Run {
        let mut cmd = self.git_command(dir, args);
        self.connect_as(&mut cmd, key);
        self.run(cmd)
    }

    /// `git clone URL ROOT/NAME` as `key`'s owner.
    pub fn clone_as(&self, key: &Key, name: &str) -> PathBuf {
        let dest = self.path(name);
        let url = self.url(key);
        self.git_as(key, self.root(), &["clone", "-q", &url, path_str(&dest)])
            .success();
        dest
    }

    /// `mvault --key SIGNER -C DIR add MODEL_DIR --model nlp/bert --version
    /// VERSION EXTRA…`, reaching the server as `login`'s owner.
    pub fn add_as(
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
        self.connect_as(&mut cmd, login);
        self.run(cmd)
    }

    /// `mvault pull REF -o OUT` in `dir` as `key`'s owner.
    pub fn pull_as(&self, key: &Key, dir: &Path, reference: &str, out: &Path) -> Run {
        let mut cmd = self.mvault_command(dir, key, &["pull", reference, "-o", path_str(out)]);
        self.connect_as(&mut cmd, key);
        self.run(cmd)
    }

    /// What `rev` names on the server.
    pub fn server_rev(&self, rev: &str) -> Option<String> {
        let run = self.git(&self.server, &["rev-parse", "-q", "--verify", rev]);
        run.status.success().then(|| run.stdout().trim().to_owned())
    }

    /// The last line of the server's decision log, parsed.
    pub fn last_decision(&self) -> serde_json::Value {
        self.server_log(&["--action", "accept", "--action", "refuse", "--limit", "1"])
            .pop()
            .expect("the server log has a decision")
    }

    /// `mvault log --server --json ARGS…` on the server, parsed.
    pub fn server_log(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["log", "--server", "--json"];
        all.extend_from_slice(args);
        self.mvault(&self.server, &self.admin, &all)
            .success()
            .stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l}")))
            .collect()
    }

    /// `mvault log --server ARGS…` (text) on the server.
    pub fn server_log_text(&self, args: &[&str]) -> String {
        let mut all = vec!["log", "--server"];
        all.extend_from_slice(args);
        self.mvault(&self.server, &self.admin, &all)
            .success()
            .stdout()
    }

    /// `mvault hook check` as the server's admin would run it: under
    /// gitolite as the hosting user; for the web server, naming its
    /// `GIT_CONFIG_GLOBAL` file.
    pub fn hook_check(&self) -> Run {
        let mvault = env!("CARGO_BIN_EXE_mvault");
        let mut cmd = match &self.front {
            Front::Gitolite { gitolite, .. } => gitolite.server_command(&self.vault, mvault),
            Front::Http { .. } => self.command(mvault),
        };
        cmd.args(["hook", "check"]).arg(&self.server);
        if let Front::Http {
            git_config_global, ..
        } = &self.front
        {
            cmd.arg("--log-fetches").arg(git_config_global);
        }
        self.run(cmd)
    }

    /// Asserts that the server's own front door saw `key`'s owner: sshd a
    /// public-key login, nginx an authenticated request.
    #[track_caller]
    pub fn assert_front_saw(&self, key: &Key) {
        match &self.front {
            Front::Gitolite { gitolite, .. } => gitolite.sshd.assert_accepted_a_key(),
            Front::Http { http, .. } => {
                let log = http.access_log();
                assert!(
                    log.lines()
                        .any(|l| l.contains(&format!(" - {} [", key.name))),
                    "nginx logged no request authenticated as {}:\n{log}",
                    key.name
                );
            }
        }
    }
}

// ------------------------------------------------------------ scenarios

/// alice (ml_engineer) runs `mvault add` in her clone: the push lands
/// whole (main, tag, payload ref), the decision names her as the server
/// saw her, and the decision log's chain holds.
pub fn allowed_add_lands(s: &Served) {
    let clone = s.clone_as(&s.alice, "alice-clone");
    let model = s.path("model");
    sample_model(&model, 200_000, 61);
    s.add_as(&s.alice, &s.alice, &clone, &model, "1.0.0", &[])
        .success();
    for rev in [
        "refs/heads/main",
        "refs/tags/nlp/bert@v1.0.0",
        "refs/mvault/data/nlp/bert/1.0.0",
    ] {
        let ours = s.git_ok(&clone, &["rev-parse", rev]);
        assert_eq!(s.server_rev(rev).as_deref(), Some(&*ours), "{rev}");
    }
    let decision = s.last_decision();
    assert_eq!(decision["pusher"], "alice", "decision: {decision}");
    assert_eq!(decision["decision"], "accept", "decision: {decision}");
    s.assert_front_saw(&s.alice);
    let mut verify = s.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&s.server);
    s.run(verify).success().mentions(&["chain intact"]);
}

/// bob (viewer) pushes a version alice signed: the client sees mvault's
/// refusal line naming him, and no ref moves.
pub fn refused_push_shows_mvaults_line(s: &Served) {
    let before_main = s.server_rev("refs/heads/main").expect("server main");
    let clone = s.clone_as(&s.bob, "bob-clone");
    let model = s.path("model");
    sample_model(&model, 50_000, 62);
    s.add_as(&s.bob, &s.alice, &clone, &model, "2.0.0", &["--no-push"])
        .success();
    let pushed = s
        .git_as(
            &s.bob,
            &clone,
            &[
                "push",
                "--atomic",
                "origin",
                "refs/heads/main:refs/heads/main",
                "refs/tags/nlp/bert@v2.0.0:refs/tags/nlp/bert@v2.0.0",
                "refs/mvault/data/nlp/bert/2.0.0:refs/mvault/data/nlp/bert/2.0.0",
            ],
        )
        .failure();
    assert!(
        pushed
            .stderr()
            .contains("mvault: refused refs/heads/main: pusher role:"),
        "expected the hook's role refusal on the client:\n{}",
        pushed.stderr()
    );
    let pushed = pushed.mentions(&["bob"]);
    assert!(
        pushed.stderr().contains("remote: "),
        "the refusal should come from the server:\n{}",
        pushed.stderr()
    );
    assert_eq!(
        s.server_rev("refs/heads/main").as_deref(),
        Some(&*before_main)
    );
    assert_eq!(s.server_rev("refs/tags/nlp/bert@v2.0.0"), None);
    assert_eq!(s.server_rev("refs/mvault/data/nlp/bert/2.0.0"), None);
    let decision = s.last_decision();
    assert_eq!(decision["pusher"], "bob", "decision: {decision}");
    assert_eq!(decision["decision"], "refuse", "decision: {decision}");
    assert_eq!(decision["refusal"]["rule"], "pusher role", "{decision}");
    s.assert_front_saw(&s.bob);
}

/// Two versions on the server; bob's plain clone holds the record only,
/// `mvault pull` of 1.0.0 fetches that version's payload and not 1.1.0's,
/// and the access log names bob, his address, the model and the version;
/// `--actor`, `--model`, `--since` and `--action` filter it.
pub fn pull_of_one_version_is_in_the_access_log(s: &Served) {
    let alices = s.clone_as(&s.alice, "alice-clone");
    let v1 = s.path("model-1");
    let v2 = s.path("model-2");
    sample_model(&v1, 300_000, 63);
    sample_model(&v2, 300_000, 64);
    s.add_as(&s.alice, &s.alice, &alices, &v1, "1.0.0", &[])
        .success();
    s.add_as(&s.alice, &s.alice, &alices, &v2, "1.1.0", &[])
        .success();

    let bobs = s.clone_as(&s.bob, "bob-clone");
    assert_eq!(
        s.git_ok(&bobs, &["for-each-ref", "refs/mvault/data/"]),
        "",
        "a plain clone fetches the record only"
    );
    let out = s.path("out");
    s.pull_as(&s.bob, &bobs, "nlp/bert@1.0.0", &out).success();
    assert_same_tree(&v1, &out);
    let other = s
        .server_rev("refs/mvault/data/nlp/bert/1.1.0")
        .expect("1.1.0 payload");
    assert!(
        !s.git(&bobs, &["cat-file", "-e", &other]).status.success(),
        "pulling 1.0.0 fetched 1.1.0's payload tree too"
    );

    // bob's fetches: the clone (record only), then the payload of 1.0.0.
    let fetches = s.server_log(&["--action", "fetch", "--actor", "bob"]);
    assert!(fetches.len() >= 2, "{fetches:#?}");
    for f in &fetches {
        assert_eq!(f["user"], "bob", "{f}");
        assert_eq!(f["address"], "127.0.0.1", "{f}");
        assert_eq!(f["time"], NOW_RFC3339, "{f}");
    }
    let read: Vec<&serde_json::Value> = fetches
        .iter()
        .filter(|f| f["versions"].as_array().is_some_and(|v| !v.is_empty()))
        .collect();
    assert_eq!(read.len(), 1, "one payload fetch by bob: {fetches:#?}");
    assert_eq!(
        read[0]["versions"],
        serde_json::json!([{"model": "nlp/bert", "version": "1.0.0"}]),
        "{}",
        read[0]
    );
    assert!(
        read[0]["refs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "refs/mvault/data/nlp/bert/1.0.0")),
        "{}",
        read[0]
    );

    // The filters: a model glob keeps the payload fetch only (a clone reads
    // no version); another model, a later period or another user, none of it.
    let by_model = s.server_log(&["--action", "fetch", "--model", "nlp/*"]);
    assert_eq!(by_model.len(), 1, "{by_model:#?}");
    assert_eq!(by_model[0]["user"], "bob");
    assert_eq!(
        s.server_log(&[
            "--action",
            "fetch",
            "--model",
            "nlp/*",
            "--version",
            "1.0.0"
        ])
        .len(),
        1
    );
    assert!(s
        .server_log(&[
            "--model",
            "nlp/*",
            "--version",
            "1.1.0",
            "--action",
            "fetch"
        ])
        .is_empty());
    assert!(s.server_log(&["--model", "cv/*"]).is_empty());
    assert!(s.server_log(&["--since", "2026-11-23"]).is_empty());
    assert!(!s
        .server_log(&["--since", "2026-11-22", "--actor", "bob"])
        .is_empty());
    let alice_fetches = s.server_log(&["--action", "fetch", "--actor", "alice"]);
    assert!(
        alice_fetches.iter().all(|f| f["user"] == "alice"),
        "{alice_fetches:#?}"
    );
    assert!(
        !alice_fetches.is_empty(),
        "alice's clone is a fetch: {alice_fetches:#?}"
    );

    let text = s.server_log_text(&["--action", "fetch", "--model", "nlp/bert"]);
    let line = text.lines().next().unwrap_or_default();
    assert!(
        line.starts_with(NOW_RFC3339)
            && line.contains(" fetch ")
            && line.contains(" bob ")
            && line.contains("from 127.0.0.1")
            && line.contains("nlp/bert@1.0.0"),
        "{text}"
    );

    // The chain still holds with decisions and fetches interleaved.
    let mut verify = s.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&s.server);
    s.run(verify).success().mentions(&["chain intact"]);
}

/// `mvault ARGS…` as `key`'s owner in `dir`, reaching the server as them.
fn mvault_as(s: &Served, key: &Key, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = s.mvault_command(dir, key, args);
    s.connect_as(&mut cmd, key);
    s.run(cmd)
}

/// nlp/bert 1.0.0 is approved (bob, once an approver), promoted by the
/// admin through every stage to archived, then purged: the server deletes
/// exactly its payload ref, the record stays, and a reader's pull says who
/// purged it and why.
pub fn purge_deletes_one_payload_ref(s: &Served) {
    let alices = s.clone_as(&s.alice, "alice-clone");
    let v1 = s.path("model-1");
    let v2 = s.path("model-2");
    sample_model(&v1, 100_000, 65);
    sample_model(&v2, 100_000, 66);
    s.add_as(&s.alice, &s.alice, &alices, &v1, "1.0.0", &[])
        .success();
    s.add_as(&s.alice, &s.alice, &alices, &v2, "1.1.0", &[])
        .success();

    let admins = s.clone_as(&s.admin, "admin-clone");
    mvault_as(
        s,
        &s.admin,
        &admins,
        &[
            "policy", "grant", "bob", "--role", "approver", "--models", "nlp/*",
        ],
    )
    .success();
    let bobs = s.clone_as(&s.bob, "bob-approves");
    mvault_as(
        s,
        &s.bob,
        &bobs,
        &["approve", "nlp/bert@1.0.0", "--stage", "production"],
    )
    .success();
    for stage in ["staging", "production", "deprecated", "archived"] {
        mvault_as(
            s,
            &s.admin,
            &admins,
            &["promote", "nlp/bert@1.0.0", "--to", stage],
        )
        .success();
    }
    let kept = s
        .server_rev("refs/mvault/data/nlp/bert/1.1.0")
        .expect("1.1.0 payload");
    mvault_as(
        s,
        &s.admin,
        &admins,
        &["purge", "nlp/bert@1.0.0", "--reason", "retention: 400 days"],
    )
    .success()
    .mentions(&["purged nlp/bert@1.0.0"]);
    assert_eq!(s.server_rev("refs/mvault/data/nlp/bert/1.0.0"), None);
    assert_eq!(
        s.server_rev("refs/mvault/data/nlp/bert/1.1.0").as_deref(),
        Some(&*kept)
    );
    let decision = s.last_decision();
    assert_eq!(decision["pusher"], "admin", "decision: {decision}");
    assert_eq!(decision["decision"], "accept", "decision: {decision}");

    let reader = s.clone_as(&s.bob, "bob-after-purge");
    let out = s.path("out-purged");
    s.pull_as(&s.bob, &reader, "nlp/bert@1.0.0", &out)
        .failure()
        .mentions(&["purged on", "by admin", "retention: 400 days"]);
    let out = s.path("out-kept");
    s.pull_as(&s.bob, &reader, "nlp/bert@1.1.0", &out).success();
    assert_same_tree(&v2, &out);
}
