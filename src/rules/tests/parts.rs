//! The parts the judgements are made of, called directly: ciphertext
//! (`payload`), key rings (`ring`), tree shape (`tree`), approval counting
//! (`approvals`) and the clock (`context`).

use super::{accepted, refused};
use crate::crypto::Signer;
use crate::model::approval::parse_approval;
use crate::model::names::Stage;
use crate::rules::approvals::{count_approvals, Parties};
use crate::rules::commit::judge_commit;
use crate::rules::context::Clock;
use crate::rules::fixtures::{age_blob, item, register_message, World, NOW, SKEW, T0};
use crate::rules::payload::{check_ciphertext, PayloadProblem, HEAD_BYTES};
use crate::rules::ring::check_ring;
use crate::rules::tree::diff_trees;
use crate::rules::Rule;
use crate::store::objects::EntryKind;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid")
}

#[test]
fn ciphertext_to_the_data_key_is_accepted_and_anything_else_not() {
    let w = World::new();
    let blob = age_blob(&w.data_key, b"weights");
    let head = &blob[..blob.len().min(HEAD_BYTES)];
    assert_eq!(check_ciphertext(head, blob.len() as u64, 7), Ok(()));
    assert!(matches!(
        check_ciphertext(b"weights", 7, 7),
        Err(PayloadProblem::NotAge(_))
    ));
    assert!(matches!(
        check_ciphertext(head, blob.len() as u64 + 1, 7),
        Err(PayloadProblem::Size { .. })
    ));
    // A key ring (to SSH keys) is not a blob.
    let ring = w.ring_for(&w.policy);
    assert!(matches!(
        check_ciphertext(&ring, ring.len() as u64, 7),
        Err(PayloadProblem::Recipient(_))
    ));
}

#[test]
fn a_ring_must_be_wrapped_to_exactly_the_readers() {
    let w = World::new();
    let ring = w.ring_for(&w.policy);
    assert_eq!(check_ring(&ring, &w.policy, &w.model, now()), Ok(()));
    let short = w.ring_to(&[w.alice.public_key().clone()]);
    let e = check_ring(&short, &w.policy, &w.model, now()).expect_err("refused");
    assert!(e.contains("missing"), "{e}");
    assert!(check_ring(b"nope", &w.policy, &w.model, now()).is_err());
    // A blob to the data key is no ring.
    let blob = age_blob(&w.data_key, b"k");
    assert!(check_ring(&blob, &w.policy, &w.model, now()).is_err());
}

#[test]
fn tree_diffs_list_changes_and_refuse_bad_shapes() {
    let mut w = World::new();
    let old = w.src.tree_of(&w.files[&w.policy_commit].clone());
    let new = w.src.tree_of(&w.files[&w.bert.commit].clone());
    let mut out = Vec::new();
    diff_trees(&w.src, Some(old), Some(new), "", &mut out).expect("diffs");
    let paths: Vec<_> = out.iter().map(|c| c.path.as_str()).collect();
    assert!(paths.contains(&".mvault/keys/nlp/bert.age"), "{paths:?}");
    assert!(paths
        .iter()
        .all(|p| p.starts_with(".mvault/keys/") || p.starts_with("models/nlp/bert/1.0.0/")));
    // Duplicates and modes, as the commit rules see them.
    let b = w.src.blob(b"x");
    let dup = w
        .src
        .raw_tree(&[item("a", b, EntryKind::Blob), item("a", b, EntryKind::Blob)]);
    let e = diff_trees(&w.src, Some(old), Some(dup), "", &mut Vec::new()).expect_err("refused");
    assert_eq!(e.refusal("main", w.init).rule, Rule::MalformedTree);
    let exe = w.src.raw_tree(&[item("a", b, EntryKind::BlobExecutable)]);
    let e = diff_trees(&w.src, Some(old), Some(exe), "", &mut Vec::new()).expect_err("refused");
    assert_eq!(e.refusal("main", w.init).rule, Rule::BadFileMode);
    // A subtree that is not there fails closed.
    let absent = super::absent_id();
    let t = w.src.raw_tree(&[item("d", absent, EntryKind::Tree)]);
    let e = diff_trees(&w.src, Some(old), Some(t), "", &mut Vec::new()).expect_err("refused");
    assert_eq!(e.refusal("main", w.init).rule, Rule::Internal);
}

#[test]
fn approvals_count_once_per_eligible_person() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let carol = w.carol.clone();
    let admin = w.admin.clone();
    let parse = |w: &World, (n, id): &(String, crate::store::objects::ObjectId)| {
        parse_approval(n, *id, &w.src.bytes(*id)).expect("parses")
    };
    let rule = w.policy.rule_for(&w.model, Stage::Production);
    let bob_once = parse(&w, &w.approval);
    let bob_again = w.approve(&bob, Stage::Production, T0 + 450);
    let carol_a = w.approve(&carol, Stage::Production, T0 + 450);
    let admin_a = w.approve(&admin, Stage::Production, T0 + 450);
    let candidates = vec![
        bob_once.clone(),
        parse(&w, &bob_again),
        parse(&w, &carol_a),
        parse(&w, &admin_a),
    ];
    let parties = Parties {
        author: "alice",
        promoter: "admin",
    };
    let count = count_approvals(
        &w.policy,
        &rule,
        &w.model,
        &w.bert.digest,
        &parties,
        candidates,
        now(),
    );
    assert_eq!(count.counted.len(), 1, "{:?}", count.rejected);
    assert_eq!(count.counted[0].user, "bob");
    let why: Vec<&str> = count.rejected.iter().map(|(_, w)| w.as_str()).collect();
    assert!(why[0].contains("one per person"), "{why:?}");
    assert!(why[1].contains("expired"), "{why:?}");
    assert!(why[2].contains("promoter"), "{why:?}");
    // Another manifest: nothing counts.
    let count = count_approvals(
        &w.policy,
        &rule,
        &w.model,
        &"3".repeat(64),
        &parties,
        vec![bob_once],
        now(),
    );
    assert!(count.counted.is_empty());
    // No candidates: nothing counts (an empty set denies).
    let count = count_approvals(
        &w.policy,
        &rule,
        &w.model,
        &w.bert.digest,
        &parties,
        Vec::new(),
        now(),
    );
    assert!(count.counted.is_empty() && count.rejected.is_empty());
}

#[test]
fn the_server_clock_refuses_dates_past_the_skew_and_replay_does_not() {
    let server = Clock::Server {
        now: NOW,
        skew: SKEW,
    };
    let replay = Clock::Replay {
        now: NOW,
        skew: SKEW,
    };
    assert!(server.check_not_future("s", "x", NOW + SKEW).is_ok());
    refused(
        server.check_not_future("s", "x", NOW + SKEW + 1),
        Rule::DatedInFuture,
    );
    assert!(replay.check_not_future("s", "x", i64::MAX).is_ok());
    assert_eq!(server.judgement_time(T0).unix_timestamp(), NOW);
    assert_eq!(replay.judgement_time(T0).unix_timestamp(), T0);
}

/// Regression: a date past what `time` can hold (year > 9999) was judged
/// as 1970 in a replay, where every key is still unexpired; a user whose
/// key had expired could sign history that the audit accepted.
#[test]
fn replay_of_a_commit_dated_past_year_9999_is_not_judged_as_1970() {
    let mut w = World::new();
    let carol = w.carol.clone();
    let far = 10_000_000_000_000; // ~ year 318857
    let draft = w.version_draft(&carol, "1.1.0", T0 + 600);
    let tip = w.main.tip;
    let (files, digest) = w.version_files(tip, &draft, &carol, false);
    let msg = register_message("nlp/bert", "1.1.0", &digest, None);
    let id = w.commit_files(&carol, tip, &files, &msg, far);
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::ExpiredKey,
    );
    refused(
        judge_commit(&w.src, &w.server(), "main", id),
        Rule::ExpiredKey,
    );
    // The same commit by alice, whose key never expires, stays accepted in
    // replay: only the expiry judgement changes.
    let alice = w.alice.clone();
    let draft = w.version_draft(&alice, "1.1.0", T0 + 600);
    let (files, digest) = w.version_files(tip, &draft, &alice, false);
    let msg = register_message("nlp/bert", "1.1.0", &digest, None);
    let id = w.commit_files(&alice, tip, &files, &msg, far);
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
}
