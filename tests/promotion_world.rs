//! The world of the promotion tests (issue "Promotion"): a server guarded by
//! the hook, a policy with an author, a promoter and two approvers, the
//! stock clone each of them works in, and a clock that moves a minute per
//! mvault command, as a real release does.
//!
//! Attacks are hand-made with stock git only: `git tag -s` with
//! `gpg.format=ssh` for the signature, the message written in the format
//! mvault writes (`src/release.rs`), `git update-ref` for the seq ref and
//! `git push --atomic` to publish both — never mvault's own code.
//!
//! People (on `nlp/*`; admin is ml_admin on `**`):
//! - alice: developer and approver — registers the versions (the author);
//! - bob: viewer and approver;
//! - carol: ml_engineer and approver — promotes;
//! - dave: approver;
//! - mallory: a key no policy names.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::hook_server::*;

pub const MODEL: &str = "nlp/bert";

/// The server, its people and their clones.
pub struct Release {
    pub s: Server,
    pub carol: Key,
    pub dave: Key,
    /// Minutes since `NOW`: every mvault command runs one minute later
    /// than the one before, so tags have distinct, ordered times.
    clock: Cell<u64>,
}

impl std::ops::Deref for Release {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.s
    }
}

/// A promotion tag as mvault writes it, field by field, for hand-making.
#[derive(Clone, Debug)]
pub struct Promo {
    /// `promote` or `rollback`.
    pub action: &'static str,
    pub version: String,
    pub digest: String,
    pub from: String,
    pub to: String,
    pub counter: u64,
    /// The previous promotion tag's object id, or `none`.
    pub previous: String,
    /// `(approval tag name, approval tag object id)`.
    pub approvals: Vec<(String, String)>,
    pub reason: Option<String>,
}

impl Promo {
    /// `nlp/bert#<to>#<n>`.
    pub fn name(&self) -> String {
        format!("{MODEL}#{}#{}", self.to, self.counter)
    }

    /// `refs/tags/nlp/bert#<to>#<n>`.
    pub fn tag_ref(&self) -> String {
        format!("refs/tags/{}", self.name())
    }

    /// `refs/mvault/seq/nlp/bert/<n>`.
    pub fn seq_ref(&self) -> String {
        seq_ref(self.counter)
    }

    /// The tag message, byte for byte as `write_promotion` in
    /// `src/release.rs` writes it.
    pub fn message(&self) -> String {
        let verb = if self.action == "rollback" {
            format!("roll back {MODEL} production to {}", self.version)
        } else {
            format!("promote {MODEL}@{} to {}", self.version, self.to)
        };
        let mut msg = format!(
            "{verb}\n\nMvault-Action: {}\nMvault-Model: {MODEL}\nMvault-Version: {}\nMvault-Manifest-Sha256: {}\nMvault-From-Stage: {}\nMvault-To-Stage: {}\nMvault-Previous-Promotion: {}\n",
            self.action, self.version, self.digest, self.from, self.to, self.previous
        );
        for (name, id) in &self.approvals {
            msg.push_str(&format!("Mvault-Approval: {name} {id}\n"));
        }
        if let Some(r) = &self.reason {
            msg.push_str(&format!("Mvault-Reason: {r}\n"));
        }
        msg
    }
}

/// `refs/mvault/seq/nlp/bert/<n>`.
pub fn seq_ref(n: u64) -> String {
    format!("refs/mvault/seq/{MODEL}/{n}")
}

/// `mvault-approval/<stage>/<user>/nlp/bert/<version>`.
pub fn approval_name(stage: &str, user: &str, version: &str) -> String {
    format!("mvault-approval/{stage}/{user}/{MODEL}/{version}")
}

/// An approval tag message, byte for byte as `approve` in `src/release.rs`
/// writes it.
pub fn approval_message(stage: &str, user: &str, version: &str, digest: &str) -> String {
    format!(
        "approve {MODEL}@{version} for {stage}\n\nMvault-Action: approve\nMvault-Model: {MODEL}\nMvault-Version: {version}\nMvault-Stage: {stage}\nMvault-Approver: {user}\nMvault-Manifest-Sha256: {digest}\n"
    )
}

impl Release {
    /// The server with its people and their roles; no model yet.
    pub fn new() -> Self {
        let s = Server::new();
        let carol = s.keygen("carol");
        let dave = s.keygen("dave");
        let admin = |args: &[&str]| {
            s.mvault_as(&s.work, &s.admin, Some("admin"), args)
                .success();
        };
        for key in [&carol, &dave] {
            admin(&["policy", "add-user", &key.name, "--key-file", &pub_arg(key)]);
        }
        for (user, role) in [
            ("carol", "ml_engineer"),
            ("carol", "approver"),
            ("alice", "approver"),
            ("bob", "approver"),
            ("dave", "approver"),
        ] {
            admin(&["policy", "grant", user, "--role", role, "--models", "nlp/*"]);
        }
        for name in ["alice", "bob", "carol", "dave", "mallory"] {
            s.stock_clone(name);
        }
        Release {
            s,
            carol,
            dave,
            clock: Cell::new(0),
        }
    }

    /// alice has registered `nlp/bert@1.0.0` and carol promoted it to staging.
    pub fn in_staging() -> Self {
        let r = Release::new();
        r.register("1.0.0", 1);
        r.promote(&r.carol, "1.0.0", "staging").success();
        r
    }

    /// `in_staging`, then bob approved 1.0.0 for production and carol
    /// promoted it.
    pub fn in_production() -> Self {
        let r = Release::in_staging();
        r.approve(&r.bob, "1.0.0", "production").success();
        r.promote(&r.carol, "1.0.0", "production").success();
        r
    }

    /// The admin lets ml_engineers roll back: production's rule for `**`
    /// names `rollback_role = "ml_engineer"` (by default only an ml_admin
    /// may, issue 10), set with `mvault policy rule` and pushed.
    pub fn let_engineers_roll_back(&self) {
        let work = self.s.work.clone();
        self.run(self.mv_command_in(&work, &self.s.admin, &["sync"]))
            .success();
        self.run(self.mv_command_in(
            &work,
            &self.s.admin,
            &[
                "policy",
                "rule",
                "stage",
                "set",
                "--stage",
                "production",
                "--models",
                "**",
                "--rollback-role",
                "ml_engineer",
            ],
        ))
        .success()
        .mentions(&["rollback_role=ml_engineer", "pushed"]);
    }

    /// The clone `key`'s owner works in.
    pub fn dir(&self, key: &Key) -> PathBuf {
        self.path(&key.name)
    }

    /// `mvault --key KEY -C <their clone> ARGS…`, one minute after the last
    /// command, pushing (if it pushes) as `key`'s owner.
    pub fn mv_command(&self, key: &Key, args: &[&str]) -> Command {
        self.mv_command_in(&self.dir(key), key, args)
    }

    /// `mv_command` in another clone `dir`.
    pub fn mv_command_in(&self, dir: &Path, key: &Key, args: &[&str]) -> Command {
        let tick = self.clock.get() + 1;
        self.clock.set(tick);
        let mut cmd = self.mvault_command(dir, key, args);
        cmd.env("MVAULT_NOW", (NOW + 60 * tick).to_string())
            .env("MVAULT_USER", &key.name)
            // As `Server::mvault_as`: a committer identity for git's reflog.
            .env("GIT_COMMITTER_NAME", &key.name)
            .env("GIT_COMMITTER_EMAIL", format!("{}@mvault", key.name));
        cmd
    }

    /// Runs `mv_command`.
    pub fn mv(&self, key: &Key, args: &[&str]) -> Run {
        self.run(self.mv_command(key, args))
    }

    /// alice registers `nlp/bert@VERSION` from sample model `seed`; returns
    /// the model directory.
    pub fn register(&self, version: &str, seed: u64) -> PathBuf {
        let model = self.model(seed);
        let dir = model.to_str().expect("utf-8 path").to_owned();
        self.mv(
            &self.alice,
            &["add", &dir, "--model", MODEL, "--version", version],
        )
        .success()
        .mentions(&["pushed to origin"]);
        model
    }

    /// `mvault promote nlp/bert@VERSION --to STAGE` as `key`.
    pub fn promote(&self, key: &Key, version: &str, to: &str) -> Run {
        self.mv(key, &["promote", &format!("{MODEL}@{version}"), "--to", to])
    }

    /// `mvault approve nlp/bert@VERSION --stage STAGE` as `key`.
    pub fn approve(&self, key: &Key, version: &str, stage: &str) -> Run {
        self.mv(
            key,
            &["approve", &format!("{MODEL}@{version}"), "--stage", stage],
        )
    }

    /// `mvault status nlp/bert --json` in `key`'s clone, parsed.
    /// The clone is first brought up to date with stock git (`status`
    /// reads the local main, offline).
    pub fn status(&self, key: &Key) -> serde_json::Value {
        let dir = self.dir(key);
        self.sync(&dir);
        self.git_ok(
            &dir,
            &["merge", "-q", "--ff-only", "refs/remotes/origin/main"],
        );
        let run = self.mv(key, &["status", MODEL, "--json"]).success();
        serde_json::from_str(run.stdout().trim()).expect("status --json is one JSON object")
    }

    // ------------------------------------------------ hand-made tags

    /// Brings `dir` up to date with the server with stock git: main (as
    /// `origin/main`) and every tag, the server's copy winning.
    pub fn sync(&self, dir: &Path) {
        self.git_ok(
            dir,
            &[
                "fetch",
                "-q",
                "origin",
                "+refs/heads/main:refs/remotes/origin/main",
                "+refs/tags/*:refs/tags/*",
            ],
        );
    }

    /// The commit that registered `VERSION` (its registration tag's target).
    pub fn commit_of(&self, dir: &Path, version: &str) -> String {
        self.git_ok(
            dir,
            &[
                "rev-parse",
                &format!("refs/tags/{MODEL}@v{version}^{{commit}}"),
            ],
        )
    }

    /// The SHA-256 of `VERSION`'s manifest, as registered.
    pub fn digest_of(&self, dir: &Path, version: &str) -> String {
        let commit = self.commit_of(dir, version);
        sha256_hex(&self.git_show_bytes(
            dir,
            &format!("{commit}:models/{MODEL}/{version}/manifest.toml"),
        ))
    }

    /// The object id of tag `name` in `dir`.
    pub fn tag_id(&self, dir: &Path, name: &str) -> String {
        self.git_ok(dir, &["rev-parse", &format!("refs/tags/{name}")])
    }

    /// The promotion tags of nlp/bert in `dir`: `(counter, name)`, by counter.
    pub fn promotions(&self, dir: &Path) -> Vec<(u64, String)> {
        let out = self.git_ok(
            dir,
            &[
                "for-each-ref",
                "--format=%(refname:strip=2)",
                &format!("refs/tags/{MODEL}#*"),
            ],
        );
        let mut v: Vec<(u64, String)> = out
            .lines()
            .filter_map(|name| {
                let n = name.rsplit_once('#')?.1.parse().ok()?;
                Some((n, name.to_owned()))
            })
            .collect();
        v.sort();
        v
    }

    /// The promotion of `VERSION` from `FROM` to `TO` exactly as mvault
    /// would write it next, seen from `dir` after a sync: the next counter,
    /// the last promotion's id, the version's manifest digest, no approvals.
    pub fn next_promo(&self, dir: &Path, version: &str, from: &str, to: &str) -> Promo {
        self.sync(dir);
        let promotions = self.promotions(dir);
        let (counter, previous) = match promotions.last() {
            Some((n, name)) => (n + 1, self.tag_id(dir, name)),
            None => (1, "none".to_owned()),
        };
        Promo {
            action: "promote",
            version: version.to_owned(),
            digest: self.digest_of(dir, version),
            from: from.to_owned(),
            to: to.to_owned(),
            counter,
            previous,
            approvals: Vec::new(),
            reason: None,
        }
    }

    /// Makes promotion tag `p` signed by `key` on the version's registering
    /// commit, and its seq ref, in `dir`; returns the tag's object id.
    pub fn craft_promotion(&self, dir: &Path, key: &Key, p: &Promo) -> String {
        let target = self.commit_of(dir, &p.version);
        let id = self.sign_tag(dir, key, &p.name(), &target, &p.message());
        self.git_ok(dir, &["update-ref", &p.seq_ref(), &id]);
        id
    }

    /// Makes approval tag `mvault-approval/STAGE/USER/nlp/bert/VERSION`
    /// binding `digest`, signed by `key`, in `dir`; returns its object id.
    pub fn craft_approval(
        &self,
        dir: &Path,
        key: &Key,
        stage: &str,
        user: &str,
        version: &str,
        digest: &str,
    ) -> String {
        let target = self.commit_of(dir, version);
        self.sign_tag(
            dir,
            key,
            &approval_name(stage, user, version),
            &target,
            &approval_message(stage, user, version, digest),
        )
    }

    /// Deletes hand-made promotion `p` from `dir` after the server refused
    /// it, so that mvault in that clone does not take it for a real one.
    pub fn discard(&self, dir: &Path, p: &Promo) {
        self.git_ok(dir, &["update-ref", "-d", &p.tag_ref()]);
        self.git_ok(dir, &["update-ref", "-d", &p.seq_ref()]);
    }

    /// `git push --atomic origin <tag> <seq>` of promotion `p` as `pusher`,
    /// asserting the hook refuses the tag with `rule` and nothing moves.
    #[track_caller]
    pub fn refused_promotion(&self, dir: &Path, pusher: &str, p: &Promo, rule: &str) -> Run {
        self.refused(
            dir,
            Some(pusher),
            &["--atomic", "origin", &p.tag_ref(), &p.seq_ref()],
            &p.tag_ref(),
            rule,
        )
    }

    /// The server's promotion tags and seq refs of nlp/bert.
    pub fn server_promotion_refs(&self) -> Vec<String> {
        self.server_refs()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
            .filter(|r| {
                r.starts_with(&format!("refs/tags/{MODEL}#")) || r.starts_with("refs/mvault/seq/")
            })
            .collect()
    }
}

impl Default for Release {
    fn default() -> Self {
        Self::new()
    }
}
