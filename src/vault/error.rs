//! [`VaultError`]: every failure of a vault operation, its kind (which
//! chooses the exit code) and its hint (the way out).

use crate::crypto::{KeyError, SignatureError};
use crate::model::manifest::ManifestError;
use crate::model::names::{ModelName, NameError, Stage, Version};
use crate::model::policy::{Denial, PolicyError, Remedy, POLICY_PATH};
use crate::store::StoreError;

use super::{ErrorKind, TagDistrust};

/// Any failure of a vault operation.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Denied(#[from] Denial),
    /// The policy in the repository does not parse.
    #[error("{path}: {source}")]
    Policy { path: String, source: PolicyError },
    /// The repository has no mvault record.
    #[error("this repository has no mvault vault (no {POLICY_PATH} on main)")]
    NotAVault,
    /// The signing key is not in the policy.
    #[error("key {fingerprint} ({path}) belongs to no user in the policy")]
    UnknownKey { fingerprint: String, path: String },
    /// The version is not in the vault.
    #[error("{model}@{version} is not in this vault")]
    NoSuchVersion { model: String, version: String },
    /// The model has no versions.
    #[error("model {model} has no versions in this vault")]
    NoSuchModel { model: String },
    /// The model has as many versions not archived as its `max_versions`.
    #[error("{model} has {counted} version(s) not archived and the policy's max_versions for it is {cap}; {model}@{version} would make {}", counted + 1)]
    TooManyVersions {
        model: String,
        version: String,
        cap: u32,
        counted: usize,
        /// The oldest version not archived, for the hint.
        oldest: Option<String>,
    },
    /// A purge by the model's purge_role of a version whose retention is
    /// not due yet.
    #[error("{model}@{version} was archived at {archived}; its retention of {retention_days} day(s) is due at {due}")]
    RetentionNotDue {
        model: String,
        version: String,
        archived: String,
        retention_days: u32,
        due: String,
    },
    /// The version exists already; versions are written once.
    #[error("{model}@{version} already exists; a published version is never changed (register a new version)")]
    VersionExists { model: String, version: String },
    /// The input is unusable.
    #[error("{path}: {reason}")]
    Input { path: String, reason: String },
    /// A promotion the stage machine does not allow.
    #[error("{model}@{version} is in {from}; {}", crate::rules::stages::refused_move(*from, *to))]
    StageMove {
        model: ModelName,
        version: Version,
        from: Stage,
        to: Stage,
    },
    /// A manifest does not parse or breaks a rule.
    #[error("{path}: {source}")]
    Manifest { path: String, source: ManifestError },
    /// A signature does not verify.
    #[error("{what}: signature check failed: {source}")]
    Signature {
        what: String,
        source: SignatureError,
    },
    /// The record does not replay: a rule of the hook breaks at `object`.
    #[error("integrity check failed: the record is broken at {object}: {rule}: {detail}")]
    RecordBroken {
        object: String,
        rule: String,
        detail: String,
    },
    /// A signature verifies but its key had no right to make it.
    #[error("{what}: signed by {signer}, who {reason}")]
    Signer {
        what: String,
        signer: String,
        reason: String,
    },
    /// A file or blob does not match the manifest.
    #[error("{path}: {check} check failed: expected {expected}, found {found}")]
    Mismatch {
        path: String,
        check: &'static str,
        expected: String,
        found: String,
    },
    /// The key cannot unwrap the model's data key.
    #[error("cannot read {model}: {reason}")]
    NoReadAccess { model: String, reason: String },
    /// Decryption failed.
    #[error("{path}: decryption failed: {reason}")]
    Decrypt { path: String, reason: String },
    /// A push lost a race: the server's ref moved or exists (another push
    /// came first); nothing was published.
    #[error("push to {remote} failed: another push came first")]
    PushRace { remote: String },
    /// A push was refused or failed.
    #[error("push to {remote} failed: {detail}")]
    Push { remote: String, detail: String },
    /// A deployed directory does not match.
    #[error("{dir} does not match {model}@{version}: {count} problem(s)")]
    DirMismatch {
        dir: String,
        model: String,
        version: String,
        count: usize,
    },
    /// A tag is not believed: it does not chain back through `main`.
    #[error("tag {tag} (target {target}) is not believed: {reason}")]
    UntrustedTag {
        tag: String,
        target: String,
        reason: TagDistrust,
    },
    /// The server offered a tag that differs from the clone's own.
    #[error("the server's tag {tag} is {remote}, the local one is {local}: a published tag never changes, so the local one was kept and nothing was updated")]
    TagReplaced {
        tag: String,
        local: String,
        remote: String,
    },
    /// The server's `main` does not fast-forward from the local one.
    #[error("the main of {remote} ({theirs}) does not descend from the local main ({ours}): the server rewrote history; nothing was updated")]
    MainRewritten {
        remote: String,
        ours: String,
        theirs: String,
    },
    /// The server serves an older receipt chain, timestamp or `main` than
    /// this clone has seen (rollback), or a timestamp, receipt and `main`
    /// that do not belong together (mix-and-match).
    #[error("{remote}: {detail}; nothing was updated")]
    Rollback { remote: String, detail: String },
    /// The server's newest signed timestamp is older than `--max-age`
    /// (freeze).
    #[error("{remote}: the server's newest signed timestamp ({time}) is {age} old, more than --max-age {max_age}: the server may be frozen (serving an old record); nothing was updated")]
    Frozen {
        remote: String,
        time: String,
        age: String,
        max_age: String,
    },
    /// A receipt or timestamp the vault's pinned server key does not vouch for.
    #[error("{remote}: {detail}; nothing was updated")]
    ReceiptNotBelieved { remote: String, detail: String },
    /// A version may not go to an environment: the policy does not define
    /// it, it does not serve the model, or the version is not in the stage
    /// it requires.
    #[error("{model}@{version} is not deployable to {environment}: {reason}")]
    NotDeployable {
        model: String,
        version: String,
        environment: String,
        reason: String,
        hint: String,
    },
    /// The version's payload was purged; its record stays.
    #[error("{model}@{version} was purged on {date} by {by}: {reason}")]
    Purged {
        model: String,
        version: String,
        date: String,
        by: String,
        reason: String,
    },
    /// The version's payload is not in this clone and could not be fetched.
    #[error("{model}@{version}: payload not fetched: {reason}")]
    NotFetched {
        model: String,
        version: String,
        reason: String,
    },
    /// The clone's record is older than what it was asked about.
    #[error("this clone is behind the server: {detail}")]
    Behind { detail: String },
    /// `sync` in a clone with no remote.
    #[error("this clone has no remote to sync with")]
    NoRemote,
    /// The remote could not be fetched from.
    #[error("could not fetch from {remote}: {detail}")]
    RemoteUnreachable { remote: String, detail: String },
    /// A path a pull would write is not safe to write.
    #[error("{path}: {reason}")]
    UnsafeOutput { path: String, reason: String },
    /// A lock or requirements file given to `--deps` was refused.
    #[error(transparent)]
    Deps(#[from] crate::model::deps::LockError),
    /// The Python interpreter `verify --deps` asks could not answer.
    #[error("python {python}: {reason}")]
    Python { python: String, reason: String },
    /// An environment differs from the version's dependency pins.
    #[error("the environment does not match the dependencies of {model}@{version}: {count} difference(s)")]
    DepsMismatch {
        model: String,
        version: String,
        count: usize,
    },
    /// I/O on a local path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl VaultError {
    /// The kind, for the CLI's exit code.
    pub fn kind(&self) -> ErrorKind {
        use VaultError::*;
        match self {
            Name(_)
            | NotAVault
            | NoSuchVersion { .. }
            | NoSuchModel { .. }
            | VersionExists { .. }
            | Input { .. }
            | StageMove { .. }
            | Key(_)
            | Purged { .. }
            | NotFetched { .. }
            | Behind { .. }
            | NoRemote
            | Deps(_)
            | Python { .. }
            | Io { .. } => ErrorKind::User,
            Denied(_)
            | UnknownKey { .. }
            | NoReadAccess { .. }
            | Push { .. }
            | PushRace { .. }
            | TooManyVersions { .. }
            | RetentionNotDue { .. }
            | NotDeployable { .. } => ErrorKind::Policy,
            Manifest { .. }
            | Signature { .. }
            | Signer { .. }
            | RecordBroken { .. }
            | Mismatch { .. }
            | Decrypt { .. }
            | DirMismatch { .. }
            | DepsMismatch { .. }
            | UntrustedTag { .. }
            | TagReplaced { .. }
            | MainRewritten { .. }
            | Rollback { .. }
            | Frozen { .. }
            | ReceiptNotBelieved { .. }
            | UnsafeOutput { .. }
            | Policy { .. } => ErrorKind::Integrity,
            Store(_) | RemoteUnreachable { .. } => ErrorKind::Internal,
        }
    }

    /// A suggestion that helps the user act, when there is one.
    pub fn hint(&self) -> Option<String> {
        use VaultError::*;
        match self {
            Denied(d) => Some(match d.remedy {
                Remedy::Grant(role) => format!(
                    "have someone who holds {role} do it, or ask an ml_admin to grant it: mvault policy grant {} --role {role} --models '{}'",
                    d.user, d.model
                ),
                Remedy::GrantAdmin => format!(
                    "have an ml_admin do it, or ask one to grant it: mvault policy grant {} --role ml_admin --models '**'",
                    d.user
                ),
                Remedy::RenewKey => format!(
                    "ask an ml_admin to add a new key with a later expiry: mvault policy add-user {} --key-file NEW.pub --expires YYYY-MM-DD",
                    d.user
                ),
                Remedy::AddUser => format!(
                    "ask an ml_admin to add the user: mvault policy add-user {} --key-file KEY.pub",
                    d.user
                ),
            }),
            Name(NameError::Stage { suggestion: Some(s), .. }) => Some(format!("did you mean '{s}'?")),
            Key(KeyError::PublicGiven { path, private }) => Some(match private {
                Some(p) => format!("pass the private key file instead: --key {} (the same path without .pub)", p.display()),
                None => format!("pass the private key file instead (ssh-keygen writes it next to {}, without .pub)", path.display()),
            }),
            StageMove { model, version, from: Stage::Archived, .. } => Some(format!(
                "an archived version stays archived. To serve its files again, register them as a new version: mvault pull {model}@{version} -o DIR, then mvault add DIR --model {model} --version NEW --parent {version}"
            )),
            StageMove { .. } => Some("promote one stage at a time: development → staging → production → deprecated → archived, or staging → development; mvault rollback puts an earlier production version back".into()),
            UnknownKey { .. } => Some("pass the key the policy knows with --key, or ask an admin: mvault policy add-user NAME --key-file KEY.pub".into()),
            NoReadAccess { .. } => Some("ask an ml_admin to grant you a role on the model (mvault policy grant NAME --role viewer --models GLOB); the grant re-wraps the model's key to you".into()),
            VersionExists { .. } => Some("pick a new version number; to compare, run mvault show".into()),
            TooManyVersions { model, oldest, .. } => Some(format!(
                "archive a version first: mvault promote {model}@{} --to archived (from deprecated); or ask an ml_admin to raise the cap: mvault policy rule model set --models GLOB --max-versions N",
                oldest.as_deref().unwrap_or("VERSION")
            )),
            RetentionNotDue { .. } => Some("wait until it is due (mvault retention lists the versions that are), or ask an ml_admin to purge".into()),
            NotDeployable { hint, .. } => Some(hint.clone()),
            Purged { .. } => Some("the record stays (mvault show, log, audit verify); pull another version".into()),
            NotFetched { .. } => Some("add a remote that has it (git remote add origin URL) and run the pull again, or pull straight from the server: mvault pull --from URL REF -o DIR".into()),
            Behind { .. } => Some("bring the clone up to date: mvault sync".into()),
            NoRemote => Some("add the server as a remote (git remote add origin URL) and run mvault sync again".into()),
            RemoteUnreachable { .. } => Some("check the URL (git remote -v) and that the server is up; nothing was changed".into()),
            NotAVault => Some("create one with mvault init DIR --admin-key KEY.pub, or run inside a clone of one (-C DIR)".into()),
            UntrustedTag { .. } | TagReplaced { .. } | MainRewritten { .. } => Some("the server may be serving forged history: compare with a clone you trust (git ls-remote, mvault audit verify) and tell the server's admin".into()),
            Rollback { .. } | ReceiptNotBelieved { .. } => Some("the server may be serving an old or forged record: compare with a clone you trust and tell the server's admin (mvault audit verify on the server)".into()),
            Frozen { .. } => Some("ask the server's admin whether mvault hook heartbeat runs (cron); pass a larger --max-age only if you accept an older record".into()),
            UnsafeOutput { .. } => Some("pull into a plain directory outside any git repository's metadata; nothing was written".into()),
            RecordBroken { .. } => Some("nothing was written; run mvault audit verify on a fresh clone and compare with the server's record".into()),
            Mismatch { .. } | Decrypt { .. } | Signature { .. } => Some("the repository content was altered or corrupted; nothing was written. Run mvault verify on a fresh clone and report it".into()),
            _ => None,
        }
    }
}
