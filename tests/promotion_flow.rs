//! Promotion, the way it is meant to go (issue "Promotion", acceptance 1):
//! a version climbs the stage machine with the approvals the policy asks
//! for, a serving job pulls `#production` from a fresh stock clone, and a
//! rollback puts the previous production version back.

use crate::common::*;
use crate::promotion_world::*;

/// The whole loop: register → staging → two approvals by two different
/// approvers → production; `mvault pull nlp/bert#production` in a fresh
/// `git clone` of the server gives the registered files byte for byte.
#[test]
fn register_stage_approve_promote_and_pull_production() {
    let r = Release::new();
    let model = r.register("1.0.0", 1);

    r.promote(&r.carol, "1.0.0", "staging")
        .success()
        .mentions(&["nlp/bert#staging#1"]);
    r.approve(&r.bob, "1.0.0", "production").success();
    r.approve(&r.dave, "1.0.0", "production").success();
    r.promote(&r.carol, "1.0.0", "production")
        .success()
        .mentions(&["nlp/bert#production#2"]);

    // What the server holds: both tags, each with its seq ref on the same
    // object, and the production tag naming both approvals and the link.
    let staging = r.server_rev("refs/tags/nlp/bert#staging#1");
    let production = r.server_rev("refs/tags/nlp/bert#production#2");
    assert_eq!(r.server_rev(&seq_ref(1)), staging);
    assert_eq!(r.server_rev(&seq_ref(2)), production);
    let message = r.git_ok(&r.bare, &["cat-file", "tag", &production]);
    for who in ["bob", "dave"] {
        let name = approval_name("production", who, "1.0.0");
        let id = r.server_rev(&format!("refs/tags/{name}"));
        assert!(
            message.contains(&format!("Mvault-Approval: {name} {id}")),
            "the production tag does not name {who}'s approval:\n{message}"
        );
    }
    assert!(
        message.contains(&format!("Mvault-Previous-Promotion: {staging}")),
        "the production tag does not link the staging tag:\n{message}"
    );
    let commit = r.server_rev("refs/tags/nlp/bert@v1.0.0^{commit}");
    assert_eq!(r.server_rev(&format!("{production}^{{commit}}")), commit);

    // A serving job: a fresh stock clone, then pull what is in production.
    let fresh = r.git_clone(&r.bare, "serving");
    let out = r.path("serve");
    pull(&r, &fresh, &out);
    assert_same_tree(&model, &out);

    let status = r.status(&r.carol);
    assert_eq!(status["stages"]["production"], "1.0.0", "{status}");
    // 1.0.0 moved on from staging: staging serves nothing now.
    assert_eq!(
        status["stages"]["staging"],
        serde_json::Value::Null,
        "{status}"
    );
}

/// A rollback puts the version that was in production before back in
/// production and the current one in deprecated; `#production` then pulls
/// the earlier version's files.
#[test]
fn rollback_puts_the_previous_production_version_back() {
    let r = Release::in_production();
    let first = r.model(1);
    r.register("1.1.0", 2);
    r.promote(&r.carol, "1.1.0", "staging").success();
    r.approve(&r.dave, "1.1.0", "production").success();
    r.promote(&r.carol, "1.1.0", "production").success();
    assert_eq!(r.status(&r.carol)["stages"]["production"], "1.1.0");

    // carol is an ml_engineer: only once the production rule names her
    // role may she roll back (by default only an ml_admin may).
    let rollback = [
        "rollback",
        MODEL,
        "--to",
        "1.0.0",
        "--reason",
        "latency regression",
    ];
    r.mv(&r.carol, &rollback)
        .failure()
        .mentions(&["rollback needs ml_admin"]);
    // The hook refuses the same rollback made by hand with stock git, and
    // no ref moves.
    let dir = r.dir(&r.carol);
    let mut p = r.next_promo(&dir, "1.0.0", "production", "production");
    p.action = "rollback";
    p.reason = Some("latency regression".into());
    r.craft_promotion(&dir, &r.carol, &p);
    r.refused_promotion(&dir, "carol", &p, "role")
        .mentions(&["ml_admin", "--rollback-role"]);
    r.git_ok(&dir, &["tag", "-d", &p.name()]);
    r.git_ok(&dir, &["update-ref", "-d", &p.seq_ref()]);
    r.let_engineers_roll_back();
    r.mv(
        &r.carol,
        &[
            "rollback",
            MODEL,
            "--to",
            "1.0.0",
            "--reason",
            "latency regression",
        ],
    )
    .success()
    .mentions(&["nlp/bert#production#5", "nlp/bert#deprecated#6"]);

    let status = r.status(&r.carol);
    assert_eq!(status["stages"]["production"], "1.0.0", "{status}");
    assert_eq!(status["stages"]["deprecated"], "1.1.0", "{status}");
    let rollback = r.server_rev("refs/tags/nlp/bert#production#5");
    let message = r.git_ok(&r.bare, &["cat-file", "tag", &rollback]);
    assert!(
        message.contains("Mvault-Action: rollback")
            && message.contains("Mvault-Reason: latency regression"),
        "{message}"
    );
    assert_eq!(
        r.server_rev(&seq_ref(6)),
        r.server_rev("refs/tags/nlp/bert#deprecated#6")
    );

    let fresh = r.git_clone(&r.bare, "serving");
    let out = r.path("serve");
    pull(&r, &fresh, &out);
    assert_same_tree(&first, &out);
}

/// `mvault pull nlp/bert#production -o OUT` as bob (a reader) in `clone`.
fn pull(r: &Release, clone: &std::path::Path, out: &std::path::Path) {
    let out = out.to_str().expect("utf-8 path");
    r.mvault(clone, &r.bob, &["pull", "nlp/bert#production", "-o", out])
        .success();
}

/// A promotion writes its seq ref before its tag, each a loose ref (no
/// rewrite of packed-refs): a mvault killed between the two leaves a seq
/// ref without its tag. The next promotion with that counter replaces it
/// and lands; the server holds the tag and the seq ref on one object.
#[test]
fn a_seq_ref_left_by_a_killed_promotion_does_not_block_the_next() {
    let r = Release::new();
    r.register("1.0.0", 1);
    let dir = r.dir(&r.carol);
    r.sync(&dir);
    // What a kill between the two writes leaves: seq ref 1, no tag.
    let commit = r.commit_of(&dir, "1.0.0");
    r.git_ok(&dir, &["update-ref", &seq_ref(1), &commit]);
    r.promote(&r.carol, "1.0.0", "staging")
        .success()
        .mentions(&["nlp/bert#staging#1"]);
    let tag = r.server_rev("refs/tags/nlp/bert#staging#1");
    assert_eq!(r.server_rev(&seq_ref(1)), tag);
    assert_eq!(r.git_ok(&dir, &["rev-parse", &seq_ref(1)]).trim(), tag);
}
