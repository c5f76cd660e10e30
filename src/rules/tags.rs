//! Tags: registrations and approvals (promotions in `rules::promotion`).
//!
//! Checks every tag passes, in order:
//! 14. an annotated tag (not lightweight) naming itself as its ref does
//!     (a tag replayed under another name);
//! 15. pointing at a commit, signed, the signature verifying;
//! 16. signed by a user of the policy that judges it, unexpired, and the
//!     tagger names that user (misattribution);
//! 17. not dated before the commit it points at (or the record it names),
//!     nor ahead of the judge's clock;
//! 18. pointing at the commit on `main` that added the version it names,
//!     binding that version's manifest digest (a forged registration on a
//!     history off `main`).

use super::commit::{check_identity, signer_in_policy, verify_git_signature, Signer};
use super::context::{rfc3339, Clock, Context};
use super::source::{self, ObjectSource};
use super::{escape, Accepted, Refusal, Rule};
use crate::model::approval::{parse_approval, APPROVAL_PREFIX};
use crate::model::manifest::{Manifest, Sha256Digest};
use crate::model::names::{self, ModelName, Version};
use crate::model::policy::{Ability, Policy};
use crate::model::trailers::{trailer, trailers};
use crate::store::objects::{self, CommitObject, ObjectId, ObjectKind, TagObject};

/// A tag that passed the checks every tag passes (14-15).
pub struct CheckedTag {
    pub id: ObjectId,
    pub tag: TagObject,
    pub data: Vec<u8>,
    pub key: ssh_key::PublicKey,
    /// The tagger's date.
    pub time: i64,
}

/// 14-15. Annotated, self-named, on a commit, validly signed.
pub fn check_tag_object(
    src: &dyn ObjectSource,
    subject: &str,
    name: &str,
    id: ObjectId,
) -> Result<CheckedTag, Refusal> {
    let (kind, data) = src.object(id).map_err(|e| Refusal::internal(subject, e))?;
    if kind != ObjectKind::Tag {
        return Err(Refusal::new(
            Rule::LightweightTag,
            subject,
            format!("{} is a {kind}, not an annotated tag", escape(name)),
            "mvault makes signed annotated tags",
        ));
    }
    let tag = objects::parse_tag(&data).map_err(|e| Refusal::internal(subject, e))?;
    if tag.name != name.as_bytes() {
        return Err(Refusal::new(
            Rule::TagNameMismatch,
            subject,
            format!(
                "the tag object says {:?}, the ref is {}",
                escape(&String::from_utf8_lossy(&tag.name)),
                escape(name)
            ),
            "push the tag under its own name",
        ));
    }
    if tag.target_kind != ObjectKind::Commit {
        return Err(Refusal::new(
            Rule::TagTarget,
            subject,
            format!("tag points at a {}", tag.target_kind),
            "mvault tags point at commits",
        ));
    }
    let key = verify_git_signature(
        subject,
        &escape(name),
        tag.signature.as_ref(),
        Rule::UnsignedTag,
        Rule::BadTagSignature,
    )?;
    let time = tag.tagger.as_ref().map(|p| p.time).unwrap_or(i64::MIN);
    Ok(CheckedTag {
        id,
        tag,
        data,
        key,
        time,
    })
}

impl CheckedTag {
    /// 16-17. The signer under `policy`, named by the tagger, and the dates.
    pub fn signer(
        &self,
        ctx: &Context<'_>,
        subject: &str,
        policy: &Policy,
        not_before: &[(&str, i64)],
    ) -> Result<Signer, Refusal> {
        let what = format!("tag {}", self.id);
        let signer = signer_in_policy(ctx, subject, &what, self.key.clone(), policy, self.time)?;
        if signer.user.is_none() {
            return Err(Refusal::new(
                Rule::UnknownSigner,
                subject,
                format!("{what} is signed by a root key; tags are made by policy users"),
                "sign with the key the policy names",
            ));
        }
        let Some(tagger) = &self.tag.tagger else {
            return Err(Refusal::new(
                Rule::Misattributed,
                subject,
                format!("{what} has no tagger"),
                "make tags with mvault",
            ));
        };
        check_identity(subject, "tagger", tagger, &signer)?;
        for (of, when) in not_before {
            if self.time < *when {
                return Err(Refusal::new(
                    Rule::TagDatedBeforeTarget,
                    subject,
                    format!(
                        "{what} is dated {}, before {of} ({})",
                        rfc3339(self.time),
                        rfc3339(*when)
                    ),
                    "fix the clock and make the tag again",
                ));
            }
        }
        ctx.clock.check_not_future(subject, &what, self.time)?;
        Ok(signer)
    }
}

/// What a tag's registering commit says about its version.
pub struct RegisteredVersion {
    pub commit: CommitObject,
    /// SHA-256 of the version's manifest.
    pub manifest_sha256: String,
    /// The manifest's author (the registrant).
    pub author: String,
}

/// 18. `target` is the commit on main that added `model@version`: a
///     register commit for exactly that version, whose parent lacks it, on
///     main, with the same version directory as main's tip. Its manifest must
///     parse: an unreadable manifest is a refusal, never an empty author.
pub fn registering_commit(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    target: ObjectId,
    model: &ModelName,
    version: &Version,
) -> Result<RegisteredVersion, Refusal> {
    let dir = names::version_dir(model, version);
    let wrong = |why: &str| {
        Refusal::new(
            Rule::TagTarget,
            subject,
            format!(
                "the tag must point at the commit on main that added {model}@{version}; {target} {why}"
            ),
            "let mvault create the tag",
        )
    };
    let internal = |e: crate::store::StoreError| Refusal::internal(subject, e);
    let c = source::commit(src, target).map_err(|_| wrong("is not a commit"))?;
    let t = trailers(&c.message);
    if c.parents.len() != 1
        || trailer(&t, "Mvault-Action") != Some("register")
        || trailer(&t, "Mvault-Model") != Some(model.as_str())
        || trailer(&t, "Mvault-Version") != Some(version.to_string().as_str())
    {
        return Err(wrong("is not its register commit"));
    }
    if !ctx.main.contains(target).map_err(internal)? {
        return Err(wrong("is not on main"));
    }
    // The version's record is its manifest and signature: a purge adds a
    // file beside them and leaves them as they were.
    let record = |tree: ObjectId| -> Result<_, Refusal> {
        Ok((
            source::entry(src, tree, &format!("{dir}/manifest.toml")).map_err(internal)?,
            source::entry(src, tree, &format!("{dir}/manifest.sig")).map_err(internal)?,
        ))
    };
    let at_target = record(c.tree)?;
    let parent = source::commit(src, c.parents[0]).map_err(internal)?;
    let parent_has = source::entry(src, parent.tree, &dir)
        .map_err(internal)?
        .is_some();
    let tip = source::commit(src, ctx.main.tip()).map_err(internal)?;
    let on_main = record(tip.tree)?;
    let at_target = at_target.0.map(|m| (m, at_target.1));
    let on_main = on_main.0.map(|m| (m, on_main.1));
    if at_target.is_none() || parent_has || at_target != on_main {
        return Err(wrong("does not add the version main holds"));
    }
    let manifest = source::read_path(src, c.tree, &format!("{dir}/manifest.toml"))
        .map_err(internal)?
        .ok_or_else(|| wrong("has no manifest"))?;
    let parsed = std::str::from_utf8(&manifest)
        .ok()
        .and_then(|text| Manifest::parse(text).ok())
        .ok_or_else(|| {
            Refusal::new(
                Rule::BadManifest,
                subject,
                format!("the manifest of {model}@{version} does not parse"),
                "the version's record is damaged; run mvault audit verify",
            )
        })?;
    Ok(RegisteredVersion {
        commit: c,
        manifest_sha256: Sha256Digest::of(&manifest).to_hex(),
        author: parsed.author,
    })
}

/// The policy an approval or promotion is judged by: the one at the
/// commit of main its `Mvault-Record` names. At push time (server clock)
/// it must also be the policy in force now: no policy change came after
/// the record (a revoked approver naming an old record).
pub fn record_policy(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    record: Option<&str>,
    tag_time: i64,
    missing: Rule,
) -> Result<(Policy, CommitObject), Refusal> {
    let hint = "make it with mvault, which names the record it was made against";
    let Some(id) = record.and_then(objects::parse_id) else {
        return Err(Refusal::new(
            missing,
            subject,
            "no valid Mvault-Record trailer names the commit of main it was made against",
            hint,
        ));
    };
    let internal = |e: crate::store::StoreError| Refusal::internal(subject, e);
    if !src.has_object(id) || !ctx.main.contains(id).map_err(internal)? {
        return Err(Refusal::new(
            missing,
            subject,
            format!("Mvault-Record {id} is not a commit on main"),
            hint,
        ));
    }
    // A tag made after the policy moved on names a record it could not
    // have been made against honestly (a revoked key naming an old
    // record): replayable from the dates on main.
    if let Some(changed) = ctx.main.policy_change_after(id).map_err(internal)? {
        if tag_time > changed {
            return Err(Refusal::new(
                Rule::RecordSuperseded,
                subject,
                format!(
                    "it names {id}, but is dated {}, after the policy changed on main ({})",
                    rfc3339(tag_time),
                    rfc3339(changed)
                ),
                "fetch (git fetch) and make it again under the policy in force",
            ));
        }
    }
    if let Clock::Server { .. } = ctx.clock {
        let then = source::policy_blob_at(src, id).map_err(internal)?;
        let now = source::policy_blob_at(src, ctx.main.tip()).map_err(internal)?;
        if then != now {
            return Err(Refusal::new(
                Rule::StaleRecord,
                subject,
                format!("it was made against {id}; the policy has changed since"),
                "fetch (git fetch) and make it again under the policy in force",
            ));
        }
    }
    let policy = source::policy_at(src, id).map_err(|e| Refusal::internal(subject, e))?;
    let commit = source::commit(src, id).map_err(internal)?;
    Ok((policy, commit))
}

/// Judge registration tag `<model>@v<version>`, or refuse a tag of no
/// form mvault makes.
pub fn judge_registration(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    name: &str,
    id: ObjectId,
) -> Result<Accepted, Refusal> {
    let checked = check_tag_object(src, subject, name, id)?;
    let Some((m, v)) = name.rsplit_once("@v") else {
        return Err(Refusal::new(
            Rule::UnknownTagForm,
            subject,
            format!(
                "{} is not <model>@v<version>, <model>#<stage>#<n> or an approval",
                escape(name)
            ),
            "push only tags mvault makes",
        ));
    };
    let model = ModelName::parse(m).map_err(|e| {
        Refusal::new(
            Rule::BadName,
            subject,
            e.to_string(),
            "use a valid model name",
        )
    })?;
    let version = Version::parse(v)
        .map_err(|e| Refusal::new(Rule::BadName, subject, e.to_string(), "use strict SemVer"))?;
    let reg = registering_commit(src, ctx, subject, checked.tag.target, &model, &version)?;
    // Judged with its commit: by the policy that judged the commit.
    let policy = super::context::policy_for_commit(src, subject, &reg.commit)?;
    let signer = checked.signer(
        ctx,
        subject,
        &policy,
        &[("the commit it points at", reg.commit.committer.time)],
    )?;
    let user = signer.shown();
    let at = ctx.clock.judgement_time(checked.time);
    for (who, what, rule_id) in std::iter::once((user.as_str(), "tag signer", Rule::Role))
        .chain(ctx.pusher.map(|p| (p, "pusher", Rule::PusherRole)))
    {
        policy
            .check(who, &model, Ability::Register, at)
            .map_err(|d| {
                Refusal::new(
                    rule_id,
                    subject,
                    format!("{what} {d}"),
                    format!("ask an ml_admin to grant {} on {model}", d.need),
                )
            })?;
    }
    let digest =
        trailer(&trailers(&checked.tag.message), "Mvault-Manifest-Sha256").map(str::to_owned);
    if digest.as_deref() != Some(reg.manifest_sha256.as_str()) {
        return Err(Refusal::new(
            Rule::TagDigest,
            subject,
            format!(
                "the tag does not bind the manifest's SHA-256 {}",
                reg.manifest_sha256
            ),
            "let mvault add create the tag",
        ));
    }
    Ok(Accepted {
        subject: subject.to_owned(),
        what: format!("registration tag {model}@v{version} by {user}"),
    })
}

/// Judge an approval tag (`mvault-approval/…`).
pub fn judge_approval(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    name: &str,
    id: ObjectId,
) -> Result<Accepted, Refusal> {
    debug_assert!(name.starts_with(APPROVAL_PREFIX));
    let checked = check_tag_object(src, subject, name, id)?;
    let bad =
        |e: String| Refusal::new(Rule::BadApproval, subject, e, "approve with mvault approve");
    let a = parse_approval(name, id, &checked.data).map_err(|e| bad(e.to_string()))?;
    let model = ModelName::parse(&a.model).map_err(|e| bad(e.to_string()))?;
    let version = Version::parse(&a.version).map_err(|e| bad(e.to_string()))?;
    let reg = registering_commit(src, ctx, subject, a.target, &model, &version)?;
    let (policy, record) = record_policy(
        src,
        ctx,
        subject,
        a.record.as_deref(),
        checked.time,
        Rule::BadApproval,
    )?;
    let signer = checked.signer(
        ctx,
        subject,
        &policy,
        &[
            ("the commit it points at", reg.commit.committer.time),
            ("the record it names", record.committer.time),
        ],
    )?;
    let user = signer.shown();
    if user != a.user {
        return Err(Refusal::new(
            Rule::ApprovalSigner,
            subject,
            format!("named for {} but signed by {user}", escape(&a.user)),
            "approvals are made by the approver they name",
        ));
    }
    let rule = policy.rule_for(&model, a.stage);
    let at = ctx.clock.judgement_time(checked.time);
    for (who, what, rule_id) in std::iter::once((user.as_str(), "approver", Rule::Role))
        .chain(ctx.pusher.map(|p| (p, "pusher", Rule::PusherRole)))
    {
        policy
            .check_role(who, &model, rule.approver_role, Ability::Approve, at)
            .map_err(|d| {
                Refusal::new(
                    rule_id,
                    subject,
                    format!(
                        "{what} {} does not hold {} on {model} ({})",
                        escape(who),
                        rule.approver_role,
                        escape(&d.to_string())
                    ),
                    format!("ask an ml_admin to grant {} on {model}", rule.approver_role),
                )
            })?;
    }
    if a.manifest_sha256 != reg.manifest_sha256 {
        return Err(Refusal::new(
            Rule::ApprovalDigest,
            subject,
            format!(
                "binds manifest {}, {model}@{version}'s is {}",
                escape(&a.manifest_sha256),
                reg.manifest_sha256
            ),
            "approve the version as it is registered",
        ));
    }
    if !rule.allow_self_approval && a.user == reg.author {
        return Err(Refusal::new(
            Rule::SelfApproval,
            subject,
            format!("{} is the author of {model}@{version}", escape(&a.user)),
            "ask another approver",
        ));
    }
    Ok(Accepted {
        subject: subject.to_owned(),
        what: format!("approval of {model}@{version} for {} by {user}", a.stage),
    })
}
