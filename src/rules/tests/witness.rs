//! Witness refs (rules 95–97): only the witness a ref names, an auditor,
//! with its own signature, cosigning a receipt the server has.

use super::refused;
use crate::crypto::Signer;
use crate::model::policy::Policy;
use crate::model::policy::Role;
use crate::model::witness::CHECKPOINT_FORMAT;
use crate::model::witness::{Checkpoint, CHECKPOINT_FILE, WITNESS_NAMESPACE};
use crate::rules::fixtures::{commit_bytes, item, MemorySource, TestKey, NOW};
use crate::rules::witness::judge_witness;
use crate::rules::Rule;
use crate::store::objects::ObjectId;
use crate::store::objects::{EntryKind, ObjectKind};
use time::OffsetDateTime;

fn policy(admin: &TestKey, wanda: &TestKey, walt: &TestKey) -> Policy {
    let mut p = Policy::initial("admin", admin.public_key());
    for k in [wanda, walt] {
        p.add_user(&k.name, k.public_key(), None).expect("user");
    }
    p.grant("wanda", Role::Auditor, "**").expect("grant");
    p.grant("walt", Role::Viewer, "**").expect("grant");
    p
}

/// A cosignature commit of receipt 1 by `signer`, naming `witness`.
fn cosignature(src: &mut MemorySource, signer: &TestKey, witness: &str) -> ObjectId {
    let c = Checkpoint {
        format: CHECKPOINT_FORMAT.into(),
        witness: witness.into(),
        seq: 1,
        receipt: "ab".repeat(32),
        commit: "1".repeat(40),
        decision_log: "cd".repeat(32),
        server_time: "2023-11-14T22:13:20Z".into(),
        time: "2023-11-14T22:13:20Z".into(),
    };
    let body = src.blob(c.render().as_bytes());
    let sig = signer
        .sign(WITNESS_NAMESPACE, c.render().as_bytes())
        .expect("signs");
    let sig = src.blob(sig.as_bytes());
    let tree = src.tree(vec![
        item(CHECKPOINT_FILE, body, EntryKind::Blob),
        item(&format!("{CHECKPOINT_FILE}.sig"), sig, EntryKind::Blob),
    ]);
    let who = signer.at(NOW);
    src.put(
        ObjectKind::Commit,
        commit_bytes(tree, &[], &who, &who, "cosign\n", None),
    )
}

#[test]
fn a_witness_ref_moves_only_by_its_auditor_with_its_own_signature() {
    let (admin, wanda, walt) = (
        TestKey::new("admin", 1),
        TestKey::new("wanda", 7),
        TestKey::new("walt", 8),
    );
    let p = policy(&admin, &wanda, &walt);
    let now = OffsetDateTime::from_unix_timestamp(NOW).expect("time");
    let mut src = MemorySource::default();
    let by_wanda = cosignature(&mut src, &wanda, "wanda");
    let judge = |r: &str, id, pusher| judge_witness(&src, &p, r, None, id, Some(pusher), now);
    let r = "refs/mvault/witness/wanda";
    refused(judge(r, by_wanda, "walt"), Rule::WitnessRef);
    let e = refused(
        judge("refs/mvault/witness/walt", by_wanda, "walt"),
        Rule::WitnessRef,
    );
    assert!(e.detail.contains("auditor on **"), "{}", e.detail);
    let mut src2 = src.clone();
    let forged = cosignature(&mut src2, &walt, "wanda");
    let e = refused(
        judge_witness(&src2, &p, r, None, forged, Some("wanda"), now),
        Rule::BadCosignature,
    );
    assert!(e.detail.contains("signed by walt"), "{}", e.detail);
    // Wanda's own, but the server has no receipt 1.
    refused(judge(r, by_wanda, "wanda"), Rule::UnknownReceipt);
}
