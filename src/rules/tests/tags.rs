//! Tags every tag passes, registration tags and approval tags
//! (`rules::tags`).

use super::{accepted, refused, register_version, tip_files_with};
use crate::model::names::Stage;
use crate::model::policy::POLICY_PATH;
use crate::rules::context::Context;
use crate::rules::fixtures::{approval_message, git_sig, tag_bytes, TestKey, World, NOW, SKEW, T0};
use crate::rules::tags::{judge_approval, judge_registration};
use crate::rules::{Accepted, Refusal, Rule};
use crate::store::objects::{ObjectId, ObjectKind};

const TAG: &str = "nlp/bert@v1.0.0";

fn registration(w: &World, name: &str, id: ObjectId) -> Result<Accepted, Refusal> {
    judge_registration(&w.src, &w.server(), "refs/tags/x", name, id)
}

fn approval(w: &World, name: &str, id: ObjectId) -> Result<Accepted, Refusal> {
    judge_approval(&w.src, &w.server(), "refs/tags/x", name, id)
}

/// A registration tag of 1.0.0 named `name`, tagged by `tagger`, signed by `signer`.
fn reg_tag(
    w: &mut World,
    name: &str,
    signer: Option<&TestKey>,
    tagger: &TestKey,
    time: i64,
) -> ObjectId {
    let msg = format!(
        "register nlp/bert@1.0.0\n\nMvault-Manifest-Sha256: {}\n",
        w.bert.digest
    );
    let target = w.bert.commit;
    w.src.put(
        ObjectKind::Tag,
        tag_bytes(target, name, &tagger.at(time), &msg, signer),
    )
}

#[test]
fn the_worlds_registration_tag_is_accepted() {
    let w = World::new();
    assert_eq!(w.bert.tag_name, TAG);
    accepted(registration(&w, TAG, w.bert.tag));
    accepted(judge_registration(
        &w.src,
        &w.replay(),
        TAG,
        TAG,
        w.bert.tag,
    ));
}

#[test]
fn a_lightweight_tag_is_refused() {
    let w = World::new();
    refused(registration(&w, TAG, w.bert.commit), Rule::LightweightTag);
}

#[test]
fn a_tag_under_another_name_than_its_own_is_refused() {
    let w = World::new();
    refused(
        registration(&w, "nlp/bert@v2.0.0", w.bert.tag),
        Rule::TagNameMismatch,
    );
}

#[test]
fn a_tag_of_a_tree_or_of_the_wrong_commit_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    // Of a tree: the payload written by hand, as git would for `git tag -s X TREE`.
    let tree = w.src.tree_of(&w.files[&w.bert.commit].clone());
    let payload = format!(
        "object {tree}\ntype tree\ntag {TAG}\ntagger alice <alice@mvault> {} +0000\n\nregister\n",
        T0 + 300
    );
    let mut bytes = payload.into_bytes();
    let sig = git_sig(&alice, &bytes);
    bytes.extend_from_slice(sig.as_bytes());
    let id = w.src.put(ObjectKind::Tag, bytes);
    refused(registration(&w, TAG, id), Rule::TagTarget);
    // Of the policy commit, not the one that added the version.
    let msg = format!("register\n\nMvault-Manifest-Sha256: {}\n", w.bert.digest);
    let pc = w.policy_commit;
    let id = w.tag(&alice, pc, TAG, &msg, T0 + 300);
    refused(registration(&w, TAG, id), Rule::TagTarget);
    // Of a register commit that is not on main.
    let files = w.files[&w.bert.commit].clone();
    let off = w.commit_files(
        &alice,
        w.policy_commit,
        &files,
        &crate::rules::fixtures::register_message(
            "nlp/bert",
            "1.0.0",
            &w.bert.digest.clone(),
            None,
        ),
        T0 + 201,
    );
    let id = w.tag(&alice, off, TAG, &msg, T0 + 300);
    refused(registration(&w, TAG, id), Rule::TagTarget);
}

#[test]
fn an_unsigned_or_badly_signed_tag_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let id = reg_tag(&mut w, TAG, None, &alice, T0 + 300);
    refused(registration(&w, TAG, id), Rule::UnsignedTag);
    // A signature over other bytes.
    let mut bytes = tag_bytes(w.bert.commit, TAG, &alice.at(T0 + 300), "register\n", None);
    let other = tag_bytes(w.bert.commit, TAG, &alice.at(T0 + 301), "register\n", None);
    bytes.extend_from_slice(git_sig(&alice, &other).as_bytes());
    let id = w.src.put(ObjectKind::Tag, bytes);
    refused(registration(&w, TAG, id), Rule::BadTagSignature);
}

#[test]
fn a_tag_by_an_outsider_or_naming_another_tagger_is_refused() {
    let mut w = World::new();
    let (alice, bob, mallory) = (w.alice.clone(), w.bob.clone(), w.mallory.clone());
    let id = reg_tag(&mut w, TAG, Some(&mallory), &mallory, T0 + 300);
    refused(registration(&w, TAG, id), Rule::UnknownSigner);
    let id = reg_tag(&mut w, TAG, Some(&alice), &bob, T0 + 300);
    refused(registration(&w, TAG, id), Rule::Misattributed);
    let carol = w.carol.clone();
    let id = reg_tag(&mut w, TAG, Some(&carol), &carol, T0 + 300);
    refused(registration(&w, TAG, id), Rule::ExpiredKey);
}

#[test]
fn a_tag_dated_before_its_commit_or_in_the_future_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let id = reg_tag(&mut w, TAG, Some(&alice), &alice, T0 + 199);
    refused(registration(&w, TAG, id), Rule::TagDatedBeforeTarget);
    let id = reg_tag(&mut w, TAG, Some(&alice), &alice, NOW + SKEW + 1);
    refused(registration(&w, TAG, id), Rule::DatedInFuture);
    accepted(judge_registration(&w.src, &w.replay(), TAG, TAG, id));
}

#[test]
fn a_tag_of_no_form_mvault_makes_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let id = reg_tag(&mut w, "release-1", Some(&alice), &alice, T0 + 300);
    refused(registration(&w, "release-1", id), Rule::UnknownTagForm);
}

#[test]
fn a_registration_tag_with_a_bad_model_or_version_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    for name in ["nlp/Bert@v1.0.0", "nlp/bert@v1.0"] {
        let id = reg_tag(&mut w, name, Some(&alice), &alice, T0 + 300);
        refused(registration(&w, name, id), Rule::BadName);
    }
}

#[test]
fn a_registration_tag_by_someone_who_may_not_register_is_refused() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let id = reg_tag(&mut w, TAG, Some(&bob), &bob, T0 + 300);
    refused(registration(&w, TAG, id), Rule::Role);
    let ctx = Context {
        pusher: Some("bob"),
        ..w.server()
    };
    refused(
        judge_registration(&w.src, &ctx, TAG, TAG, w.bert.tag),
        Rule::PusherRole,
    );
}

#[test]
fn a_registration_tag_that_does_not_bind_the_manifest_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let target = w.bert.commit;
    let id = w.tag(&alice, target, TAG, "register nlp/bert@1.0.0\n", T0 + 300);
    refused(registration(&w, TAG, id), Rule::TagDigest);
    let id = w.tag(
        &alice,
        target,
        TAG,
        &format!("register\n\nMvault-Manifest-Sha256: {}\n", "0".repeat(64)),
        T0 + 300,
    );
    refused(registration(&w, TAG, id), Rule::TagDigest);
}

#[test]
fn a_tag_of_a_version_whose_manifest_does_not_parse_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    // A (never judged) register commit on main with a broken manifest.
    let files = tip_files_with(&mut w, "models/nlp/bert/2.0.0/manifest.toml", b"not toml [");
    let tip = w.main.tip;
    let msg = crate::rules::fixtures::register_message("nlp/bert", "2.0.0", "00", None);
    let c = w.commit_files(&alice, tip, &files, &msg, T0 + 300);
    w.advance_main(c);
    let id = w.tag(
        &alice,
        c,
        "nlp/bert@v2.0.0",
        "register\n\nMvault-Manifest-Sha256: 00\n",
        T0 + 300,
    );
    refused(registration(&w, "nlp/bert@v2.0.0", id), Rule::BadManifest);
}

#[test]
fn the_worlds_approval_is_accepted() {
    let w = World::new();
    let (name, id) = w.approval.clone();
    accepted(approval(&w, &name, id));
    accepted(judge_approval(&w.src, &w.replay(), &name, &name, id));
}

/// An approval of 1.0.0 for production named for `named`, with `message`,
/// tagged and signed by `who`.
fn approval_tag(w: &mut World, who: &TestKey, named: &str, message: &str) -> (String, ObjectId) {
    let name = format!("mvault-approval/production/{named}/nlp/bert/1.0.0");
    let target = w.bert.commit;
    let id = w.tag(who, target, &name, message, T0 + 400);
    (name, id)
}

fn message_of(who: &str, digest: &str, record: ObjectId) -> String {
    approval_message("nlp/bert", "1.0.0", Stage::Production, who, digest, record)
}

#[test]
fn a_malformed_approval_is_refused() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let (d, r) = (w.bert.digest.clone(), w.bert.commit);
    // Not an approve action.
    let msg = message_of("bob", &d, r).replace("Mvault-Action: approve", "Mvault-Action: promote");
    let (n, id) = approval_tag(&mut w, &bob, "bob", &msg);
    refused(approval(&w, &n, id), Rule::BadApproval);
    // No record.
    let msg = message_of("bob", &d, r).replace(&format!("Mvault-Record: {r}\n"), "");
    let (n, id) = approval_tag(&mut w, &bob, "bob", &msg);
    refused(approval(&w, &n, id), Rule::BadApproval);
    // A record that is not on main.
    let msg = message_of("bob", &d, super::absent_id());
    let (n, id) = approval_tag(&mut w, &bob, "bob", &msg);
    refused(approval(&w, &n, id), Rule::BadApproval);
    // A name of no approval form.
    let (_, id) = approval_tag(&mut w, &bob, "bob", &message_of("bob", &d, r));
    let bad = "mvault-approval/prod/bob/nlp/bert/1.0.0";
    refused(approval(&w, bad, id), Rule::TagNameMismatch);
}

#[test]
fn an_approval_signed_by_another_than_it_names_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let msg = message_of("bob", &w.bert.digest.clone(), w.bert.commit);
    let (n, id) = approval_tag(&mut w, &alice, "bob", &msg);
    refused(approval(&w, &n, id), Rule::ApprovalSigner);
}

#[test]
fn an_approval_by_someone_without_the_approver_role_is_refused() {
    let mut w = World::new();
    let alice = w.alice.clone();
    let msg = message_of("alice", &w.bert.digest.clone(), w.bert.commit);
    let (n, id) = approval_tag(&mut w, &alice, "alice", &msg);
    refused(approval(&w, &n, id), Rule::Role);
    let (n, id) = w.approval.clone();
    let ctx = Context {
        pusher: Some("alice"),
        ..w.server()
    };
    refused(judge_approval(&w.src, &ctx, &n, &n, id), Rule::PusherRole);
}

#[test]
fn an_approval_of_another_manifest_is_refused() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let msg = message_of("bob", &"1".repeat(64), w.bert.commit);
    let (n, id) = approval_tag(&mut w, &bob, "bob", &msg);
    refused(approval(&w, &n, id), Rule::ApprovalDigest);
}

#[test]
fn the_author_may_not_approve_their_own_version() {
    let mut w = World::new();
    // The admin registers 1.1.0 and holds ml_admin, which approves.
    let admin = w.admin.clone();
    let reg = register_version(&mut w, &admin, "1.1.0", T0 + 600);
    let name = "mvault-approval/production/admin/nlp/bert/1.1.0";
    let msg = approval_message(
        "nlp/bert",
        "1.1.0",
        Stage::Production,
        "admin",
        &reg.digest,
        reg.commit,
    );
    let id = w.tag(&admin, reg.commit, name, &msg, T0 + 700);
    refused(approval(&w, name, id), Rule::SelfApproval);
    // bob approving the same version is fine.
    let bob = w.bob.clone();
    let name = "mvault-approval/production/bob/nlp/bert/1.1.0";
    let msg = approval_message(
        "nlp/bert",
        "1.1.0",
        Stage::Production,
        "bob",
        &reg.digest,
        reg.commit,
    );
    let id = w.tag(&bob, reg.commit, name, &msg, T0 + 700);
    accepted(approval(&w, name, id));
}

#[test]
fn an_approval_made_before_a_policy_change_is_stale_at_push_time() {
    // The approval is dated before the change (made, then pushed late).
    let mut w = World::new();
    let admin = w.admin.clone();
    // A later policy change (carol's grant dropped).
    let text = crate::rules::fixtures::policy_text(&w.admin, &w.alice, &w.bob, &w.carol).replace(
        "user = \"carol\"\nrole = \"ml_engineer\"",
        "user = \"carol\"\nrole = \"viewer\"",
    );
    let files = tip_files_with(&mut w, POLICY_PATH, text.as_bytes());
    let tip = w.main.tip;
    let pc = w.commit_files(
        &admin,
        tip,
        &files,
        "policy\n\nMvault-Action: policy\n",
        T0 + 5_000,
    );
    w.advance_main(pc);
    let (n, id) = w.approval.clone();
    refused(approval(&w, &n, id), Rule::StaleRecord);
    // A replay judges it by the policy of its record.
    accepted(judge_approval(&w.src, &w.replay(), &n, &n, id));
}

#[test]
fn an_approval_dated_after_a_policy_change_but_naming_an_older_record_is_superseded() {
    let mut w = World::new();
    let admin = w.admin.clone();
    let old_record = w.main.tip;
    let text = crate::rules::fixtures::policy_text(&w.admin, &w.alice, &w.bob, &w.carol).replace(
        "user = \"carol\"\nrole = \"ml_engineer\"",
        "user = \"carol\"\nrole = \"viewer\"",
    );
    let files = tip_files_with(&mut w, POLICY_PATH, text.as_bytes());
    let pc = w.commit_files(
        &admin,
        old_record,
        &files,
        "policy\n\nMvault-Action: policy\n",
        T0 + 350,
    );
    w.advance_main(pc);
    let bob = w.bob.clone();
    let digest = w.bert.digest.clone();
    // Dated after the change (approval_tag dates at T0 + 400), naming the
    // record before it: a revoked approver could do exactly this.
    let (n, id) = approval_tag(&mut w, &bob, "bob", &message_of("bob", &digest, old_record));
    refused(approval(&w, &n, id), Rule::RecordSuperseded);
    refused(
        judge_approval(&w.src, &w.replay(), &n, &n, id),
        Rule::RecordSuperseded,
    );
    // Made against the record in force, the same approval is fine.
    let (n, id) = approval_tag(&mut w, &bob, "bob", &message_of("bob", &digest, pc));
    accepted(approval(&w, &n, id));
}
