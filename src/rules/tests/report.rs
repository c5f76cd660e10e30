//! Integrity reports (`rules::report`): a signed commit with no parent
//! and the empty tree, its message the report JSON, under
//! `refs/mvault/reports/<user>/<id>`, signed by the reporter, who pushes it.

use super::{accepted, refused};
use crate::model::report::{Check, IntegrityReport, REPORT_KIND, REPORT_SCHEMA};
use crate::rules::context::Context;
use crate::rules::fixtures::{rfc3339, TestKey, World, T0};
use crate::rules::report::judge_report;
use crate::rules::Rule;
use crate::store::objects::{ObjectId, ObjectKind};

const AT: i64 = T0 + 900;

fn report(by: &str) -> IntegrityReport {
    IntegrityReport {
        schema: REPORT_SCHEMA,
        kind: REPORT_KIND.into(),
        reporter: by.into(),
        time: rfc3339(AT),
        model: Some("nlp/bert".into()),
        version: Some("1.0.0".into()),
        check: Check::Digest,
        detail: "model.bin: digest check failed".into(),
        command: "pull".into(),
        main: None,
    }
}

/// The report commit `signer` makes of `r`: its id and the ref it names.
fn report_commit(w: &mut World, signer: &TestKey, r: &IntegrityReport) -> (ObjectId, String) {
    let empty = w.src.put(ObjectKind::Tree, Vec::new());
    let msg = r.to_message();
    let id = w.commit_tree(signer, &[], empty, &msg, AT);
    (id, IntegrityReport::ref_for(&r.reporter, msg.as_bytes()))
}

fn pushed_by<'a>(w: &'a World, pusher: &'a str) -> Context<'a> {
    Context {
        pusher: Some(pusher),
        ..w.server()
    }
}

#[test]
fn a_reader_reports_what_pull_found() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let (id, name) = report_commit(&mut w, &bob, &report("bob"));
    let a = accepted(judge_report(&w.src, &pushed_by(&w, "bob"), &name, id));
    assert_eq!(a.signer, "bob");
    assert_eq!(a.report.check, Check::Digest);
    assert!(
        a.accepted.what.contains("nlp/bert@1.0.0"),
        "{}",
        a.accepted.what
    );
}

#[test]
fn a_report_that_is_not_well_formed_is_refused() {
    let mut w = World::new();
    let bob = w.bob.clone();
    // Another id than the report's own.
    let (id, _) = report_commit(&mut w, &bob, &report("bob"));
    let ctx = pushed_by(&w, "bob");
    let wrong = "refs/mvault/reports/bob/0123456789abcdef";
    refused(judge_report(&w.src, &ctx, wrong, id), Rule::BadReport);
    // History smuggled in under a report ref: a commit with a parent.
    let tip = w.main.tip;
    let tree = w.src.put(ObjectKind::Tree, Vec::new());
    let msg = report("bob").to_message();
    let with_parent = w.commit_tree(&bob, &[tip], tree, &msg, AT);
    let name = IntegrityReport::ref_for("bob", msg.as_bytes());
    let ctx = pushed_by(&w, "bob");
    refused(
        judge_report(&w.src, &ctx, &name, with_parent),
        Rule::BadReport,
    );
    // A message that is no report.
    let junk = w.commit_tree(&bob, &[], tree, "{\"schema\": 1}\n", AT);
    let name = IntegrityReport::ref_for("bob", b"{\"schema\": 1}\n");
    let ctx = pushed_by(&w, "bob");
    refused(judge_report(&w.src, &ctx, &name, junk), Rule::BadReport);
}

#[test]
fn a_report_in_another_users_name_or_by_an_outsider_is_refused() {
    let mut w = World::new();
    let (bob, mallory, carol) = (w.bob.clone(), w.mallory.clone(), w.carol.clone());
    // Signed by bob, naming alice.
    let (id, name) = report_commit(&mut w, &bob, &report("alice"));
    refused(
        judge_report(&w.src, &pushed_by(&w, "alice"), &name, id),
        Rule::ReportSigner,
    );
    // Signed and named by bob, pushed by alice.
    let (id, name) = report_commit(&mut w, &bob, &report("bob"));
    let r = refused(
        judge_report(&w.src, &pushed_by(&w, "alice"), &name, id),
        Rule::ReportSigner,
    );
    assert!(r.detail.contains("alice pushed"), "{}", r.line());
    // A key in no policy entry.
    let (id, name) = report_commit(&mut w, &mallory, &report("mallory"));
    refused(
        judge_report(&w.src, &pushed_by(&w, "mallory"), &name, id),
        Rule::ReportSigner,
    );
    // An expired key.
    let (id, name) = report_commit(&mut w, &carol, &report("carol"));
    refused(
        judge_report(&w.src, &pushed_by(&w, "carol"), &name, id),
        Rule::ReportSigner,
    );
}
