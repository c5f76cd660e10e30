//! The lifecycle rules (issue 10): a model's `max_versions` on
//! registration, a purge by the model's `purge_role` once its retention is
//! due, and a rollback by production's `rollback_role` (ml_admin unless the
//! rule names another).

use super::{accepted, refused};
use crate::model::names::Stage;
use crate::model::policy::POLICY_PATH;
use crate::model::promotion::PromotionAction;
use crate::model::purge::PurgeRecord;
use crate::rules::commit::{judge_commit, CommitVerdict};
use crate::rules::context::{Clock, Context};
use crate::rules::fixtures::{
    policy_text, purge_message, register_message, rfc3339, PromotionSpec, World, SKEW, T0,
};
use crate::rules::promotion::judge_promotion;
use crate::rules::{Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};

/// When the lifecycle policy lands, and when the commits after it are made.
const POLICY_AT: i64 = T0 + 550;
const AT: i64 = T0 + 600;

fn judge(w: &World, id: ObjectId) -> Result<CommitVerdict, Refusal> {
    judge_commit(&w.src, &w.server(), "refs/heads/main", id)
}

/// The world's policy with `extra` appended, committed by the admin on
/// main's tip and put on main (the readers do not change).
fn with_policy(w: &mut World, extra: &str) -> ObjectId {
    let text = format!(
        "{}\n{extra}",
        policy_text(&w.admin, &w.alice, &w.bob, &w.carol)
    );
    crate::model::policy::Policy::parse(&text).expect("the test's policy parses");
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        POLICY_PATH.to_owned(),
        (w.src.blob(text.as_bytes()), EntryKind::Blob),
    );
    let (admin, tip) = (w.admin.clone(), w.main.tip);
    let id = w.commit_files(
        &admin,
        tip,
        &files,
        "policy: change\n\nMvault-Action: policy\nMvault-Policy-Change: change\n",
        POLICY_AT,
    );
    accepted(judge(w, id));
    w.advance_main(id);
    id
}

/// alice's registration of nlp/bert@1.1.0 on main's tip.
fn register_1_1_0(w: &mut World) -> ObjectId {
    let alice = w.alice.clone();
    let draft = w.version_draft(&alice, "1.1.0", AT);
    let tip = w.main.tip;
    let (files, digest) = w.version_files(tip, &draft, &alice, false);
    let msg = register_message("nlp/bert", "1.1.0", &digest, None);
    w.commit_files(&alice, tip, &files, &msg, AT)
}

#[test]
fn a_version_past_max_versions_is_refused_until_one_is_archived() {
    let mut w = World::new();
    with_policy(&mut w, "[[models]]\nmodels = \"nlp/*\"\nmax_versions = 1\n");
    let id = register_1_1_0(&mut w);
    // 1.0.0 is in production: it counts, and the cap is reached.
    let e = refused(judge(&w, id), Rule::TooManyVersions);
    assert!(
        e.line()
            .contains("1 version(s) not archived and max_versions = 1"),
        "{}",
        e.line()
    );
    assert!(e.hint.contains("archive"), "{}", e.hint);
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::TooManyVersions,
    );
    // Deprecated still counts; archived does not.
    let (m, v) = (w.model.clone(), w.version.clone());
    w.main.set_stage(&m, &v, Stage::Deprecated);
    refused(judge(&w, id), Rule::TooManyVersions);
    w.main.set_stage(&m, &v, Stage::Archived);
    accepted(judge(&w, id));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

#[test]
fn a_cap_above_the_count_or_on_another_model_lets_the_version_in() {
    let mut w = World::new();
    with_policy(
        &mut w,
        "[[models]]\nmodels = \"vision/*\"\nmax_versions = 1\n\n[[models]]\nmodels = \"nlp/*\"\nmax_versions = 2\n",
    );
    let id = register_1_1_0(&mut w);
    accepted(judge(&w, id));
}

/// `who`'s purge of nlp/bert@1.0.0 at `AT`.
fn purge_by(w: &mut World, who: &crate::rules::fixtures::TestKey) -> ObjectId {
    purge_at(w, who, AT)
}

/// `who`'s purge of nlp/bert@1.0.0, dated `at`.
fn purge_at(w: &mut World, who: &crate::rules::fixtures::TestKey, at: i64) -> ObjectId {
    let record = PurgeRecord {
        model: w.model.clone(),
        version: w.version.clone(),
        purged_by: who.name.clone(),
        time: rfc3339(at),
        reason: "retention".into(),
    };
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        "models/nlp/bert/1.0.0/purge.toml".to_owned(),
        (
            w.src.blob(record.to_canonical().as_bytes()),
            EntryKind::Blob,
        ),
    );
    let tip = w.main.tip;
    w.commit_files(
        who,
        tip,
        &files,
        &purge_message("nlp/bert", "1.0.0", "retention"),
        at,
    )
}

/// A server whose clock reads `now`.
fn server_at(w: &World, now: i64) -> Context<'_> {
    Context {
        clock: Clock::Server { now, skew: SKEW },
        ..w.server()
    }
}

#[test]
fn the_purge_role_purges_once_retention_is_due() {
    let mut w = World::new();
    with_policy(
        &mut w,
        "[[models]]\nmodels = \"nlp/*\"\nretention_days = 1\npurge_role = \"ml_engineer\"\n",
    );
    let (m, v) = (w.model.clone(), w.version.clone());
    let archived = T0 + 100;
    w.main.set_stage_at(&m, &v, Stage::Archived, archived);
    let alice = w.alice.clone();
    let id = purge_by(&mut w, &alice);
    // The hook's clock (NOW = T0 + 10000) is before the day is over.
    let e = refused(judge(&w, id), Rule::RetentionNotDue);
    assert!(e.line().contains("retention_days = 1"), "{}", e.line());
    // A server clock a day after the archive tag: due, for a purge made
    // then (one dated before is refused: see the backdated case below).
    let due = archived + 86_400;
    refused(
        judge_commit(&w.src, &server_at(&w, due - 1), "main", id),
        Rule::RetentionNotDue,
    );
    refused(
        judge_commit(&w.src, &server_at(&w, due), "main", id),
        Rule::RetentionNotDue,
    );
    let on_time = purge_at(&mut w, &alice, due);
    accepted(judge_commit(&w.src, &server_at(&w, due), "main", on_time));
    accepted(judge_commit(&w.src, &w.replay(), "main", on_time));
    // The replay judges at the purge commit's own date (AT), not due.
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::RetentionNotDue,
    );
    // The admin purges an archived version whatever its retention.
    let admin = w.admin.clone();
    let id = purge_by(&mut w, &admin);
    accepted(judge(&w, id));
}

#[test]
fn a_purge_by_a_role_the_policy_does_not_name_is_refused() {
    let mut w = World::new();
    with_policy(
        &mut w,
        "[[models]]\nmodels = \"nlp/*\"\nretention_days = 0\npurge_role = \"ml_engineer\"\n",
    );
    let (m, v) = (w.model.clone(), w.version.clone());
    w.main.set_stage_at(&m, &v, Stage::Archived, T0 + 100);
    // bob is an approver: not the purge role.
    let bob = w.bob.clone();
    let id = purge_by(&mut w, &bob);
    let e = refused(judge(&w, id), Rule::Role);
    assert!(
        e.line().contains("ml_engineer once the retention"),
        "{}",
        e.line()
    );
    // alice holds it and retention 0 is due at once; pushed by bob, refused.
    let alice = w.alice.clone();
    let id = purge_by(&mut w, &alice);
    accepted(judge(&w, id));
    let ctx = Context {
        pusher: Some("bob"),
        ..w.server()
    };
    refused(judge_commit(&w.src, &ctx, "main", id), Rule::PusherRole);
}

/// The world's history with 1.0.0 moved to deprecated (#3), and a
/// rollback of it to production (#4) against `record`, by `who`.
fn rollback_by(w: &mut World, who: &str, record: ObjectId) -> Result<(), Refusal> {
    let spec = w.promotion(
        3,
        Stage::Production,
        Stage::Deprecated,
        Some(w.production.1),
    );
    let alice = w.alice.clone();
    let dep = w.promotion_tag(&alice, &spec, T0 + 520);
    let h = w.history(&[w.staging.clone(), w.production.clone(), (spec.name(), dep)]);
    let back = PromotionSpec {
        action: PromotionAction::Rollback,
        reason: Some("latency regression".into()),
        record,
        ..w.promotion(4, Stage::Deprecated, Stage::Production, Some(dep))
    };
    let key = match who {
        "admin" => w.admin.clone(),
        _ => w.alice.clone(),
    };
    let id = w.promotion_tag(&key, &back, AT);
    let name = back.name();
    judge_promotion(&w.src, &w.server(), &name, &name, id, &w.model, &h).map(|_| ())
}

#[test]
fn a_rollback_needs_ml_admin_unless_the_production_rule_names_a_role() {
    let mut w = World::new();
    let record = w.bert.commit;
    let e = rollback_by(&mut w, "alice", record).unwrap_err();
    assert_eq!(e.rule, Rule::Role, "{}", e.line());
    assert!(e.line().contains("ml_admin"), "{}", e.line());
    assert!(e.hint.contains("--rollback-role"), "{}", e.hint);
    accepted(rollback_by(&mut w, "admin", record));
    // A production rule that names ml_engineer, first so that it wins.
    let mut w = World::new();
    let text = policy_text(&w.admin, &w.alice, &w.bob, &w.carol).replace(
        "[[stages]]\nstage = \"production\"\nmodels = \"**\"\n",
        "[[stages]]\nstage = \"production\"\nmodels = \"**\"\nrollback_role = \"ml_engineer\"\n",
    );
    assert!(text.contains("rollback_role"), "the fixture's rule moved");
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        POLICY_PATH.to_owned(),
        (w.src.blob(text.as_bytes()), EntryKind::Blob),
    );
    let (admin, tip) = (w.admin.clone(), w.main.tip);
    let policy = w.commit_files(
        &admin,
        tip,
        &files,
        "policy: change\n\nMvault-Action: policy\nMvault-Policy-Change: change\n",
        POLICY_AT,
    );
    w.advance_main(policy);
    accepted(rollback_by(&mut w, "alice", policy));
}

/// Review of issue 10: a purge by the purge_role whose commit is dated
/// before the retention is due (backdated as far as its parent allows)
/// while the server's clock is past it. Before the fix the hook judged
/// the server's clock alone and let it in, and every later replay, which
/// judges at the commit's own date, broke on it. Due means due at both.
#[test]
fn a_purge_backdated_before_its_retention_is_due_is_refused_by_the_hook_too() {
    let mut w = World::new();
    with_policy(
        &mut w,
        "[[models]]\nmodels = \"nlp/*\"\nretention_days = 1\npurge_role = \"ml_engineer\"\n",
    );
    let (m, v) = (w.model.clone(), w.version.clone());
    // Archived at AT - 86_400 + 1: due one second after the commit's date.
    let archived = AT - 86_400 + 1;
    w.main.set_stage_at(&m, &v, Stage::Archived, archived);
    let alice = w.alice.clone();
    let id = purge_by(&mut w, &alice);
    // The server's clock is well past the due date.
    let e = refused(
        judge_commit(&w.src, &server_at(&w, AT + 86_400), "main", id),
        Rule::RetentionNotDue,
    );
    assert!(
        e.line().contains(&format!("judged at {}", rfc3339(AT))),
        "{}",
        e.line()
    );
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::RetentionNotDue,
    );
    // Archived one second earlier, due at the commit's date: both accept.
    w.main.set_stage_at(&m, &v, Stage::Archived, archived - 1);
    accepted(judge_commit(
        &w.src,
        &server_at(&w, AT + 86_400),
        "main",
        id,
    ));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}

/// Review of issue 10: a purge record of megabytes is refused by its
/// size, before it is read or parsed.
#[test]
fn a_huge_purge_record_is_refused_by_its_size() {
    let mut w = World::new();
    let (m, v) = (w.model.clone(), w.version.clone());
    w.main.set_stage_at(&m, &v, Stage::Archived, T0 + 100);
    let mut files = w.files[&w.main.tip].clone();
    let huge = vec![b'#'; 1 << 20];
    files.insert(
        "models/nlp/bert/1.0.0/purge.toml".to_owned(),
        (w.src.blob(&huge), EntryKind::Blob),
    );
    let (admin, tip) = (w.admin.clone(), w.main.tip);
    let id = w.commit_files(
        &admin,
        tip,
        &files,
        &purge_message("nlp/bert", "1.0.0", "retention"),
        AT,
    );
    let e = refused(judge(&w, id), Rule::BadPurge);
    assert!(
        e.line()
            .contains("is 1048576 bytes; a record is at most 16384"),
        "{}",
        e.line()
    );
}
