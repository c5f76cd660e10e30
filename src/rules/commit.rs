//! Commits on `main`: who signed them, when they say they were made, what
//! they change, and whether that one action is allowed.
//!
//! Checks, in order, each citing what it stops:
//! 1. the commit is signed, and the signature verifies (forged history);
//! 2. the signer is a user of the policy in force with an unexpired key, or
//!    a root key (keys revoked or expired, outsiders);
//! 3. author and committer name the signer (misattribution: the signer's
//!    policy name is the only actor ever shown);
//! 4. the commit is not dated before its parent nor ahead of the judge's
//!    clock (backdating past a revocation, or out of a report's window);
//! 5. every new tree is well-formed (duplicate or reserved entries that
//!    git and mvault would read differently);
//! 6. the commit does one thing, and the rules of that action hold
//!    (`register`, `purge` and `deploy` in their modules, `policy` here).

use std::collections::BTreeSet;

use ssh_key::PublicKey;

use super::context::{policy_for_commit, rfc3339, Context, ROOT_KEY_TRAILER};
use super::source::{self, ObjectSource};
use super::tree::{check_whole_tree, diff_trees, Change};
use super::{escape, ring, Accepted, Refusal, Rule};
use crate::crypto;
use crate::model::names::ModelName;
use crate::model::policy::{Policy, POLICY_PATH};
use crate::model::trailers::{all, trailer, trailers};
use crate::store::objects::{CommitObject, EntryKind, ObjectId, Person};

mod deploy;
mod purge;
mod register;

/// The largest purge or deployment record a commit may carry: a
/// canonical record (a reason of at most 1000 characters) is far smaller.
pub const MAX_RECORD_BYTES: u64 = 16 * 1024;

/// What a judged commit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The vault's first commit.
    Init,
    /// Added one version, whose payload is the tree `payload`.
    Register {
        model: String,
        version: String,
        payload: ObjectId,
        manifest: Box<crate::model::manifest::Manifest>,
    },
    /// Recorded the purge of one version's payload.
    Purge { model: String, version: String },
    /// Recorded the deployment of one version to one environment.
    Deploy {
        model: String,
        version: String,
        environment: String,
    },
    /// Changed the policy (and the key rings that change requires).
    Policy,
}

/// An accepted commit.
#[derive(Debug, Clone)]
pub struct CommitVerdict {
    pub accepted: Accepted,
    pub action: Action,
    /// The signer's policy name (`None`: a root key outside the policy).
    pub signer: Option<String>,
}

/// A verified signature: who, with which key.
#[derive(Debug, Clone)]
pub struct Signer {
    pub key: PublicKey,
    /// The policy user of the key; `None` for a root key outside the policy.
    pub user: Option<String>,
}

impl Signer {
    /// The name the record shows for this signer.
    pub fn shown(&self) -> String {
        self.user.clone().unwrap_or_else(|| "root".into())
    }
}

/// The armored signature over `payload`, verified; returns its key.
pub fn verify_git_signature(
    subject: &str,
    what: &str,
    signature: Option<&(Vec<u8>, Vec<u8>)>,
    unsigned: Rule,
    bad: Rule,
) -> Result<PublicKey, Refusal> {
    let Some((sig, payload)) = signature else {
        return Err(Refusal::new(
            unsigned,
            subject,
            format!("{what} has no SSH signature"),
            "make it with mvault, which signs with your SSH key",
        ));
    };
    crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload).map_err(|e| {
        Refusal::new(
            bad,
            subject,
            format!("{what}: {e}"),
            "re-create it with mvault",
        )
    })
}

/// 2. The user of `key` in `policy`, unexpired at the judgement time of an
///    object dated `dated`; a root key outside the policy is accepted as such.
pub fn signer_in_policy(
    ctx: &Context<'_>,
    subject: &str,
    what: &str,
    key: PublicKey,
    policy: &Policy,
    dated: i64,
) -> Result<Signer, Refusal> {
    let at = ctx.clock.judgement_time(dated);
    match policy.user_of_key(&key) {
        Some(u) if u.active_at(at) => Ok(Signer {
            user: Some(u.name.clone()),
            key,
        }),
        Some(u) => Err(Refusal::new(
            Rule::ExpiredKey,
            subject,
            format!(
                "{what} is signed by {}, whose key expired on {}",
                u.name,
                u.expires.map(|d| d.to_string()).unwrap_or_default()
            ),
            "ask an admin to renew the key (mvault policy add-user NAME --key-file KEY.pub --expires DATE)",
        )),
        None if ctx.roots.contains(&key) => Ok(Signer { key, user: None }),
        None => Err(Refusal::new(
            Rule::UnknownSigner,
            subject,
            format!(
                "{what} is signed by key {}, which is in no policy entry in force",
                crypto::fingerprint(&key)
            ),
            "sign with the key the policy names, or ask an admin to add yours",
        )),
    }
}

/// 3. `person` (an author, committer or tagger) names the signer:
///    `NAME <NAME@mvault>`, NAME the signer's policy name.
pub fn check_identity(
    subject: &str,
    role: &str,
    person: &Person,
    signer: &Signer,
) -> Result<(), Refusal> {
    let name = signer.shown();
    let email = format!("{name}@mvault");
    if person.name != name || person.email != email {
        return Err(Refusal::new(
            Rule::Misattributed,
            subject,
            format!(
                "the {role} is {} <{}>, the signer is {name} <{email}>",
                escape(&person.name),
                escape(&person.email)
            ),
            "make it with mvault, or set the identity to the signer's policy name",
        ));
    }
    Ok(())
}

/// 4. Dates: not before `not_before` (the parent's, for a commit), not
///    ahead of the judge's clock.
fn check_dates(
    ctx: &Context<'_>,
    subject: &str,
    what: &str,
    c: &CommitObject,
    not_before: Option<i64>,
) -> Result<(), Refusal> {
    if let Some(parent) = not_before {
        // Both dates: reports and `log` show the author's.
        let earliest = c.committer.time.min(c.author.time);
        if earliest < parent {
            return Err(Refusal::new(
                Rule::DatedBeforeParent,
                subject,
                format!(
                    "{what} is dated {}, before its parent ({})",
                    rfc3339(earliest),
                    rfc3339(parent)
                ),
                "fix the clock and make the commit again (mvault add rebuilds on main)",
            ));
        }
    }
    ctx.clock
        .check_not_future(subject, what, c.committer.time.max(c.author.time))
}

/// Judge commit `id` of `main`.
pub fn judge_commit(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    id: ObjectId,
) -> Result<CommitVerdict, Refusal> {
    let c = source::commit(src, id).map_err(|e| Refusal::internal(subject, e))?;
    let t = trailers(&c.message);
    let action = trailer(&t, "Mvault-Action").unwrap_or("");
    if c.parents.is_empty() {
        return judge_init(src, ctx, subject, id, &c, action);
    }
    let what = format!("commit {id}");
    if c.parents.len() > 1 {
        return Err(Refusal::new(
            Rule::MergeCommit,
            subject,
            format!(
                "commit {id} has {} parents; main is linear",
                c.parents.len()
            ),
            "rebase onto main instead of merging",
        ));
    }
    // The one rule for commits: judged by the policy of the parent.
    let policy = policy_for_commit(src, subject, &c)?;
    // 1-2. Signed by a known, unexpired key.
    let key = verify_git_signature(
        subject,
        &what,
        c.signature.as_ref(),
        Rule::UnsignedCommit,
        Rule::BadCommitSignature,
    )?;
    let signer = signer_in_policy(ctx, subject, &what, key, &policy, c.committer.time)?;
    // 3. Author and committer are the signer.
    check_identity(subject, "author", &c.author, &signer)?;
    check_identity(subject, "committer", &c.committer, &signer)?;
    // 4. Not backdated before the parent, not from the future.
    let parent = source::commit(src, c.parents[0]).map_err(|e| Refusal::internal(subject, e))?;
    check_dates(ctx, subject, &what, &c, Some(parent.committer.time))?;
    // 5. Well-formed trees, and a change at all.
    let mut changes = Vec::new();
    diff_trees(src, Some(parent.tree), Some(c.tree), "", &mut changes)
        .map_err(|e| e.refusal(subject, id))?;
    if changes.is_empty() {
        return Err(Refusal::new(
            Rule::EmptyCommit,
            subject,
            format!("commit {id} changes nothing"),
            "a commit does one thing: register a version or change the policy",
        ));
    }
    // 6. One action, and the tree change must be that action.
    let judged = CommitUnderJudgement {
        src,
        ctx,
        subject,
        id,
        commit: &c,
        parent: &parent,
        trailers: &t,
        policy: &policy,
        signer: &signer,
        changes: &changes,
    };
    match action {
        "register" => register::judge_register(&judged),
        "policy" => judge_policy(&judged),
        "purge" => purge::judge_purge(&judged),
        "deploy" => deploy::judge_deploy(&judged),
        other => Err(Refusal::new(
            Rule::UnknownAction,
            subject,
            format!(
                "commit {id} has Mvault-Action {:?}; expected register, policy, purge or deploy",
                escape(other)
            ),
            "make commits with mvault",
        )),
    }
}

/// Everything the action rules of one commit read.
pub(crate) struct CommitUnderJudgement<'a> {
    pub src: &'a dyn ObjectSource,
    pub ctx: &'a Context<'a>,
    pub subject: &'a str,
    pub id: ObjectId,
    pub commit: &'a CommitObject,
    pub parent: &'a CommitObject,
    pub trailers: &'a [(String, String)],
    /// The policy in force: the parent's.
    pub policy: &'a Policy,
    pub signer: &'a Signer,
    pub changes: &'a [Change],
}

impl CommitUnderJudgement<'_> {
    /// A refusal of this commit under `rule`, with the action's hint.
    pub fn refuse(&self, rule: Rule, detail: impl std::fmt::Display, hint: &str) -> Refusal {
        Refusal::new(
            rule,
            self.subject,
            format!("commit {}: {detail}", self.id),
            hint,
        )
    }

    /// A record's own claims about its commit (`purged_by`/`deployed_by`
    /// and `time`) must be the commit's signer (`user`) and date: the
    /// first under rule 14, the second under `dated_rule`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_names_its_commit(
        &self,
        path: &str,
        verb: &str,
        by: &str,
        time: &str,
        user: &str,
        dated_rule: Rule,
        hint: &str,
    ) -> Result<(), Refusal> {
        if by != user {
            return Err(self.refuse(
                Rule::Misattributed,
                format!("{path} says {verb} by {}, the signer is {user}", escape(by)),
                hint,
            ));
        }
        let dated = crate::rules::context::rfc3339(self.commit.committer.time);
        if time != dated {
            return Err(self.refuse(
                dated_rule,
                format!("{path} is dated {}, its commit {dated}", escape(time)),
                hint,
            ));
        }
        Ok(())
    }

    /// The text of a purge or deployment record (blob `id` at `path`):
    /// at most [`MAX_RECORD_BYTES`], read only after its size is known (a
    /// pushed "record" of gigabytes is refused without being read), and
    /// UTF-8; refused under `rule` otherwise.
    pub fn record_text(
        &self,
        id: ObjectId,
        path: &str,
        rule: Rule,
        hint: &str,
    ) -> Result<String, Refusal> {
        let internal = |e: crate::store::StoreError| Refusal::internal(self.subject, e);
        let size = self.src.object_size(id).map_err(internal)?;
        if size > MAX_RECORD_BYTES {
            return Err(self.refuse(
                rule,
                format!("{path} is {size} bytes; a record is at most {MAX_RECORD_BYTES}"),
                hint,
            ));
        }
        let (_, bytes) = self.src.object(id).map_err(internal)?;
        String::from_utf8(bytes)
            .map_err(|_| self.refuse(rule, format!("{path} is not UTF-8"), hint))
    }

    /// The one model and version the commit's trailers name.
    pub fn model_and_version(
        &self,
        hint: &str,
    ) -> Result<(ModelName, crate::model::names::Version), Refusal> {
        let bad = |rule: Rule, detail: String| self.refuse(rule, detail, hint);
        let model_s = trailer(self.trailers, "Mvault-Model")
            .ok_or_else(|| bad(Rule::BadTrailers, "no single Mvault-Model trailer".into()))?;
        let version_s = trailer(self.trailers, "Mvault-Version")
            .ok_or_else(|| bad(Rule::BadTrailers, "no single Mvault-Version trailer".into()))?;
        let model = ModelName::parse(model_s).map_err(|e| bad(Rule::BadName, e.to_string()))?;
        let version = crate::model::names::Version::parse(version_s)
            .map_err(|e| bad(Rule::BadName, e.to_string()))?;
        Ok((model, version))
    }

    /// The judgement time of this commit.
    pub fn at(&self) -> time::OffsetDateTime {
        self.ctx.clock.judgement_time(self.commit.committer.time)
    }
}

/// The fingerprints a first commit records as the vault's root keys.
pub fn recorded_roots(c: &CommitObject) -> Vec<String> {
    all(&trailers(&c.message), ROOT_KEY_TRAILER)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn judge_init(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    id: ObjectId,
    c: &CommitObject,
    action: &str,
) -> Result<CommitVerdict, Refusal> {
    // The first commit of a vault is signed by a root key, which it records.
    if action != "init" {
        return Err(Refusal::new(
            Rule::UnknownFirstCommit,
            subject,
            format!("root commit {id} is not an mvault init commit"),
            "create the vault with mvault init",
        ));
    }
    let what = format!("commit {id}");
    let key = verify_git_signature(
        subject,
        &what,
        c.signature.as_ref(),
        Rule::UnsignedCommit,
        Rule::BadCommitSignature,
    )?;
    let fp = crypto::fingerprint(&key);
    let recorded: BTreeSet<String> = recorded_roots(c).into_iter().collect();
    let unpinned: Vec<&String> = recorded
        .iter()
        .filter(|r| !ctx.roots.contains_fingerprint(r))
        .collect();
    if !ctx.roots.contains(&key) || !recorded.contains(&fp) || !unpinned.is_empty() {
        return Err(Refusal::new(
            Rule::InitNotByRoot,
            subject,
            format!(
                "commit {id} is signed by {fp} and records root key(s) [{}]; the judge trusts {} root key(s) [{}]",
                recorded.iter().map(|s| escape(s)).collect::<Vec<_>>().join(", "),
                ctx.roots.len(),
                ctx.roots.fingerprints().collect::<Vec<_>>().join(", ")
            ),
            "sign with a key given to mvault hook install --root-key, and record it (mvault init does both)",
        ));
    }
    check_whole_tree(src, c.tree).map_err(|e| e.refusal(subject, id))?;
    let policy = source::policy_at(src, id).map_err(|e| {
        Refusal::new(
            Rule::BadPolicy,
            subject,
            e.to_string(),
            "fix the policy (mvault policy check FILE)",
        )
    })?;
    let at = ctx.clock.judgement_time(c.committer.time);
    let signer = Signer {
        user: policy.user_of_key(&key).map(|u| u.name.clone()),
        key,
    };
    let admin = signer
        .user
        .as_deref()
        .is_some_and(|u| policy.check_admin(u, at).is_ok());
    if !admin {
        return Err(Refusal::new(
            Rule::NoAdmin,
            subject,
            "the initial policy does not make its signer an ml_admin on ** with an unexpired key",
            "create the vault with mvault init",
        ));
    }
    check_identity(subject, "author", &c.author, &signer)?;
    check_identity(subject, "committer", &c.committer, &signer)?;
    check_dates(ctx, subject, &what, c, None)?;
    Ok(CommitVerdict {
        accepted: Accepted {
            subject: subject.to_owned(),
            what: format!("init {id}"),
        },
        action: Action::Init,
        signer: signer.user,
    })
}

/// 12-13. A policy change: signed by an admin of the policy in force or a
/// root key, pushed by an admin, touching only the policy and key rings,
/// leaving an admin, every changed ring wrapped to the new readers.
fn judge_policy(j: &CommitUnderJudgement<'_>) -> Result<CommitVerdict, Refusal> {
    const HINT: &str = "change the policy with mvault policy, signed by an admin";
    let at = j.at();
    let signer_is_admin = match j.signer.user.as_deref() {
        Some(u) => j.policy.check_admin(u, at).is_ok(),
        None => true, // a root key (checked in signer_in_policy)
    };
    if !signer_is_admin {
        return Err(Refusal::new(
            Rule::PolicyNotByAdmin,
            j.subject,
            format!(
                "commit {} is signed by {}, who is not ml_admin on ** in the policy in force, nor a root key",
                j.id,
                j.signer.shown()
            ),
            "have an admin make the change (mvault policy …)",
        ));
    }
    if let Some(pusher) = j.ctx.pusher {
        j.policy.check_admin(pusher, at).map_err(|d| {
            Refusal::new(
                Rule::PusherRole,
                j.subject,
                format!("pusher {}", escape(&d.to_string())),
                "have an admin push the policy change",
            )
        })?;
    }
    // The change touches the policy and existing key rings, nothing else.
    let mut touched_rings = BTreeSet::new();
    for c in j.changes {
        let replaces_blob = c.old.is_some() && c.new.is_some_and(|(_, k)| k == EntryKind::Blob);
        if c.path == POLICY_PATH && replaces_blob {
            continue;
        }
        if let Some(model) = c
            .path
            .strip_prefix(".mvault/keys/")
            .and_then(|p| p.strip_suffix(".age"))
        {
            if replaces_blob {
                touched_rings.insert(model.to_owned());
                continue;
            }
        }
        return Err(j.refuse(
            Rule::MixedActions,
            format!("a policy commit changes {} too", escape(&c.path)),
            HINT,
        ));
    }
    let new_policy =
        source::policy_at(j.src, j.id).map_err(|e| j.refuse(Rule::BadPolicy, e, HINT))?;
    if !new_policy.has_active_admin(at) {
        return Err(j.refuse(
            Rule::NoAdminLeft,
            "the new policy has no ml_admin on ** with an unexpired key",
            HINT,
        ));
    }
    // Every key ring whose readers change, or that the commit touches, is
    // wrapped to exactly the new policy's readers.
    for name in rings(j.src, j.commit.tree).map_err(|e| Refusal::internal(j.subject, e))? {
        let Ok(model) = ModelName::parse(&name) else {
            return Err(j.refuse(
                Rule::BadKeyRingName,
                format!(".mvault/keys/{}.age", escape(&name)),
                HINT,
            ));
        };
        let readers = |p: &Policy| -> BTreeSet<String> {
            p.readers(&model, at)
                .into_iter()
                .map(|(_, k)| crypto::public_key_line(k))
                .collect()
        };
        if readers(j.policy) == readers(&new_policy) && !touched_rings.contains(&name) {
            continue;
        }
        let path = model.keyring_path();
        let sealed = source::read_path(j.src, j.commit.tree, &path)
            .map_err(|e| Refusal::internal(j.subject, e))?
            .unwrap_or_default();
        ring::check_ring(&sealed, &new_policy, &model, at)
            .map_err(|e| j.refuse(Rule::KeyRingRecipients, format!("{path}: {e}"), HINT))?;
    }
    Ok(CommitVerdict {
        accepted: Accepted {
            subject: j.subject.to_owned(),
            what: format!("policy change by {} ({})", j.signer.shown(), j.id),
        },
        action: Action::Policy,
        signer: j.signer.user.clone(),
    })
}

/// The model names of every key ring under `.mvault/keys` in `tree`.
fn rings(
    src: &dyn ObjectSource,
    tree: ObjectId,
) -> Result<BTreeSet<String>, crate::store::StoreError> {
    let mut out = BTreeSet::new();
    let Some((keys, EntryKind::Tree)) = source::entry(src, tree, ".mvault/keys")? else {
        return Ok(out);
    };
    let mut stack = vec![(keys, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for item in source::tree_items(src, dir)? {
            let name = String::from_utf8_lossy(&item.name).into_owned();
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if item.kind == EntryKind::Tree {
                stack.push((item.id, full));
            } else if let Some(m) = full.strip_suffix(".age") {
                out.insert(m.to_owned());
            }
        }
    }
    Ok(out)
}
