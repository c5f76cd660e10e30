//! Purge commits (`rules::commit::purge`): one new `purge.toml` beside an
//! archived version's manifest, signed by an ml_admin of the model, naming
//! the version, the signer and the commit's own date. The push that holds
//! one may delete that version's payload ref (judged by the driver).

use super::{accepted, refused};
use crate::model::names::{ModelName, Stage, Version};
use crate::model::purge::PurgeRecord;
use crate::rules::commit::{judge_commit, Action, CommitVerdict};
use crate::rules::context::Context;
use crate::rules::fixtures::{purge_message, rfc3339, Files, TestKey, World, T0};
use crate::rules::{Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};

const PURGE: &str = "models/nlp/bert/1.0.0/purge.toml";
/// When the purge commits of these tests are made.
const AT: i64 = T0 + 600;

fn judge(w: &World, id: ObjectId) -> Result<CommitVerdict, Refusal> {
    judge_commit(&w.src, &w.server(), "refs/heads/main", id)
}

/// Say that nlp/bert@1.0.0 is archived, as its promotion tags would.
fn archive(w: &mut World) {
    let (m, v) = (w.model.clone(), w.version.clone());
    w.main.set_stage(&m, &v, Stage::Archived);
}

/// The record `ops::purge` writes for nlp/bert@1.0.0 purged by `by` at `AT`.
fn record(w: &World, by: &str) -> PurgeRecord {
    PurgeRecord {
        model: w.model.clone(),
        version: w.version.clone(),
        purged_by: by.to_owned(),
        time: rfc3339(AT),
        reason: "retention: archived for 400 days".into(),
    }
}

/// main's tip files with `text` at `path`.
fn with_record(w: &mut World, path: &str, text: &[u8]) -> Files {
    let mut files = w.files[&w.main.tip].clone();
    files.insert(path.to_owned(), (w.src.blob(text), EntryKind::Blob));
    files
}

/// A purge commit of `files` on main's tip by `who` at `AT`, with `message`.
fn commit(w: &mut World, who: &TestKey, files: &Files, message: &str) -> ObjectId {
    let tip = w.main.tip;
    w.commit_files(who, tip, files, message, AT)
}

fn message() -> String {
    purge_message("nlp/bert", "1.0.0", "retention: archived for 400 days")
}

/// A purge of nlp/bert@1.0.0 by `who` whose record is `text`.
fn purge_with_text(w: &mut World, who: &TestKey, text: &str) -> ObjectId {
    let files = with_record(w, PURGE, text.as_bytes());
    commit(w, who, &files, &message())
}

/// A purge of nlp/bert@1.0.0 by `who`, its record bent by `bend`.
fn purge_bent(w: &mut World, who: &TestKey, bend: impl FnOnce(&mut PurgeRecord)) -> ObjectId {
    let mut r = record(w, &who.name);
    bend(&mut r);
    purge_with_text(w, who, &r.to_canonical())
}

#[test]
fn a_purge_of_an_archived_version_by_an_admin_is_accepted() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let id = purge_bent(&mut w, &admin, |_| {});
    let v = accepted(judge(&w, id));
    assert_eq!(
        v.action,
        Action::Purge {
            model: "nlp/bert".into(),
            version: "1.0.0".into()
        }
    );
    assert_eq!(v.signer.as_deref(), Some("admin"));
    assert!(v.accepted.what.contains("purge nlp/bert@1.0.0 by admin"));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
    // Pushed by the admin too.
    let ctx = Context {
        pusher: Some("admin"),
        ..w.server()
    };
    accepted(judge_commit(&w.src, &ctx, "main", id));
}

#[test]
fn a_purge_of_a_version_not_archived_is_refused() {
    let mut w = World::new();
    let admin = w.admin.clone();
    // The world's 1.0.0 is in production.
    let id = purge_bent(&mut w, &admin, |_| {});
    let e = refused(judge(&w, id), Rule::PurgeNotArchived);
    assert!(e.line().contains("production"), "{}", e.line());
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::PurgeNotArchived,
    );
    for stage in [Stage::Development, Stage::Staging, Stage::Deprecated] {
        let (m, v) = (w.model.clone(), w.version.clone());
        w.main.set_stage(&m, &v, stage);
        refused(judge(&w, id), Rule::PurgeNotArchived);
    }
    archive(&mut w);
    accepted(judge(&w, id));
}

#[test]
fn a_purge_record_that_does_not_match_its_commit_is_refused() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    // Naming another version, or another model, than the trailers.
    let id = purge_bent(&mut w, &admin, |r| {
        r.version = Version::parse("1.1.0").expect("valid")
    });
    refused(judge(&w, id), Rule::BadPurge);
    let id = purge_bent(&mut w, &admin, |r| {
        r.model = ModelName::parse("nlp/gpt").expect("valid")
    });
    refused(judge(&w, id), Rule::BadPurge);
    // Dated otherwise than its commit, either way.
    let id = purge_bent(&mut w, &admin, |r| r.time = rfc3339(AT - 1));
    refused(judge(&w, id), Rule::BadPurge);
    let id = purge_bent(&mut w, &admin, |r| r.time = rfc3339(AT + 1));
    refused(judge(&w, id), Rule::BadPurge);
    // Not canonical: a comment, a blank line, another key order.
    let text = record(&w, "admin").to_canonical();
    let id = purge_with_text(&mut w, &admin, &format!("# purged\n{text}"));
    refused(judge(&w, id), Rule::BadPurge);
    let id = purge_with_text(&mut w, &admin, &format!("{text}\n"));
    refused(judge(&w, id), Rule::BadPurge);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    let id = purge_with_text(&mut w, &admin, &format!("{}\n", lines.join("\n")));
    refused(judge(&w, id), Rule::BadPurge);
    // No reason, an unknown key, not UTF-8.
    let id = purge_bent(&mut w, &admin, |r| r.reason = String::new());
    refused(judge(&w, id), Rule::BadPurge);
    let id = purge_with_text(&mut w, &admin, &format!("{text}extra = 1\n"));
    refused(judge(&w, id), Rule::BadPurge);
    let files = with_record(&mut w, PURGE, b"model = \"\xff\"\n");
    let id = commit(&mut w, &admin, &files, &message());
    refused(judge(&w, id), Rule::BadPurge);
}

#[test]
fn a_purge_of_a_version_not_in_the_vault_is_refused() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let mut r = record(&w, "admin");
    r.version = Version::parse("2.0.0").expect("valid");
    let files = with_record(
        &mut w,
        "models/nlp/bert/2.0.0/purge.toml",
        r.to_canonical().as_bytes(),
    );
    let msg = purge_message("nlp/bert", "2.0.0", "retention");
    let id = commit(&mut w, &admin, &files, &msg);
    let e = refused(judge(&w, id), Rule::BadPurge);
    assert!(e.line().contains("not in the vault"), "{}", e.line());
}

#[test]
fn a_purge_without_its_trailers_or_with_bad_names_is_refused() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let text = record(&w, "admin").to_canonical();
    let files = with_record(&mut w, PURGE, text.as_bytes());
    let id = commit(
        &mut w,
        &admin,
        &files,
        &message().replace("Mvault-Version: 1.0.0\n", ""),
    );
    refused(judge(&w, id), Rule::BadTrailers);
    let id = commit(
        &mut w,
        &admin,
        &files,
        &message().replace("Mvault-Model: nlp/bert\n", ""),
    );
    refused(judge(&w, id), Rule::BadTrailers);
    let id = commit(
        &mut w,
        &admin,
        &files,
        &message().replace("Mvault-Version: 1.0.0", "Mvault-Version: v1"),
    );
    refused(judge(&w, id), Rule::BadName);
}

#[test]
fn a_purge_signed_or_pushed_without_ml_admin_is_refused() {
    let mut w = World::new();
    archive(&mut w);
    // alice registered 1.0.0 and may promote it, but not purge it; bob
    // approves, no more.
    for who in [w.alice.clone(), w.bob.clone()] {
        let id = purge_bent(&mut w, &who, |_| {});
        let e = refused(judge(&w, id), Rule::Role);
        assert!(e.line().contains("ml_admin"), "{}", e.line());
        refused(judge_commit(&w.src, &w.replay(), "main", id), Rule::Role);
    }
    // The admin's purge, pushed by alice.
    let admin = w.admin.clone();
    let id = purge_bent(&mut w, &admin, |_| {});
    let ctx = Context {
        pusher: Some("alice"),
        ..w.server()
    };
    refused(judge_commit(&w.src, &ctx, "main", id), Rule::PusherRole);
}

#[test]
fn a_purge_record_naming_another_purger_is_misattributed() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let id = purge_bent(&mut w, &admin, |r| r.purged_by = "alice".into());
    refused(judge(&w, id), Rule::Misattributed);
    let id = purge_bent(&mut w, &admin, |r| r.purged_by = "root".into());
    refused(judge(&w, id), Rule::Misattributed);
}

#[test]
fn a_purge_that_changes_anything_else_is_refused() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let text = record(&w, "admin").to_canonical();
    // Another file beside it, anywhere.
    for path in [
        "README.md",
        "models/nlp/bert/1.0.0/notes.txt",
        "models/nlp/bert/1.0.0/purge.toml.bak",
    ] {
        let mut files = with_record(&mut w, PURGE, text.as_bytes());
        files.insert(path.into(), (w.src.blob(b"x"), EntryKind::Blob));
        let id = commit(&mut w, &admin, &files, &message());
        refused(judge(&w, id), Rule::FileOutsideVersion);
    }
    // The version's manifest removed with it: the record goes nowhere.
    let mut files = with_record(&mut w, PURGE, text.as_bytes());
    files.remove("models/nlp/bert/1.0.0/manifest.toml");
    let id = commit(&mut w, &admin, &files, &message());
    refused(judge(&w, id), Rule::FileOutsideVersion);
    // The record under another version's directory than the trailers name.
    let files = with_record(&mut w, "models/nlp/bert/1.1.0/purge.toml", text.as_bytes());
    let id = commit(&mut w, &admin, &files, &message());
    refused(judge(&w, id), Rule::FileOutsideVersion);
}

#[test]
fn a_version_is_purged_once() {
    let mut w = World::new();
    archive(&mut w);
    let admin = w.admin.clone();
    let first = purge_bent(&mut w, &admin, |_| {});
    accepted(judge(&w, first));
    w.advance_main(first);
    let mut r = record(&w, "admin");
    r.time = rfc3339(AT + 60);
    let files = with_record(&mut w, PURGE, r.to_canonical().as_bytes());
    let tip = w.main.tip;
    let id = w.commit_files(&admin, tip, &files, &message(), AT + 60);
    refused(judge(&w, id), Rule::ExistingContentChanged);
}
