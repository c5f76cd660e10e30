//! Promotions the policy forbids (issue "Promotion", acceptance 2). Each
//! attack is tried twice where both exist: through `mvault`, which must
//! refuse before publishing anything, and as a tag hand-made with stock git
//! and pushed with stock `git push`, which the hook must refuse with
//! `mvault: refused <ref>: <rule>: …` while no ref of the server moves.
//! The first test is the control: the same hand-made tags, made right, are
//! accepted, so every refusal below is the hook's answer to the one field
//! each attack changes.

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;
use crate::promotion_world::*;

/// Runs `attempt`, an mvault command that must refuse: asserts an mvault
/// error mentioning `fragments`, and that no ref of the server moved
/// ("mvault published a refused WHAT").
#[track_caller]
fn refused_by_mvault(r: &Release, what: &str, fragments: &[&str], attempt: impl FnOnce() -> Run) {
    let before = r.server_refs();
    attempt().mvault_error().mentions(fragments);
    assert_eq!(r.server_refs(), before, "mvault published a refused {what}");
}

/// `next_promo` of 1.0.0 from `from` to production in `dir`, listing the
/// approval tag `(stage, user, version)` as `dir` has it.
fn promo_listing(r: &Release, dir: &Path, from: &str, approval: (&str, &str, &str)) -> Promo {
    let mut p = r.next_promo(dir, "1.0.0", from, "production");
    let (stage, user, version) = approval;
    let name = approval_name(stage, user, version);
    p.approvals = vec![(name.clone(), r.tag_id(dir, &name))];
    p
}

/// Control: an approval and two promotions made by hand with stock git in
/// mvault's format are accepted, and mvault reads them as its own.
#[test]
fn hand_made_tags_in_mvaults_format_are_accepted() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.carol);
    let p = r.next_promo(&dir, "1.0.0", "development", "staging");
    r.craft_promotion(&dir, &r.carol, &p);
    r.push(
        &dir,
        Some("carol"),
        &["--atomic", "origin", &p.tag_ref(), &p.seq_ref()],
    )
    .success();

    let bob_dir = r.dir(&r.bob);
    r.sync(&bob_dir);
    let digest = r.digest_of(&bob_dir, "1.0.0");
    let approval = r.craft_approval(&bob_dir, &r.bob, "production", "bob", "1.0.0", &digest);
    let name = approval_name("production", "bob", "1.0.0");
    r.push(
        &bob_dir,
        Some("bob"),
        &["origin", &format!("refs/tags/{name}")],
    )
    .success();

    let mut p = r.next_promo(&dir, "1.0.0", "staging", "production");
    p.approvals = vec![(name, approval)];
    r.craft_promotion(&dir, &r.carol, &p);
    r.push(
        &dir,
        Some("carol"),
        &["--atomic", "origin", &p.tag_ref(), &p.seq_ref()],
    )
    .success();
    assert_eq!(r.status(&r.carol)["stages"]["production"], "1.0.0");
}

/// Skipping a stage: development straight to production, even with an
/// approval for production in hand.
#[test]
fn skipping_a_stage_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    r.approve(&r.bob, "1.0.0", "production").success();
    refused_by_mvault(
        &r,
        "promotion",
        &["is in development", "it can go to staging"],
        || r.promote(&r.carol, "1.0.0", "production"),
    );

    let dir = r.dir(&r.carol);
    let p = promo_listing(&r, &dir, "development", ("production", "bob", "1.0.0"));
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "stage skipped");
    assert!(
        run.stderr().contains("is in development"),
        "{}",
        run.stderr()
    );
}

/// A promotion that lies about the stage its version leaves (says staging
/// while the tags say development) to make the skip look like a step.
#[test]
fn promotion_lying_about_the_stage_it_leaves_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    r.approve(&r.bob, "1.0.0", "production").success();
    let dir = r.dir(&r.carol);
    let p = promo_listing(&r, &dir, "staging", ("production", "bob", "1.0.0"));
    r.craft_promotion(&dir, &r.carol, &p);
    r.refused_promotion(&dir, "carol", &p, "wrong stage");
}

/// Production with fewer approvals than the policy asks (1 by default):
/// none at all.
#[test]
fn production_without_enough_approvals_is_refused() {
    let r = Release::in_staging();
    refused_by_mvault(
        &r,
        "promotion",
        &[
            "needs 1 approval",
            "0 counted",
            "mvault approve nlp/bert@1.0.0",
        ],
        || r.promote(&r.carol, "1.0.0", "production"),
    );

    let dir = r.dir(&r.carol);
    let p = r.next_promo(&dir, "1.0.0", "staging", "production");
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "not enough approvals");
    assert!(run.stderr().contains("0 counted"), "{}", run.stderr());
}

/// Self-approval: the author (who also holds approver) approves her own
/// version — refused by `mvault approve` and, for a hand-made approval
/// tag, by the hook.
#[test]
fn author_approving_her_own_version_is_refused() {
    let r = Release::in_staging();
    refused_by_mvault(
        &r,
        "approval",
        &["alice is the author", "self-approval"],
        || r.approve(&r.alice, "1.0.0", "production"),
    );

    let dir = r.dir(&r.alice);
    r.sync(&dir);
    let digest = r.digest_of(&dir, "1.0.0");
    r.craft_approval(&dir, &r.alice, "production", "alice", "1.0.0", &digest);
    let tag = format!(
        "refs/tags/{}",
        approval_name("production", "alice", "1.0.0")
    );
    let run = r.refused(
        &dir,
        Some("alice"),
        &["origin", &tag],
        &tag,
        "self-approval",
    );
    assert!(
        run.stderr().contains("alice is the author"),
        "{}",
        run.stderr()
    );
}

/// Self-approval by the promoter: carol may approve (she is not the
/// author), but her approval does not count for her own promotion.
#[test]
fn promoter_approving_her_own_promotion_does_not_count() {
    let r = Release::in_staging();
    r.approve(&r.carol, "1.0.0", "production").success();
    refused_by_mvault(
        &r,
        "promotion",
        &["0 counted", "carol is the promoter"],
        || r.promote(&r.carol, "1.0.0", "production"),
    );

    let dir = r.dir(&r.carol);
    let p = promo_listing(&r, &dir, "staging", ("production", "carol", "1.0.0"));
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "not enough approvals");
    assert!(
        run.stderr().contains("carol is the promoter"),
        "{}",
        run.stderr()
    );
}

/// One person, two keys, counted twice: with production needing 2
/// approvals, bob (who has a second key) cannot make up the count alone —
/// not with a promotion that lists his approval twice, and not with an
/// approval named for dave signed with one of bob's keys. A second
/// approver does make it.
#[test]
fn one_persons_approval_counts_once_whatever_their_keys() {
    let r = Release::in_staging();
    // The admin raises the threshold to 2 with a signed policy commit
    // (no mvault command edits stage rules).
    let c = r.policy_commit(
        "policy-edit",
        &r.admin,
        "production needs 2 approvals",
        |text| {
            assert!(text.contains("approvals = 1"), "{text}");
            text.replacen("approvals = 1", "approvals = 2", 1)
        },
    );
    r.push(&c, Some("admin"), &["origin", "main"]).success();
    // bob's second key.
    let second = r.keygen("bob-laptop");
    let admin_clone = r.stock_clone("admin-clone");
    r.mvault_as(
        &admin_clone,
        &r.admin,
        Some("admin"),
        &["policy", "add-user", "bob", "--key-file", &pub_arg(&second)],
    )
    .success();
    let bob_laptop = Key {
        name: "bob".into(),
        ..second
    };
    r.approve(&bob_laptop, "1.0.0", "production").success();
    r.approve(&r.bob, "1.0.0", "production")
        .mvault_error()
        .mentions(&["already approved"]);

    refused_by_mvault(&r, "promotion", &["needs 2 approval", "1 counted"], || {
        r.promote(&r.carol, "1.0.0", "production")
    });

    // The same approval listed twice.
    let dir = r.dir(&r.carol);
    let mut p = r.next_promo(&dir, "1.0.0", "staging", "production");
    let bobs = approval_name("production", "bob", "1.0.0");
    let id = r.tag_id(&dir, &bobs);
    p.approvals = vec![(bobs.clone(), id.clone()), (bobs, id)];
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "not enough approvals");
    assert!(
        run.stderr().contains("1 counted") && run.stderr().contains("one per person"),
        "{}",
        run.stderr()
    );
    r.discard(&dir, &p);

    // bob's other key signing an approval named for dave.
    let bob_dir = r.dir(&r.bob);
    r.sync(&bob_dir);
    let digest = r.digest_of(&bob_dir, "1.0.0");
    r.craft_approval(&bob_dir, &r.bob, "production", "dave", "1.0.0", &digest);
    let tag = format!("refs/tags/{}", approval_name("production", "dave", "1.0.0"));
    let run = r.refused(
        &bob_dir,
        Some("bob"),
        &["origin", &tag],
        &tag,
        "approval signer",
    );
    assert!(
        run.stderr().contains("named for dave but signed by bob"),
        "{}",
        run.stderr()
    );

    // A second person makes the count.
    r.approve(&r.dave, "1.0.0", "production").success();
    r.promote(&r.carol, "1.0.0", "production").success();
}

/// An approval for staging presented for production.
#[test]
fn staging_approval_does_not_count_for_production() {
    let r = Release::in_staging();
    r.approve(&r.bob, "1.0.0", "staging").success();
    refused_by_mvault(&r, "promotion", &["needs 1 approval", "0 counted"], || {
        r.promote(&r.carol, "1.0.0", "production")
    });

    let dir = r.dir(&r.carol);
    let p = promo_listing(&r, &dir, "staging", ("staging", "bob", "1.0.0"));
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "approval for another version or stage");
    assert!(run.stderr().contains("for staging"), "{}", run.stderr());
}

/// An approval of another version presented for this one.
#[test]
fn approval_of_another_version_does_not_count() {
    let r = Release::in_staging();
    r.register("1.1.0", 2);
    r.approve(&r.bob, "1.1.0", "production").success();
    refused_by_mvault(&r, "promotion", &["needs 1 approval", "0 counted"], || {
        r.promote(&r.carol, "1.0.0", "production")
    });

    let dir = r.dir(&r.carol);
    let p = promo_listing(&r, &dir, "staging", ("production", "bob", "1.1.0"));
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "approval for another version or stage");
    assert!(run.stderr().contains("nlp/bert@1.1.0"), "{}", run.stderr());
}

/// An approval whose Mvault-Manifest-Sha256 is not the version's: it
/// approves other bytes than those registered.
#[test]
fn approval_binding_another_manifest_is_refused() {
    let r = Release::in_staging();
    let dir = r.dir(&r.bob);
    r.sync(&dir);
    let other = sha256_hex(b"a manifest the approver never saw");
    r.craft_approval(&dir, &r.bob, "production", "bob", "1.0.0", &other);
    let tag = format!("refs/tags/{}", approval_name("production", "bob", "1.0.0"));
    let run = r.refused(
        &dir,
        Some("bob"),
        &["origin", &tag],
        &tag,
        "approval digest",
    );
    assert!(run.stderr().contains(&other), "{}", run.stderr());
}

/// A promotion whose Mvault-Manifest-Sha256 is not the version's.
#[test]
fn promotion_binding_another_manifest_is_refused() {
    let r = Release::in_staging();
    r.approve(&r.bob, "1.0.0", "production").success();
    let dir = r.dir(&r.carol);
    let mut p = promo_listing(&r, &dir, "staging", ("production", "bob", "1.0.0"));
    p.digest = sha256_hex(b"other bytes");
    r.craft_promotion(&dir, &r.carol, &p);
    r.refused_promotion(&dir, "carol", &p, "promotion digest");
}

/// A developer promotes: promote needs ml_engineer.
#[test]
fn promoter_without_the_role_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    refused_by_mvault(
        &r,
        "promotion",
        &["alice has", "promote needs ml_engineer"],
        || r.promote(&r.alice, "1.0.0", "staging"),
    );

    let dir = r.dir(&r.alice);
    let p = r.next_promo(&dir, "1.0.0", "development", "staging");
    r.craft_promotion(&dir, &r.alice, &p);
    let run = r.refused_promotion(&dir, "alice", &p, "role");
    assert!(
        run.stderr()
            .contains("promoter alice does not hold ml_engineer"),
        "{}",
        run.stderr()
    );
}

/// A valid promotion signed by the promoter, pushed by someone without the
/// role: the pusher needs it too.
#[test]
fn pusher_without_the_role_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.carol);
    let p = r.next_promo(&dir, "1.0.0", "development", "staging");
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "alice", &p, "pusher role");
    assert!(run.stderr().contains("pusher alice"), "{}", run.stderr());
}

/// A promotion signed by a key no policy names.
#[test]
fn promotion_signed_by_an_unknown_key_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.mallory);
    let p = r.next_promo(&dir, "1.0.0", "development", "staging");
    r.craft_promotion(&dir, &r.mallory, &p);
    r.refused_promotion(&dir, "carol", &p, "unknown signer");
}

/// A counter that skips ahead (#2 when the next is #1) — it would leave a
/// hole in the chain that a later tag could fill.
#[test]
fn counter_too_high_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.carol);
    let mut p = r.next_promo(&dir, "1.0.0", "development", "staging");
    p.counter = 2;
    r.craft_promotion(&dir, &r.carol, &p);
    let run = r.refused_promotion(&dir, "carol", &p, "wrong counter");
    assert!(
        run.stderr().contains("the next for nlp/bert is 1"),
        "{}",
        run.stderr()
    );
}

/// A promotion pushed without the seq ref that claims its counter: it
/// would escape git's one-creation-per-ref serialisation.
#[test]
fn promotion_without_its_seq_ref_is_refused() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.carol);
    let p = r.next_promo(&dir, "1.0.0", "development", "staging");
    r.craft_promotion(&dir, &r.carol, &p);
    r.refused(
        &dir,
        Some("carol"),
        &["origin", &p.tag_ref()],
        &p.tag_ref(),
        "promotion counter not claimed",
    );
}

/// A broken chain link: the right counter but an Mvault-Previous-Promotion
/// that is not the last promotion's object id (history erased: `none`; or
/// another object).
#[test]
fn broken_chain_link_is_refused() {
    let r = Release::in_staging();
    let dir = r.dir(&r.carol);
    let good = r.next_promo(&dir, "1.0.0", "staging", "development");
    let registration = r.tag_id(&dir, "nlp/bert@v1.0.0");
    for previous in ["none".to_owned(), registration] {
        let p = Promo {
            previous,
            ..good.clone()
        };
        r.craft_promotion(&dir, &r.carol, &p);
        let run = r.refused_promotion(&dir, "carol", &p, "broken chain");
        assert!(run.stderr().contains(&good.previous), "{}", run.stderr());
    }
}

/// Replay: an existing, validly signed promotion tag object pushed again
/// under the next counter's name.
#[test]
fn replayed_promotion_tag_is_refused() {
    let r = Release::in_staging();
    let dir = r.dir(&r.carol);
    r.sync(&dir);
    let id = r.tag_id(&dir, "nlp/bert#staging#1");
    let tag = "refs/tags/nlp/bert#staging#2";
    r.git_ok(&dir, &["update-ref", tag, &id]);
    r.git_ok(&dir, &["update-ref", &seq_ref(2), &id]);
    let run = r.refused(
        &dir,
        Some("carol"),
        &["--atomic", "origin", tag, &seq_ref(2)],
        tag,
        "tag name mismatch",
    );
    assert!(
        run.stderr().contains("nlp/bert#staging#1"),
        "{}",
        run.stderr()
    );
}

/// Moving a promotion: `nlp/bert#staging#1` re-made on another version's
/// commit and force-pushed with its seq ref (`git push -f --atomic`).
#[test]
fn moved_promotion_tag_is_refused() {
    let r = Release::in_staging();
    r.register("1.1.0", 2);
    let dir = r.dir(&r.carol);
    let p = moved_staging_tag(&r, &dir);
    let tags = ["-f", "--atomic", "origin", &p.tag_ref(), &p.seq_ref()];
    let before = r.server_refs();
    let run = r.push(&dir, Some("carol"), &tags).failure();
    // The hook judges the seq ref first; either ref may be named.
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("mvault: refused {}: tag moved:", p.seq_ref()))
            || stderr.contains(&format!("mvault: refused {}: tag moved:", p.tag_ref())),
        "expected a `tag moved` refusal:\n{stderr}"
    );
    assert_eq!(r.server_refs(), before, "a ref moved on the server");
    assert_eq!(r.status(&r.carol)["stages"]["staging"], "1.0.0");
}

/// Moving a promotion with the plain `git push -f origin <tag>`: refused,
/// and the refusal says the tag moved (tags are immutable) rather than
/// asking for a seq ref that could never make the move legal.
#[test]
fn moved_promotion_tag_pushed_alone_is_refused_as_moved() {
    let r = Release::in_staging();
    r.register("1.1.0", 2);
    let dir = r.dir(&r.carol);
    let p = moved_staging_tag(&r, &dir);
    r.refused(
        &dir,
        Some("carol"),
        &["-f", "origin", &p.tag_ref()],
        &p.tag_ref(),
        "tag moved",
    );
}

/// `nlp/bert#staging#1` (which promoted 1.0.0) re-made, validly signed by
/// carol, for 1.1.0, with its seq ref, in `dir`.
fn moved_staging_tag(r: &Release, dir: &Path) -> Promo {
    let mut p = r.next_promo(dir, "1.1.0", "development", "staging");
    assert_eq!(p.counter, 2);
    p.counter = 1;
    p.previous = "none".into();
    r.craft_promotion(dir, &r.carol, &p);
    p
}

/// Moving an approval: bob re-signs his approval (same name, new object)
/// and force-pushes it.
#[test]
fn moved_approval_tag_is_refused() {
    let r = Release::in_production();
    let dir = r.dir(&r.bob);
    r.sync(&dir);
    let digest = r.digest_of(&dir, "1.0.0");
    let old = r.tag_id(&dir, &approval_name("production", "bob", "1.0.0"));
    let new = r.craft_approval(&dir, &r.bob, "production", "bob", "1.0.0", &digest);
    assert_ne!(old, new, "the re-made approval is a new object");
    let tag = format!("refs/tags/{}", approval_name("production", "bob", "1.0.0"));
    r.refused(
        &dir,
        Some("bob"),
        &["-f", "origin", &tag],
        &tag,
        "tag moved",
    );
}

/// Rollback to a version that was never in production.
#[test]
fn rollback_to_a_version_never_in_production_is_refused() {
    let r = Release::in_staging();
    // carol may roll back (rollback_role); the version is what is wrong.
    r.let_engineers_roll_back();
    refused_by_mvault(&r, "rollback", &["never in production"], || {
        r.mv(
            &r.carol,
            &["rollback", MODEL, "--to", "1.0.0", "--reason", "incident 7"],
        )
    });

    let dir = r.dir(&r.carol);
    let mut p = r.next_promo(&dir, "1.0.0", "staging", "production");
    p.action = "rollback";
    p.reason = Some("incident 7".into());
    r.craft_promotion(&dir, &r.carol, &p);
    r.refused_promotion(&dir, "carol", &p, "bad rollback");
}
