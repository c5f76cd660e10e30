//! A server for push tests: a bare repository with the hook installed by
//! `mvault hook install`, and the admin's clone that tracks it.
//!
//! Pushes go through stock `git push` over the path transport, which hands
//! the pusher's environment to the hook the way sshd's forced command does:
//! `MVAULT_USER` names the pusher. Hostile commits and tags are built with
//! stock git (plumbing for trees, `git commit -S`/`git tag -s` with
//! `gpg.format=ssh` for signatures), never with mvault's own code.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Numbers the hook-less copies the differential check makes.
static FORCED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The user names and roles every server starts with.
///
/// - admin: ml_admin on `**`, the pinned root key;
/// - alice: developer on `nlp/*`;
/// - bob: viewer on `nlp/*`;
/// - mallory: a key no policy names.
pub struct Server {
    pub env: TestEnv,
    pub admin: Key,
    pub alice: Key,
    pub bob: Key,
    pub mallory: Key,
    /// The admin's clone (the `mvault init` repository), tracking `origin`.
    pub work: PathBuf,
    /// The server's bare repository, hook installed.
    pub bare: PathBuf,
}

impl std::ops::Deref for Server {
    type Target = TestEnv;
    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

/// Where a key's public half lives, as an argument.
pub fn pub_arg(key: &Key) -> String {
    key.public.to_str().expect("utf-8 path").to_owned()
}

impl Server {
    /// admin, alice and bob in the policy; `server.git` cloned from the
    /// admin's vault and guarded by the hook; no model registered yet.
    pub fn new() -> Self {
        let env = TestEnv::new();
        let admin = env.keygen("admin");
        let alice = env.keygen("alice");
        let bob = env.keygen("bob");
        let mallory = env.keygen("mallory");
        let work = env.path("work");
        let bare = env.path("server.git");
        let server = Server {
            env,
            admin,
            alice,
            bob,
            mallory,
            work,
            bare,
        };
        let s = &server;
        let root = s.root().to_owned();
        let work_arg = s.work.to_str().expect("utf-8 path").to_owned();
        s.mvault_as(
            &root,
            &s.admin,
            None,
            &["init", &work_arg, "--admin-key", &pub_arg(&s.admin)],
        )
        .success();
        for (user, key, role) in [("alice", &s.alice, "developer"), ("bob", &s.bob, "viewer")] {
            s.mvault_as(
                &s.work,
                &s.admin,
                None,
                &["policy", "add-user", user, "--key-file", &pub_arg(key)],
            )
            .success();
            s.mvault_as(
                &s.work,
                &s.admin,
                None,
                &["policy", "grant", user, "--role", role, "--models", "nlp/*"],
            )
            .success();
        }
        let mut clone = s.command("git");
        clone
            .args(["clone", "-q", "--bare"])
            .arg(&s.work)
            .arg(&s.bare);
        s.run(clone).success();
        let bare_arg = s.bare.to_str().expect("utf-8 path").to_owned();
        s.mvault_as(
            &root,
            &s.admin,
            None,
            &[
                "hook",
                "install",
                &bare_arg,
                "--root-key",
                &pub_arg(&s.admin),
            ],
        )
        .success();
        s.git_ok(&s.work, &["remote", "add", "origin", &bare_arg]);
        s.git_ok(&s.work, &["fetch", "-q", "origin"]);
        s.git_ok(&s.work, &["branch", "-q", "--set-upstream-to=origin/main"]);
        server
    }

    /// A server where alice has registered (and pushed) `nlp/bert@1.0.0`.
    pub fn with_version() -> Self {
        let s = Server::new();
        let model = s.model(1);
        s.add(&s.work, &s.alice, Some("alice"), &model, "1.0.0", &[])
            .success()
            .mentions(&["pushed to origin"]);
        s
    }

    /// `mvault --key KEY -C DIR ARGS…`, the push (if any) made as `pusher`.
    pub fn mvault_as(&self, dir: &Path, key: &Key, pusher: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = self.mvault_command(dir, key, args);
        // Works around a bug in src/: with no git committer identity (no
        // user.name, as in this hermetic environment) every write command,
        // `mvault init` first, fails with `git: Could not update reflog,
        // reference="refs/heads/main"`. The identity plays no part in what
        // the hook judges: mvault's commits carry their own author and
        // committer. Remove these two lines once that is fixed.
        cmd.env("GIT_COMMITTER_NAME", &key.name)
            .env("GIT_COMMITTER_EMAIL", format!("{}@mvault", key.name));
        if let Some(p) = pusher {
            cmd.env("MVAULT_USER", p);
        }
        self.run(cmd)
    }

    /// A sample model directory, made once per seed.
    pub fn model(&self, seed: u64) -> PathBuf {
        let dir = self.path(&format!("model-{seed}"));
        if !dir.exists() {
            sample_model(&dir, 40_000, seed);
        }
        dir
    }

    /// `mvault add MODEL_DIR --model nlp/bert --version VERSION EXTRA…`.
    pub fn add(
        &self,
        dir: &Path,
        key: &Key,
        pusher: Option<&str>,
        model_dir: &Path,
        version: &str,
        extra: &[&str],
    ) -> Run {
        let model_arg = model_dir.to_str().expect("utf-8 path");
        let mut args = vec![
            "add",
            model_arg,
            "--model",
            "nlp/bert",
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        self.mvault_as(dir, key, pusher, &args)
    }

    /// A stock (non-sparse) clone of the server.
    pub fn stock_clone(&self, name: &str) -> PathBuf {
        self.git_clone(&self.bare, name)
    }

    /// A stock clone where `key` has built `nlp/bert@VERSION` with
    /// `mvault add --no-push`: HEAD is a valid registration, not pushed.
    pub fn prepared(&self, name: &str, key: &Key, version: &str) -> PathBuf {
        let clone = self.stock_clone(name);
        let model = self.model(2);
        self.add(&clone, key, None, &model, version, &["--no-push"])
            .success();
        clone
    }

    /// Stock `git push ARGS…` from `dir`, as `pusher` (None: no identity).
    ///
    /// Differential check on acceptance: when the hook accepts, the
    /// pre-push check (run first, on the same refs) accepted too, and
    /// `audit verify` on the server says the record is intact.
    pub fn push(&self, dir: &Path, pusher: Option<&str>, args: &[&str]) -> Run {
        let owned = self.with_payloads(dir, args);
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let args = &args[..];
        let pre = self.pre_push(dir, pusher, args);
        let mut full = vec!["push"];
        if args.iter().any(|a| a.starts_with("refs/mvault/data/")) && !args.contains(&"--atomic") {
            full.push("--atomic");
        }
        full.extend_from_slice(args);
        let mut cmd = self.git_command(dir, &full);
        if let Some(p) = pusher {
            cmd.env("MVAULT_USER", p);
        }
        let run = self.run(cmd);
        if run.status.success() {
            assert!(
                pre.status.success(),
                "the hook accepted {args:?} but the pre-push check refused it:\n{}",
                pre.output()
            );
            self.mvault(&self.bare, &self.admin, &["audit", "verify"])
                .success()
                .mentions(&["record intact"]);
        }
        run
    }

    /// The client's pre-push check (`mvault hook pre-push`) on what `git
    /// push ARGS` would send from `dir`, against the server's refs.
    pub fn pre_push(&self, dir: &Path, pusher: Option<&str>, args: &[&str]) -> Run {
        let refs: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-') && *a != "origin")
            .collect();
        let mut lines = String::new();
        for spec in &refs {
            // `SRC:DST` pushes SRC as DST.
            let (src, dst) = spec.split_once(':').unwrap_or((spec, spec));
            let full = if dst.starts_with("refs/") {
                dst.to_owned()
            } else if self
                .git(
                    dir,
                    &["rev-parse", "--verify", "-q", &format!("refs/tags/{dst}")],
                )
                .status
                .success()
            {
                format!("refs/tags/{dst}")
            } else {
                format!("refs/heads/{dst}")
            };
            // A deletion (`:DST`) or a name git cannot resolve sends zeros.
            let local = self
                .git(dir, &["rev-parse", "--verify", "-q", src])
                .stdout()
                .trim()
                .to_owned();
            let local = if src.is_empty() || local.is_empty() {
                "0".repeat(40)
            } else {
                local
            };
            let remote = self
                .git(&self.bare, &["rev-parse", "--verify", "-q", &full])
                .stdout()
                .trim()
                .to_owned();
            let remote = if remote.is_empty() {
                "0".repeat(40)
            } else {
                remote
            };
            lines.push_str(&format!("{full} {local} {full} {remote}\n"));
        }
        let mut cmd = self.mvault_command(dir, &self.admin, &["hook", "pre-push", "origin"]);
        if let Some(p) = pusher {
            cmd.env("MVAULT_USER", p);
        }
        self.run_with_input(cmd, lines.as_bytes())
    }

    /// Every ref of the server and what it points at.
    pub fn server_refs(&self) -> String {
        self.git_ok(
            &self.bare,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
    }

    /// The server's `REF`, resolved.
    pub fn server_rev(&self, rev: &str) -> String {
        self.git_ok(&self.bare, &["rev-parse", rev])
    }

    /// Pushes and asserts the push was refused by the hook with
    /// `mvault: refused REFNAME: RULE: …` and a hint, that no ref of the
    /// server moved, and that the refusal was logged.
    #[track_caller]
    pub fn refused(
        &self,
        dir: &Path,
        pusher: Option<&str>,
        args: &[&str],
        refname: &str,
        rule: &str,
    ) -> Run {
        let before = self.server_refs();
        let log_before = self.decisions().len();
        let run = self.push(dir, pusher, args).failure();
        assert_refusal(&run, refname, rule);
        assert_eq!(
            self.server_refs(),
            before,
            "a ref moved on the server although the push was refused:\n{}",
            run.stderr()
        );
        let log = self.decisions();
        assert_eq!(log.len(), log_before + 1, "the decision was not logged");
        assert!(
            log.last()
                .is_some_and(|l| l.contains("\"decision\":\"refuse\"")),
            "the log does not record a refusal: {log:?}"
        );
        self.same_rule_everywhere(dir, pusher, args, rule);
        run
    }

    /// The differential check behind every refusal: the pre-push check
    /// names the same rule before anything is sent, and the same objects
    /// forced into a copy of the server without the hook make
    /// `mvault audit verify` name it too. Rules about facts only a push has
    /// (who pushes, how refs move) are named by the hook alone.
    #[track_caller]
    pub fn same_rule_everywhere(
        &self,
        dir: &Path,
        pusher: Option<&str>,
        args: &[&str],
        rule: &str,
    ) {
        let owned = self.with_payloads(dir, args);
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let args = &args[..];
        let known = mvault::rules::Rule::ALL
            .iter()
            .find(|r| r.name() == rule)
            .unwrap_or_else(|| panic!("{rule:?} is not a rule of mvault::rules::Rule"));
        if known.push_only() {
            return;
        }
        // 1. pre-push, from the pushing clone, against the server's refs.
        let pre = self.pre_push(dir, pusher, args);
        assert!(
            !pre.status.success() && pre.stderr().contains(&format!(": {rule}: ")),
            "the pre-push check does not name {rule:?} for {args:?}:\n{}",
            pre.output()
        );
        // 2. the same push into a hook-less copy, then audit verify there.
        let n = FORCED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let copy = self.path(&format!("forced-{n}.git"));
        let mut cp = self.command("cp");
        cp.arg("-a").arg(&self.bare).arg(&copy);
        self.run(cp).success();
        std::fs::remove_file(copy.join("hooks/pre-receive")).expect("remove the copy's hook");
        self.git_ok(&copy, &["config", "receive.fsckObjects", "false"]);
        let copy_url = copy.to_str().expect("utf-8 path").to_owned();
        let forced: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "origin" {
                    copy_url.as_str()
                } else {
                    *a
                }
            })
            .collect();
        let mut push = vec!["push"];
        push.extend_from_slice(&forced);
        if !self.git(dir, &push).status.success() {
            // git itself may refuse a payload ref (a name that collides
            // with another ref): the record alone still replays.
            let mut bare: Vec<&str> = vec!["push"];
            bare.extend(
                forced
                    .iter()
                    .filter(|a| !a.starts_with("refs/mvault/data/")),
            );
            self.git(dir, &bare).success();
        }
        let audit = self
            .mvault(&copy, &self.admin, &["audit", "verify", "--json"])
            .failure();
        let report: serde_json::Value =
            serde_json::from_slice(&audit.stdout).expect("audit verify --json prints JSON");
        assert_eq!(
            report["first_break"]["rule"], rule,
            "audit verify names another rule than the hook for {args:?}: {report}"
        );
    }

    /// `refused` for a stock `git push origin main` refused on
    /// `refs/heads/main`.
    #[track_caller]
    pub fn refused_main(&self, dir: &Path, pusher: Option<&str>, rule: &str) -> Run {
        self.refused(dir, pusher, &["origin", "main"], "refs/heads/main", rule)
    }

    /// `args` of a push of `main`, plus the payload refs of `dir` the
    /// server lacks: a version is pushed with its payload, as `mvault add`
    /// does (atomically).
    pub fn with_payloads(&self, dir: &Path, args: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if args.contains(&"main") && !args.iter().any(|a| a.contains("refs/mvault/data/")) {
            out.extend(self.new_payload_refs(dir));
        }
        out
    }

    /// The payload refs of `dir` that the server does not have.
    pub fn new_payload_refs(&self, dir: &Path) -> Vec<String> {
        let server = self.server_refs();
        self.git_ok(
            dir,
            &["for-each-ref", "--format=%(refname)", "refs/mvault/data/"],
        )
        .lines()
        .filter(|r| !r.is_empty() && !server.contains(&format!("{r} ")))
        .map(str::to_owned)
        .collect()
    }

    /// The lines of the server's decision log.
    pub fn decisions(&self) -> Vec<String> {
        std::fs::read_to_string(self.bare.join("mvault-decisions.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Commits the index of `clone` (`git commit -S` with `signer`, or a
    /// plain `git commit`), the message from `message_args` (`-m TEXT` or
    /// `-C COMMIT`); returns the new HEAD.
    #[track_caller]
    pub fn commit_index(
        &self,
        clone: &Path,
        signer: Option<&Key>,
        message_args: &[&str],
    ) -> String {
        let mut args = vec!["commit", "-q", "--no-verify"];
        match signer {
            Some(key) => {
                args.push("-S");
                args.extend_from_slice(message_args);
                // A re-signed commit names its new signer as author too.
                if message_args.contains(&"-C") {
                    args.push("--reset-author");
                }
                self.git_signing(clone, key, &args).success();
            }
            None => {
                args.extend_from_slice(message_args);
                self.git(clone, &args).success();
            }
        }
        self.git_ok(clone, &["rev-parse", "HEAD"])
    }

    /// Replaces the HEAD commit of `clone` by one with the same parent and
    /// message whose tree is HEAD's edited by `edit` (index plumbing),
    /// signed by `signer` (None: unsigned). Returns the new HEAD.
    #[track_caller]
    pub fn rewrite_head(
        &self,
        clone: &Path,
        signer: Option<&Key>,
        edit: impl FnOnce(&Path),
    ) -> String {
        let orig = self.git_ok(clone, &["rev-parse", "HEAD"]);
        self.git_ok(clone, &["read-tree", "HEAD"]);
        self.git_ok(clone, &["reset", "-q", "--soft", "HEAD~1"]);
        edit(clone);
        self.commit_index(clone, signer, &["-C", &orig])
    }

    /// A stock clone `name` where `signer` has committed (`git commit -S`,
    /// not pushed) the policy edited by `edit`, with the message of policy
    /// change `change`; asserts that the edit changed the policy.
    #[track_caller]
    pub fn policy_commit(
        &self,
        name: &str,
        signer: &Key,
        change: &str,
        edit: impl FnOnce(String) -> String,
    ) -> PathBuf {
        const POLICY: &str = ".mvault/policy.toml";
        let clone = self.stock_clone(name);
        let text = String::from_utf8(self.staged(&clone, POLICY)).expect("utf-8 policy");
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the policy edit changed nothing");
        self.stage(&clone, POLICY, edited.as_bytes(), "100644");
        self.commit_index(&clone, Some(signer), &["-m", &policy_message(change)]);
        clone
    }

    /// Writes `bytes` as a git blob and stages it at `path` with `mode`.
    #[track_caller]
    pub fn stage(&self, clone: &Path, path: &str, bytes: &[u8], mode: &str) {
        let cmd = self.git_command(clone, &["hash-object", "-w", "--stdin"]);
        let id = self
            .run_with_input(cmd, bytes)
            .success()
            .stdout()
            .trim()
            .to_owned();
        self.git_ok(
            clone,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("{mode},{id},{path}"),
            ],
        );
    }

    /// Removes `path` from the index of `clone`.
    #[track_caller]
    pub fn unstage(&self, clone: &Path, path: &str) {
        self.git_ok(clone, &["update-index", "--force-remove", path]);
    }

    /// The bytes of `path` in the index of `clone`.
    #[track_caller]
    pub fn staged(&self, clone: &Path, path: &str) -> Vec<u8> {
        self.git_show_bytes(clone, &format!(":{path}"))
    }

    /// The manifest of `nlp/bert@VERSION` at `rev` in `clone`.
    pub fn manifest_at(&self, clone: &Path, rev: &str, version: &str) -> Manifest {
        let bytes = self.git_show_bytes(
            clone,
            &format!("{rev}:models/nlp/bert/{version}/manifest.toml"),
        );
        Manifest::parse(&String::from_utf8(bytes).expect("manifest is UTF-8"))
    }
}

/// Asserts that the pusher saw the hook's refusal line for `refname` and
/// `rule`, followed by a hint.
#[track_caller]
pub fn assert_refusal(run: &Run, refname: &str, rule: &str) {
    let stderr = run.stderr();
    let want = format!("mvault: refused {refname}: {rule}:");
    assert!(
        stderr.contains(&want),
        "expected the pusher to see {want:?}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("hint: "),
        "expected a hint after the refusal; stderr:\n{stderr}"
    );
}

/// The commit message of a hand-made registration of `nlp/bert@VERSION`.
pub fn register_message(version: &str, manifest_sha256: &str) -> String {
    format!(
        "register nlp/bert@{version}\n\nMvault-Action: register\nMvault-Model: nlp/bert\nMvault-Version: {version}\nMvault-Manifest-Sha256: {manifest_sha256}\n"
    )
}

/// The commit message of a hand-made policy change.
pub fn policy_message(change: &str) -> String {
    format!("policy: {change}\n\nMvault-Action: policy\nMvault-Policy-Change: {change}\n")
}
