//! The pure rules core: every rule of the record, written once.
//!
//! A rule takes checked objects (parsed from raw bytes that reach it
//! through [`ObjectSource`]) and a [`Context`] (the root keys, the clock,
//! the pusher if any, and which commits are on `main`), and returns an
//! [`Accepted`] or a [`Refusal`] whose [`Rule`] is numbered as in
//! docs/hook.md. Nothing here runs git, reads the environment or the
//! clock, or prints: the drivers in `crate::verify` (pre-receive, pre-push,
//! replay) build the context and call the same functions, so they cannot
//! disagree. Every missing fact is a refusal, never a silent pass.

pub mod approvals;
pub mod commit;
pub mod context;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod payload;
pub mod promotion;
pub mod receipts;
pub mod report;
pub mod ring;
pub mod source;
pub mod stages;
pub mod tags;
pub mod tree;
pub mod witness;

use serde::Serialize;

pub use crate::model::text::escape;
pub use context::{Clock, Context, MainLine, RootKeys};
pub use source::ObjectSource;

/// Every rule, in the order of docs/hook.md: its number is its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum Rule {
    // Refs (push facts).
    UnknownNamespace,
    Deletion,
    StaleUpdate,
    NonFastForward,
    MergeCommit,
    PushTooLarge,
    MissingObject,
    UnknownPusher,
    PolicyNotLast,
    // Commits.
    UnsignedCommit,
    BadCommitSignature,
    UnknownSigner,
    ExpiredKey,
    Misattributed,
    DatedBeforeParent,
    DatedInFuture,
    MalformedTree,
    BadFileMode,
    EmptyCommit,
    UnknownAction,
    UnknownFirstCommit,
    InitNotByRoot,
    BadPolicy,
    NoAdmin,
    Role,
    PusherRole,
    BadTrailers,
    BadName,
    ExistingContentChanged,
    FileOutsideVersion,
    VersionExists,
    NameCollision,
    BadManifest,
    ManifestDatedBeforeParent,
    BadManifestSignature,
    UnexpectedFile,
    MissingBlob,
    BlobSize,
    NotCiphertext,
    MissingKeyRing,
    KeyRingRecipients,
    PayloadRefMissing,
    PayloadRefWithoutVersion,
    PayloadMismatch,
    PayloadRefMoved,
    BadPurge,
    PurgeNotArchived,
    PolicyNotByAdmin,
    MixedActions,
    NoAdminLeft,
    BadKeyRingName,
    // Tags.
    TagMoved,
    LightweightTag,
    TagNameMismatch,
    TagTarget,
    TagDatedBeforeTarget,
    UnsignedTag,
    BadTagSignature,
    UnknownTagForm,
    TagDigest,
    RecordSuperseded,
    StaleRecord,
    BadApproval,
    ApprovalSigner,
    ApprovalDigest,
    SelfApproval,
    BadPromotion,
    CounterNotClaimed,
    WrongCounter,
    BrokenChain,
    PromotionDigest,
    WrongStage,
    StageSkipped,
    BadRollback,
    TicketRequired,
    UnknownApproval,
    ApprovalForOther,
    NotEnoughApprovals,
    // Deployments.
    BadDeployment,
    UnknownEnvironment,
    EnvironmentNotAllowed,
    NotInEnvironmentStage,
    // Lifecycle: per-model settings.
    TooManyVersions,
    RetentionNotDue,
    // The hook itself.
    HookNotConfigured,
    Internal,
    // Review of issue 10 (rules 87-89).
    RecordBehindModel,
    ArchiveBackdated,
    // Receipts (rule 90).
    ReceiptsRef,
    // Witnesses (rules 95 to 97).
    WitnessRef,
    BadCosignature,
    UnknownReceipt,
    // Integrity reports (rules 98 to 101).
    BadReport,
    ReportSigner,
    ReportMixed,
    ReportRewritten,
}

impl Rule {
    /// Every rule, in number order.
    pub const ALL: &'static [Rule] = &[
        Rule::UnknownNamespace,
        Rule::Deletion,
        Rule::StaleUpdate,
        Rule::NonFastForward,
        Rule::MergeCommit,
        Rule::PushTooLarge,
        Rule::MissingObject,
        Rule::UnknownPusher,
        Rule::PolicyNotLast,
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
        Rule::PayloadRefMissing,
        Rule::PayloadRefWithoutVersion,
        Rule::PayloadMismatch,
        Rule::PayloadRefMoved,
        Rule::BadPurge,
        Rule::PurgeNotArchived,
        Rule::PolicyNotByAdmin,
        Rule::MixedActions,
        Rule::NoAdminLeft,
        Rule::BadKeyRingName,
        Rule::TagMoved,
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
        Rule::CounterNotClaimed,
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
        Rule::TooManyVersions,
        Rule::RetentionNotDue,
        Rule::HookNotConfigured,
        Rule::Internal,
        Rule::RecordBehindModel,
        Rule::ArchiveBackdated,
        Rule::ReceiptsRef,
        Rule::WitnessRef,
        Rule::BadCosignature,
        Rule::UnknownReceipt,
        Rule::BadReport,
        Rule::ReportSigner,
        Rule::ReportMixed,
        Rule::ReportRewritten,
    ];

    /// Rules numbered apart from their place in [`Rule::ALL`]: numbers
    /// were handed out in blocks to work done side by side, so a block may
    /// start past the end of the one before. Every rule after the 86th is
    /// listed here.
    const NUMBERED: &'static [(Rule, usize)] = &[
        (Rule::RecordBehindModel, 87),
        (Rule::ArchiveBackdated, 88),
        (Rule::ReceiptsRef, 90),
        (Rule::WitnessRef, 95),
        (Rule::BadCosignature, 96),
        (Rule::UnknownReceipt, 97),
        (Rule::BadReport, 98),
        (Rule::ReportSigner, 99),
        (Rule::ReportMixed, 100),
        (Rule::ReportRewritten, 101),
    ];

    /// The rule's number in docs/hook.md.
    pub fn number(self) -> usize {
        if let Some((_, n)) = Rule::NUMBERED.iter().find(|(r, _)| *r == self) {
            return *n;
        }
        Rule::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every rule is listed")
            + 1
    }

    /// The rule's name, as the pusher and the auditor see it.
    pub fn name(self) -> &'static str {
        use Rule::*;
        match self {
            UnknownNamespace => "unknown ref namespace",
            Deletion => "deletion",
            StaleUpdate => "stale update",
            NonFastForward => "non-fast-forward",
            MergeCommit => "merge commit",
            PushTooLarge => "push too large",
            MissingObject => "missing object",
            UnknownPusher => "unknown pusher",
            PolicyNotLast => "policy change not last in its push",
            UnsignedCommit => "unsigned commit",
            BadCommitSignature => "bad commit signature",
            UnknownSigner => "unknown signer",
            ExpiredKey => "expired key",
            Misattributed => "misattributed",
            DatedBeforeParent => "dated before its parent",
            DatedInFuture => "dated in the future",
            MalformedTree => "malformed tree",
            BadFileMode => "bad file mode",
            EmptyCommit => "empty commit",
            UnknownAction => "unknown action",
            UnknownFirstCommit => "unknown first commit",
            InitNotByRoot => "init not signed by a root key",
            BadPolicy => "bad policy",
            NoAdmin => "no admin",
            Role => "role",
            PusherRole => "pusher role",
            BadTrailers => "bad trailers",
            BadName => "bad name",
            ExistingContentChanged => "existing content changed",
            FileOutsideVersion => "file outside version directory",
            VersionExists => "version exists",
            NameCollision => "name collision",
            BadManifest => "bad manifest",
            ManifestDatedBeforeParent => "manifest dated before its parent",
            BadManifestSignature => "bad manifest signature",
            UnexpectedFile => "unexpected file",
            MissingBlob => "missing blob",
            BlobSize => "blob size",
            NotCiphertext => "not ciphertext",
            MissingKeyRing => "missing key ring",
            KeyRingRecipients => "key ring recipients",
            PayloadRefMissing => "payload ref missing",
            PayloadRefWithoutVersion => "payload ref without its version",
            PayloadMismatch => "payload does not match the manifest",
            PayloadRefMoved => "payload ref moved",
            BadPurge => "bad purge",
            PurgeNotArchived => "purge of a version not archived",
            PolicyNotByAdmin => "policy change not signed by an admin",
            MixedActions => "mixed actions",
            NoAdminLeft => "no admin left",
            BadKeyRingName => "bad key ring name",
            TagMoved => "tag moved",
            LightweightTag => "lightweight tag",
            TagNameMismatch => "tag name mismatch",
            TagTarget => "tag target",
            TagDatedBeforeTarget => "tag dated before its commit",
            UnsignedTag => "unsigned tag",
            BadTagSignature => "bad tag signature",
            UnknownTagForm => "unknown tag form",
            TagDigest => "tag digest",
            RecordSuperseded => "record superseded",
            StaleRecord => "stale record",
            BadApproval => "bad approval",
            ApprovalSigner => "approval signer",
            ApprovalDigest => "approval digest",
            SelfApproval => "self-approval",
            BadPromotion => "bad promotion",
            CounterNotClaimed => "promotion counter not claimed",
            WrongCounter => "wrong counter",
            BrokenChain => "broken chain",
            PromotionDigest => "promotion digest",
            WrongStage => "wrong stage",
            StageSkipped => "stage skipped",
            BadRollback => "bad rollback",
            TicketRequired => "ticket required",
            UnknownApproval => "unknown approval",
            ApprovalForOther => "approval for another version or stage",
            NotEnoughApprovals => "not enough approvals",
            BadDeployment => "bad deployment",
            UnknownEnvironment => "unknown environment",
            EnvironmentNotAllowed => "environment not allowed",
            NotInEnvironmentStage => "not in the environment's stage",
            HookNotConfigured => "hook not configured",
            Internal => "internal error",
            ReceiptsRef => "receipts are the server's",
            WitnessRef => "witness ref",
            BadCosignature => "bad cosignature",
            UnknownReceipt => "cosignature of an unknown receipt",
            TooManyVersions => "too many versions",
            RetentionNotDue => "retention not due",
            RecordBehindModel => "record behind a deployment",
            ArchiveBackdated => "archive tag backdated",
            BadReport => "bad integrity report",
            ReportSigner => "report signer",
            ReportMixed => "report mixed with other updates",
            ReportRewritten => "report rewritten",
        }
    }

    /// Whether the rule judges a fact only the server sees while a push is
    /// under way (who pushes, how refs move, what main was at that moment):
    /// a replay of the repository cannot name it, by construction.
    pub fn push_only(self) -> bool {
        use Rule::*;
        matches!(
            self,
            UnknownNamespace
                | Deletion
                | StaleUpdate
                | NonFastForward
                | PushTooLarge
                | MissingObject
                | UnknownPusher
                | PusherRole
                | PolicyNotLast
                | DatedInFuture
                | TagMoved
                | PayloadRefMissing
                | PayloadRefWithoutVersion
                | PayloadMismatch
                | PayloadRefMoved
                | StaleRecord
                | CounterNotClaimed
                | HookNotConfigured
                | Internal
                | RecordBehindModel
                | ArchiveBackdated
                | BadReport
                | ReportSigner
                | ReportMixed
                | ReportRewritten
                | ReceiptsRef
                | WitnessRef
                | BadCosignature
                | UnknownReceipt
        )
    }
}

impl From<Rule> for &'static str {
    fn from(r: Rule) -> Self {
        r.name()
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why something is refused: the rule, the subject (a ref, a commit, a
/// tag), what was found against what was expected, and a way out.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub rule: Rule,
    /// The ref or object the refusal is about.
    pub subject: String,
    pub detail: String,
    pub hint: String,
}

impl Refusal {
    /// A refusal of `subject` under `rule`.
    pub fn new(
        rule: Rule,
        subject: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Refusal {
            rule,
            subject: subject.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    /// The same refusal, about another subject (the ref a driver judged).
    pub fn about(mut self, subject: &str) -> Self {
        self.subject = subject.to_owned();
        self
    }

    /// An internal failure (an unreadable object, say): the judgement
    /// fails closed.
    pub fn internal(subject: &str, e: impl std::fmt::Display) -> Self {
        Refusal::new(
            Rule::Internal,
            subject,
            e.to_string(),
            "the check fails closed; ask the server admin to run mvault hook check",
        )
    }

    /// The line a person sees, attacker-controlled text escaped.
    pub fn line(&self) -> String {
        format!(
            "mvault: refused {}: {}: {}",
            escape(&self.subject),
            self.rule,
            escape(&self.detail)
        )
    }
}

/// What a rule accepted, for the decision log.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub subject: String,
    pub what: String,
}

#[cfg(test)]
mod tests;
