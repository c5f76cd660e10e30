//! Attack: a malicious server hands a reader forged content.
//!
//! The server is not trusted with integrity (docs: "Trust runs from the root
//! keys"). Here it is taken over: a copy of the real server without the
//! hook, into which mallory force-pushes tags on a history she wrote with
//! her own `mvault init` (her own root policy, in which her key is called
//! alice) — a replaced `nlp/bert@v1.0.0`, a new `nlp/bert@v2.0.0`, and a
//! `nlp/bert#production#3` that serves her 2.0.0. `main` itself is the real
//! one. A reader, in a fresh clone or in a clone made before the attack,
//! must refuse every one of them with an integrity error that names the tag,
//! and write nothing.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::promotion_world::*;

/// Exit code of an integrity failure (src/cli: ErrorKind::Integrity).
const INTEGRITY: i32 = 4;

struct Attack {
    r: Release,
    /// The taken-over server: a mirror of the real one, no hook.
    evil: PathBuf,
    /// Mallory's own vault.
    forged: PathBuf,
    /// The tag ids of the real server, before the attack.
    real_v1: String,
}

impl std::ops::Deref for Attack {
    type Target = Release;
    fn deref(&self) -> &Release {
        &self.r
    }
}

impl Attack {
    /// nlp/bert@1.0.0 in production on the real server; bob's clone is
    /// up to date with it; mallory's vault holds her own 1.0.0 and 2.0.0.
    fn new() -> Self {
        let r = Release::in_production();
        let bob = r.dir(&r.bob);
        r.sync(&bob);
        r.git_ok(
            &bob,
            &["merge", "-q", "--ff-only", "refs/remotes/origin/main"],
        );
        let real_v1 = r.tag_id(&bob, "nlp/bert@v1.0.0");

        let evil = r.path("evil.git");
        let mut mirror = r.command("git");
        mirror
            .args(["clone", "-q", "--mirror"])
            .arg(&r.bare)
            .arg(&evil);
        r.run(mirror).success();

        let forged = r.path("forged");
        let mut init = r.mvault_command(
            r.root(),
            &r.mallory,
            &[
                "init",
                path_str(&forged),
                "--admin-name",
                "alice",
                "--admin-key",
            ],
        );
        init.arg(&r.mallory.public)
            .env("GIT_COMMITTER_NAME", "alice")
            .env("GIT_COMMITTER_EMAIL", "alice@mvault");
        r.run(init).success();
        let mallory = |args: &[&str]| r.mvault_as(&forged, &r.mallory, None, args).success();
        mallory(&[
            "policy",
            "grant",
            "alice",
            "--role",
            "ml_engineer",
            "--models",
            "nlp/*",
        ]);
        let evil_model = r.path("evil-model");
        sample_model(&evil_model, 30_000, 666);
        for v in ["1.0.0", "2.0.0"] {
            r.add(&forged, &r.mallory, None, &evil_model, v, &["--no-push"])
                .success();
        }
        Attack {
            r,
            evil,
            forged,
            real_v1,
        }
    }

    /// Force mallory's tags onto the taken-over server.
    fn force_tags(&self, tags: &[&str]) {
        let mut args = vec!["push", "-q", "--force", path_str(&self.evil)];
        let refs: Vec<String> = tags.iter().map(|t| format!("refs/tags/{t}")).collect();
        args.extend(refs.iter().map(String::as_str));
        self.git_ok(&self.forged, &args);
    }

    /// A promotion `nlp/bert#production#3` of her 2.0.0, linked to the real
    /// chain, signed by mallory, in her vault.
    fn forge_promotion(&self) -> String {
        let bob = self.dir(&self.bob);
        let previous = self.tag_id(&bob, "nlp/bert#production#2");
        let target = self.git_ok(
            &self.forged,
            &["rev-parse", "refs/tags/nlp/bert@v2.0.0^{commit}"],
        );
        let digest = sha256_hex(&self.git_show_bytes(
            &self.forged,
            &format!("{target}:models/nlp/bert/2.0.0/manifest.toml"),
        ));
        let p = Promo {
            action: "promote",
            version: "2.0.0".into(),
            digest,
            from: "staging".into(),
            to: "production".into(),
            counter: 3,
            previous,
            approvals: Vec::new(),
            reason: None,
        };
        self.sign_tag(
            &self.forged,
            &self.mallory,
            &p.name(),
            &target,
            &p.message(),
        )
    }

    fn fresh_clone(&self, name: &str) -> PathBuf {
        self.git_clone(&self.evil, name)
    }

    /// bob's clone, made before the attack, now talking to the taken-over server.
    fn existing_clone(&self) -> PathBuf {
        let bob = self.dir(&self.bob);
        self.git_ok(&bob, &["remote", "set-url", "origin", path_str(&self.evil)]);
        bob
    }
}

/// `run` failed as an integrity error naming every fragment.
#[track_caller]
fn refused(run: Run, fragments: &[&str]) {
    let run = run.mvault_error().mentions(fragments);
    assert_eq!(
        run.status.code(),
        Some(INTEGRITY),
        "expected the integrity exit code: {}",
        run.stderr()
    );
}

/// pull, verify, show of `reference` in `clone` all refuse, naming `tag`
/// and the reason; pull writes nothing.
#[track_caller]
fn all_refuse(a: &Attack, clone: &Path, reference: &str, tag: &str, why: &str) {
    let out = a.path(&format!(
        "out-{}-{}",
        clone.file_name().unwrap().to_str().unwrap(),
        reference.replace(['/', '@', '#'], "_")
    ));
    refused(
        a.mvault(clone, &a.alice, &["pull", reference, "-o", path_str(&out)]),
        &[tag, why],
    );
    assert!(
        list_files(&out).is_empty(),
        "a refused pull wrote into {}",
        out.display()
    );
    refused(
        a.mvault(clone, &a.alice, &["verify", reference]),
        &[tag, why],
    );
    refused(a.mvault(clone, &a.alice, &["show", reference]), &[tag, why]);
}

#[test]
fn attack_forged_server_fresh_clone_refuses_tags_off_main() {
    let a = Attack::new();
    a.forge_promotion();
    a.force_tags(&[
        "nlp/bert@v1.0.0",
        "nlp/bert@v2.0.0",
        "nlp/bert#production#3",
    ]);
    let fresh = a.fresh_clone("fresh");
    // The forgery is what the server serves.
    assert_ne!(a.tag_id(&fresh, "nlp/bert@v1.0.0"), a.real_v1);

    all_refuse(
        &a,
        &fresh,
        "nlp/bert@1.0.0",
        "nlp/bert@v1.0.0",
        "not on main",
    );
    all_refuse(
        &a,
        &fresh,
        "nlp/bert@2.0.0",
        "nlp/bert@v2.0.0",
        "not on main",
    );
    all_refuse(
        &a,
        &fresh,
        "nlp/bert#production",
        "nlp/bert#production#3",
        "not on main",
    );
}

#[test]
fn attack_forged_server_existing_clone_refuses_tags_off_main() {
    let a = Attack::new();
    a.forge_promotion();
    a.force_tags(&[
        "nlp/bert@v1.0.0",
        "nlp/bert@v2.0.0",
        "nlp/bert#production#3",
    ]);
    let bob = a.existing_clone();
    // Stock fetch of every tag, as a user would: git keeps bob's own
    // 1.0.0 (it would clobber) and takes the new ones.
    a.git(&bob, &["fetch", "-q", "origin", "refs/tags/*:refs/tags/*"]);
    assert_eq!(a.tag_id(&bob, "nlp/bert@v1.0.0"), a.real_v1);
    all_refuse(&a, &bob, "nlp/bert@2.0.0", "nlp/bert@v2.0.0", "not on main");
    // `pull` of a stage first refreshes the record from the server, which
    // offers a 1.0.0 tag other than bob's own: refused there, nothing
    // written. `verify` and `show` use the clone's record as it is.
    let out = a.path("out-bob-production");
    refused(
        a.mvault(
            &bob,
            &a.alice,
            &["pull", "nlp/bert#production", "-o", path_str(&out)],
        ),
        &["nlp/bert@v1.0.0", "a published tag never changes"],
    );
    assert!(list_files(&out).is_empty(), "a refused pull wrote files");
    for cmd in ["verify", "show"] {
        refused(
            a.mvault(&bob, &a.alice, &[cmd, "nlp/bert#production"]),
            &["nlp/bert#production#3", "not on main"],
        );
    }
    // Even a forced fetch that replaces bob's 1.0.0 gains nothing.
    a.git_ok(
        &bob,
        &["fetch", "-q", "-f", "origin", "+refs/tags/*:refs/tags/*"],
    );
    all_refuse(&a, &bob, "nlp/bert@1.0.0", "nlp/bert@v1.0.0", "not on main");
}

#[test]
fn attack_forged_server_cannot_replace_a_local_tag_through_mvault() {
    let a = Attack::new();
    a.force_tags(&["nlp/bert@v1.0.0", "nlp/bert@v2.0.0"]);
    let forged_v1 = a.git_ok(&a.evil, &["rev-parse", "refs/tags/nlp/bert@v1.0.0"]);
    let bob = a.existing_clone();
    // approve, promote and rollback bring the clone up to date first.
    let run = a.run(a.mv_command_in(
        &bob,
        &a.bob,
        &["approve", "nlp/bert@1.0.0", "--stage", "deprecated"],
    ));
    refused(run, &["nlp/bert@v1.0.0", &a.real_v1, &forged_v1]);
    assert_eq!(
        a.tag_id(&bob, "nlp/bert@v1.0.0"),
        a.real_v1,
        "the local tag was replaced"
    );
    a.git(
        &bob,
        &["rev-parse", "-q", "--verify", "refs/tags/nlp/bert@v2.0.0"],
    )
    .failure();
    let scratch = a.git_ok(&bob, &["for-each-ref", "refs/mvault/remote-tags/"]);
    assert_eq!(scratch, "", "the server's tags were left behind");
}

#[test]
fn attack_forged_server_cannot_rewrite_main_under_an_existing_clone() {
    let a = Attack::new();
    a.git_ok(
        &a.forged,
        &[
            "push",
            "-q",
            "--force",
            path_str(&a.evil),
            "main:refs/heads/main",
        ],
    );
    let bob = a.existing_clone();
    let ours = a.git_ok(&bob, &["rev-parse", "main"]);
    let run = a.run(a.mv_command_in(
        &bob,
        &a.bob,
        &["approve", "nlp/bert@1.0.0", "--stage", "deprecated"],
    ));
    refused(run, &["does not descend", &ours]);
    assert_eq!(a.git_ok(&bob, &["rev-parse", "main"]), ours);
}
