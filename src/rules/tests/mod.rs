//! Unit tests of the rules core: every numbered rule, allowed and refused,
//! judged over objects in memory (`rules::fixtures`, layout 2), no git
//! process started. Each area has its file; this one holds the helpers, the
//! numbering tests and the coverage meta-test that keeps the lists below
//! honest.

mod commits;
mod deploy;
mod lifecycle;
mod parts;
mod payload;
mod promotions;
mod purge;
mod register;
mod report;
mod tags;
mod witness;

use super::fixtures::{Files, Registered, TestKey, World};
use super::{Refusal, Rule};
use crate::store::objects::ObjectId;

/// Rules a unit test here refuses with, by assertion (`refused(…, Rule::X)`).
const COVERED: &[Rule] = &[
    Rule::WitnessRef,
    Rule::BadCosignature,
    Rule::UnknownReceipt,
    Rule::MergeCommit,
    Rule::UnsignedCommit,
    Rule::BadCommitSignature,
    Rule::UnknownSigner,
    Rule::ExpiredKey,
    Rule::Misattributed,
    Rule::DatedBeforeParent,
    Rule::DatedInFuture,
    Rule::MalformedTree,
    Rule::BadFileMode,
    Rule::EmptyCommit,
    Rule::UnknownAction,
    Rule::UnknownFirstCommit,
    Rule::InitNotByRoot,
    Rule::BadPolicy,
    Rule::NoAdmin,
    Rule::Role,
    Rule::PusherRole,
    Rule::BadTrailers,
    Rule::BadName,
    Rule::ExistingContentChanged,
    Rule::FileOutsideVersion,
    Rule::VersionExists,
    Rule::NameCollision,
    Rule::BadManifest,
    Rule::ManifestDatedBeforeParent,
    Rule::BadManifestSignature,
    Rule::UnexpectedFile,
    Rule::MissingBlob,
    Rule::BlobSize,
    Rule::NotCiphertext,
    Rule::MissingKeyRing,
    Rule::KeyRingRecipients,
    Rule::BadPurge,
    Rule::PurgeNotArchived,
    Rule::PolicyNotByAdmin,
    Rule::MixedActions,
    Rule::NoAdminLeft,
    Rule::BadKeyRingName,
    Rule::LightweightTag,
    Rule::TagNameMismatch,
    Rule::TagTarget,
    Rule::TagDatedBeforeTarget,
    Rule::UnsignedTag,
    Rule::BadTagSignature,
    Rule::UnknownTagForm,
    Rule::TagDigest,
    Rule::RecordSuperseded,
    Rule::StaleRecord,
    Rule::BadApproval,
    Rule::ApprovalSigner,
    Rule::ApprovalDigest,
    Rule::SelfApproval,
    Rule::BadPromotion,
    Rule::WrongCounter,
    Rule::BrokenChain,
    Rule::PromotionDigest,
    Rule::WrongStage,
    Rule::StageSkipped,
    Rule::BadRollback,
    Rule::TicketRequired,
    Rule::UnknownApproval,
    Rule::ApprovalForOther,
    Rule::NotEnoughApprovals,
    Rule::BadDeployment,
    Rule::UnknownEnvironment,
    Rule::EnvironmentNotAllowed,
    Rule::NotInEnvironmentStage,
    Rule::Internal,
    Rule::TooManyVersions,
    Rule::RetentionNotDue,
    Rule::RecordBehindModel,
    Rule::ArchiveBackdated,
    Rule::BadReport,
    Rule::ReportSigner,
];

/// Rules that judge push facts the core never sees (how refs move, who
/// pushes, the push's size, the hook's own configuration), each with the
/// driver that owns it. Their tests are the push tests of the drivers.
const DRIVER_OWNED: &[(Rule, &str)] = &[
    (Rule::UnknownNamespace, "src/verify/receive.rs"),
    (Rule::Deletion, "src/verify/receive.rs"),
    (Rule::StaleUpdate, "src/verify/receive.rs"),
    (Rule::NonFastForward, "src/verify/receive.rs"),
    (Rule::PushTooLarge, "src/verify/receive.rs"),
    (Rule::MissingObject, "src/verify/receive.rs"),
    (Rule::UnknownPusher, "src/verify/receive.rs"),
    (Rule::PolicyNotLast, "src/verify/receive.rs"),
    (Rule::TagMoved, "src/verify/receive.rs"),
    (Rule::PayloadRefMissing, "src/verify/receive.rs"),
    (Rule::PayloadRefWithoutVersion, "src/verify/receive.rs"),
    (Rule::PayloadMismatch, "src/verify/receive.rs"),
    (Rule::PayloadRefMoved, "src/verify/receive.rs"),
    (Rule::CounterNotClaimed, "src/verify/receive.rs"),
    (Rule::HookNotConfigured, "src/verify/receive.rs"),
    (Rule::ReportMixed, "src/verify/receive.rs"),
    (Rule::ReportRewritten, "src/verify/receive.rs"),
    (Rule::ReceiptsRef, "src/verify/receive.rs"),
];

/// The test sources, to check that every covered rule is asserted.
const SOURCES: &[&str] = &[
    include_str!("commits.rs"),
    include_str!("lifecycle.rs"),
    include_str!("deploy.rs"),
    include_str!("parts.rs"),
    include_str!("payload.rs"),
    include_str!("promotions.rs"),
    include_str!("purge.rs"),
    include_str!("register.rs"),
    include_str!("report.rs"),
    include_str!("tags.rs"),
    include_str!("witness.rs"),
];

/// The refusal of `r`, which must be under `rule`.
#[track_caller]
pub(super) fn refused<T: std::fmt::Debug>(r: Result<T, Refusal>, rule: Rule) -> Refusal {
    match r {
        Ok(v) => panic!("expected a refusal under {rule:?}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.rule, rule, "refused under the wrong rule: {}", e.line());
            e
        }
    }
}

/// `r` accepted.
#[track_caller]
pub(super) fn accepted<T>(r: Result<T, Refusal>) -> T {
    r.unwrap_or_else(|e| panic!("expected acceptance, got {}", e.line()))
}

/// A valid registration of nlp/bert@`version` by `who` on main's tip at
/// `time`, put on main; its tag stored.
pub(super) fn register_version(
    w: &mut World,
    who: &TestKey,
    version: &str,
    time: i64,
) -> Registered {
    let tip = w.main.tip;
    let draft = w.version_draft(who, version, time);
    let (files, digest) = w.version_files(tip, &draft, who, false);
    let msg = super::fixtures::register_message("nlp/bert", version, &digest, None);
    let commit = w.commit_files(who, tip, &files, &msg, time);
    w.advance_main(commit);
    let tag_name = format!("nlp/bert@v{version}");
    let tag = w.tag(
        who,
        commit,
        &tag_name,
        &format!("register nlp/bert@{version}\n\nMvault-Manifest-Sha256: {digest}\n"),
        time,
    );
    let payload = w.publish_payload(&draft);
    Registered {
        commit,
        digest,
        tag_name,
        tag,
        payload,
    }
}

/// The files of main's tip with one more blob at `path`.
pub(super) fn tip_files_with(w: &mut World, path: &str, bytes: &[u8]) -> Files {
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        path.to_owned(),
        (w.src.blob(bytes), crate::store::objects::EntryKind::Blob),
    );
    files
}

/// The id of a commit the world's source does not hold.
pub(super) fn absent_id() -> ObjectId {
    crate::store::objects::object_id(crate::store::objects::ObjectKind::Commit, b"absent")
}

#[test]
fn every_rule_has_a_distinct_number_and_name() {
    let names: std::collections::BTreeSet<_> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), Rule::ALL.len());
    let numbers: std::collections::BTreeSet<_> = Rule::ALL.iter().map(|r| r.number()).collect();
    assert_eq!(numbers.len(), Rule::ALL.len());
    for (i, r) in Rule::ALL.iter().enumerate() {
        // Rules up to the last one numbered by place keep their place.
        if i < 86 {
            assert_eq!(r.number(), i + 1);
        }
        // Every later rule has the number it was given, past 86.
        if i >= 86 {
            assert!(r.number() > 86, "{r:?}");
        }
    }
}

#[test]
fn docs_number_every_rule_as_the_code_does() {
    let doc = include_str!("../../../docs/hook.md");
    for r in Rule::ALL {
        let row = format!("| {} | {} |", r.number(), r.name());
        assert!(doc.contains(&row), "docs/hook.md lacks the row {row:?}");
    }
}

/// Whether `src` passes `Rule::R` as the last argument of a call, as in
/// `refused(…, Rule::R)` however rustfmt lays it out.
fn asserts_refusal(src: &str, rule: Rule) -> bool {
    let needle = format!("Rule::{rule:?}");
    src.match_indices(&needle).any(|(at, _)| {
        let rest = src[at + needle.len()..].trim_start();
        rest.starts_with(')')
            || rest
                .strip_prefix(',')
                .is_some_and(|r| r.trim_start().starts_with(')'))
    })
}

#[test]
fn every_rule_has_a_unit_test_or_a_driver_that_owns_it() {
    let receive = include_str!("../../verify/receive.rs");
    let mut seen = std::collections::BTreeSet::new();
    for r in COVERED {
        assert!(seen.insert(*r), "{r:?} listed twice");
        assert!(
            SOURCES.iter().any(|s| asserts_refusal(s, *r)),
            "{r:?} is listed as covered but no test asserts a refusal under it"
        );
    }
    for (r, driver) in DRIVER_OWNED {
        assert!(seen.insert(*r), "{r:?} is both covered and driver-owned");
        assert!(r.push_only(), "{r:?} is driver-owned but not push-only");
        assert_eq!(*driver, "src/verify/receive.rs");
        assert!(
            receive.contains(&format!("Rule::{r:?},")),
            "{driver} does not judge {r:?}"
        );
    }
    let missing: Vec<_> = Rule::ALL.iter().filter(|r| !seen.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "rules with neither a unit test nor an owning driver: {missing:?}"
    );
    assert_eq!(seen.len(), Rule::ALL.len());
}
