//! Promotion tags (`rules::promotion`): the chain, the stage machine,
//! roles, tickets and approvals.

use super::{accepted, refused};
use crate::model::names::Stage;
use crate::model::promotion::{Promotion, PromotionAction};
use crate::rules::context::Context;
use crate::rules::fixtures::{PromotionSpec, World, T0};
use crate::rules::promotion::judge_promotion;
use crate::rules::stages::ModelStages;
use crate::rules::{Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};

fn judge(w: &World, name: &str, id: ObjectId, history: &ModelStages) -> Result<Promotion, Refusal> {
    judge_promotion(&w.src, &w.server(), name, name, id, &w.model, history)
}

/// The world's history up to and including the staging promotion.
fn after_staging(w: &World) -> ModelStages {
    w.history(std::slice::from_ref(&w.staging))
}

/// `spec` tagged by alice at `time`, judged after `history`.
fn promote(
    w: &mut World,
    spec: &PromotionSpec,
    history: &ModelStages,
) -> Result<Promotion, Refusal> {
    let alice = w.alice.clone();
    let id = w.promotion_tag(&alice, spec, T0 + 600);
    judge(w, &spec.name(), id, history)
}

#[test]
fn the_worlds_promotions_are_accepted_at_push_time_and_in_replay() {
    let w = World::new();
    let none = ModelStages::default();
    let p = accepted(judge(&w, &w.staging.0, w.staging.1, &none));
    assert_eq!((p.stage, p.counter), (Stage::Staging, 1));
    let h = after_staging(&w);
    let p = accepted(judge(&w, &w.production.0, w.production.1, &h));
    assert_eq!((p.stage, p.counter), (Stage::Production, 2));
    let (n, id) = w.production.clone();
    accepted(judge_promotion(
        &w.src,
        &w.replay(),
        &n,
        &n,
        id,
        &w.model,
        &h,
    ));
}

#[test]
fn a_malformed_promotion_is_refused() {
    let mut w = World::new();
    let mut spec = w.staging_spec.clone();
    spec.counter = 3;
    let alice = w.alice.clone();
    // Message says another stage than the name.
    let msg = spec
        .message()
        .replace("Mvault-To-Stage: staging", "Mvault-To-Stage: production");
    let target = w.bert.commit;
    let id = w.tag(&alice, target, &spec.name(), &msg, T0 + 600);
    refused(
        judge(&w, &spec.name(), id, &ModelStages::default()),
        Rule::BadPromotion,
    );
    // No record of main.
    let msg = w
        .staging_spec
        .message()
        .replace(&format!("Mvault-Record: {}\n", w.bert.commit), "");
    let id = w.tag(&alice, target, "nlp/bert#staging#1", &msg, T0 + 600);
    refused(
        judge(&w, "nlp/bert#staging#1", id, &ModelStages::default()),
        Rule::BadPromotion,
    );
}

#[test]
fn a_counter_other_than_the_next_is_refused() {
    let mut w = World::new();
    let h = after_staging(&w);
    // #1 again after #1.
    refused(judge(&w, &w.staging.0, w.staging.1, &h), Rule::WrongCounter);
    // #3 when #2 is next.
    let mut spec = w.production_spec.clone();
    spec.counter = 3;
    refused(promote(&mut w, &spec, &h), Rule::WrongCounter);
}

#[test]
fn a_promotion_that_does_not_name_the_previous_one_breaks_the_chain() {
    let mut w = World::new();
    let h = after_staging(&w);
    for previous in [None, Some(w.bert.tag)] {
        let spec = PromotionSpec {
            previous,
            ..w.production_spec.clone()
        };
        refused(promote(&mut w, &spec, &h), Rule::BrokenChain);
    }
}

#[test]
fn a_promotion_of_another_manifest_is_refused() {
    let mut w = World::new();
    let spec = PromotionSpec {
        digest: "2".repeat(64),
        ..w.staging_spec.clone()
    };
    refused(
        promote(&mut w, &spec, &ModelStages::default()),
        Rule::PromotionDigest,
    );
}

#[test]
fn a_promotion_from_a_stage_the_version_is_not_in_is_refused() {
    let mut w = World::new();
    let spec = PromotionSpec {
        from: Stage::Development,
        ..w.production_spec.clone()
    };
    let h = after_staging(&w);
    refused(promote(&mut w, &spec, &h), Rule::WrongStage);
}

#[test]
fn a_promotion_that_skips_a_stage_is_refused() {
    let mut w = World::new();
    let spec = w.promotion(1, Stage::Development, Stage::Production, None);
    refused(
        promote(&mut w, &spec, &ModelStages::default()),
        Rule::StageSkipped,
    );
}

/// The world's history extended by `1.0.0` production → deprecated (#3).
fn deprecated_history(w: &mut World) -> (ModelStages, ObjectId) {
    let spec = w.promotion(
        3,
        Stage::Production,
        Stage::Deprecated,
        Some(w.production.1),
    );
    let alice = w.alice.clone();
    let id = w.promotion_tag(&alice, &spec, T0 + 550);
    let h = w.history(&[w.staging.clone(), w.production.clone(), (spec.name(), id)]);
    (h, id)
}

fn rollback(w: &World, previous: ObjectId, from: Stage, counter: u64) -> PromotionSpec {
    PromotionSpec {
        action: PromotionAction::Rollback,
        reason: Some("latency regression".into()),
        ..w.promotion(counter, from, Stage::Production, Some(previous))
    }
}

#[test]
fn a_rollback_to_an_earlier_production_version_with_a_reason_is_accepted() {
    let mut w = World::new();
    let (h, prev) = deprecated_history(&mut w);
    let spec = rollback(&w, prev, Stage::Deprecated, 4);
    // By an ml_admin: production's rule names no rollback_role, so the
    // default, ml_admin, applies (alice, an ml_engineer, is refused:
    // tests/lifecycle.rs).
    let admin = w.admin.clone();
    let id = w.promotion_tag(&admin, &spec, T0 + 600);
    let p = accepted(judge(&w, &spec.name(), id, &h));
    assert_eq!(p.action, PromotionAction::Rollback);
    // Without a reason it is refused.
    let spec = PromotionSpec {
        reason: None,
        ..rollback(&w, prev, Stage::Deprecated, 4)
    };
    refused(promote(&mut w, &spec, &h), Rule::BadRollback);
}

#[test]
fn a_rollback_to_a_version_never_in_production_is_refused() {
    let mut w = World::new();
    let h = after_staging(&w);
    let spec = rollback(&w, w.staging.1, Stage::Staging, 2);
    refused(promote(&mut w, &spec, &h), Rule::BadRollback);
}

#[test]
fn a_promoter_without_the_promote_role_is_refused() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let spec = w.staging_spec.clone();
    let id = w.promotion_tag(&bob, &spec, T0 + 600);
    refused(
        judge(&w, &spec.name(), id, &ModelStages::default()),
        Rule::Role,
    );
    // alice's tag, pushed by bob.
    let ctx = Context {
        pusher: Some("bob"),
        ..w.server()
    };
    let (n, id) = w.staging.clone();
    refused(
        judge_promotion(&w.src, &ctx, &n, &n, id, &w.model, &ModelStages::default()),
        Rule::PusherRole,
    );
}

#[test]
fn a_stage_that_requires_a_ticket_refuses_a_promotion_without_one() {
    let mut w = World::new();
    let spec = PromotionSpec {
        ticket: None,
        ..w.staging_spec.clone()
    };
    refused(
        promote(&mut w, &spec, &ModelStages::default()),
        Rule::TicketRequired,
    );
}

#[test]
fn an_approval_that_is_not_a_tag_of_the_vault_is_unknown() {
    let mut w = World::new();
    let h = after_staging(&w);
    let (aname, aid) = w.approval.clone();
    // The right name, another object.
    let spec = PromotionSpec {
        approvals: vec![(aname.clone(), w.bert.tag.to_string())],
        ..w.production_spec.clone()
    };
    refused(promote(&mut w, &spec, &h), Rule::UnknownApproval);
    // Another name, the right object.
    let spec = PromotionSpec {
        approvals: vec![(aname.replace("bob", "bob2"), aid.to_string())],
        ..w.production_spec.clone()
    };
    refused(promote(&mut w, &spec, &h), Rule::UnknownApproval);
    // A malformed id.
    let spec = PromotionSpec {
        approvals: vec![(aname, "zz".into())],
        ..w.production_spec.clone()
    };
    refused(promote(&mut w, &spec, &h), Rule::BadApproval);
}

#[test]
fn an_approval_for_another_stage_does_not_serve() {
    let mut w = World::new();
    let h = after_staging(&w);
    let bob = w.bob.clone();
    let (aname, aid) = w.approve(&bob, Stage::Staging, T0 + 400);
    let spec = PromotionSpec {
        approvals: vec![(aname, aid.to_string())],
        ..w.production_spec.clone()
    };
    refused(promote(&mut w, &spec, &h), Rule::ApprovalForOther);
}

#[test]
fn a_promotion_without_enough_approvals_is_refused() {
    let mut w = World::new();
    let h = after_staging(&w);
    let spec = PromotionSpec {
        approvals: Vec::new(),
        ..w.production_spec.clone()
    };
    let r = refused(promote(&mut w, &spec, &h), Rule::NotEnoughApprovals);
    assert!(r.detail.contains("0 counted"), "{}", r.detail);
    // The promoter's own approval does not count: the admin approves and promotes.
    let admin = w.admin.clone();
    let (aname, aid) = w.approve(&admin, Stage::Production, T0 + 400);
    let spec = PromotionSpec {
        approvals: vec![(aname, aid.to_string())],
        ..w.production_spec.clone()
    };
    let id = w.promotion_tag(&admin, &spec, T0 + 600);
    let r = refused(judge(&w, &spec.name(), id, &h), Rule::NotEnoughApprovals);
    assert!(r.detail.contains("promoter"), "{}", r.detail);
}

/// Review of issue 10: a promotion made against a record older than a
/// deploy commit of its model would change the stages the replay reads
/// at that deployment (the version demoted "before" a deployment the hook
/// let in, and every later `audit verify` broken). The hook refuses it;
/// the replay, whose main runs past the push, cannot judge it (push
/// only). A registration in between does not matter: a late promotion
/// can only lower what the version cap counts.
#[test]
fn a_promotion_made_against_a_record_behind_a_deployment_is_refused() {
    let mut w = World::new();
    let h = after_staging(&w);
    let (n, id) = w.production.clone();
    let alice = w.alice.clone();
    let registered = super::register_version(&mut w, &alice, "1.1.0", T0 + 500);
    accepted(judge(&w, &n, id, &h));
    // A deploy commit of nlp/bert on main (the rule reads its trailers;
    // its own judgement is tests/deploy.rs's).
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        "deployments/prod-eu/nlp/bert/_deployment.toml".into(),
        (w.src.blob(b"record"), EntryKind::Blob),
    );
    let tip = w.main.tip;
    let deploy = w.commit_files(
        &alice,
        tip,
        &files,
        "deploy nlp/bert@1.0.0 to prod-eu\n\nMvault-Action: deploy\nMvault-Model: nlp/bert\nMvault-Version: 1.0.0\nMvault-Environment: prod-eu\n",
        T0 + 550,
    );
    w.advance_main(deploy);
    let e = refused(judge(&w, &n, id, &h), Rule::RecordBehindModel);
    assert!(
        e.line().contains(&format!(
            "main has commit {deploy} (a deployment of nlp/bert) after it"
        )),
        "{}",
        e.line()
    );
    assert!(e.hint.contains("fetch"), "{}", e.hint);
    accepted(judge_promotion(
        &w.src,
        &w.replay(),
        &n,
        &n,
        id,
        &w.model,
        &h,
    ));
    // Made against the deployment (or later), it is accepted.
    let spec = PromotionSpec {
        record: deploy,
        ..w.production_spec.clone()
    };
    let id = w.promotion_tag(&alice, &spec, T0 + 600);
    accepted(judge(&w, &spec.name(), id, &h));
    let _ = registered;
}

/// Review of issue 10: an archive tag dated long before it is pushed
/// (as early as its record allows) would make a purge by the purge_role
/// due at once; the hook refuses it (rule 88, push only), the replay
/// cannot tell.
#[test]
fn an_archive_tag_dated_before_its_push_is_refused() {
    let mut w = World::new();
    let (h, prev) = deprecated_history(&mut w);
    let spec = w.promotion(4, Stage::Deprecated, Stage::Archived, Some(prev));
    let admin = w.admin.clone();
    let old = w.promotion_tag(&admin, &spec, T0 + 600);
    let e = refused(judge(&w, &spec.name(), old, &h), Rule::ArchiveBackdated);
    assert!(
        e.line().contains("starts the retention clock"),
        "{}",
        e.line()
    );
    accepted(judge_promotion(
        &w.src,
        &w.replay(),
        &spec.name(),
        &spec.name(),
        old,
        &w.model,
        &h,
    ));
    let now = w.promotion_tag(&admin, &spec, crate::rules::fixtures::NOW);
    accepted(judge(&w, &spec.name(), now, &h));
}
