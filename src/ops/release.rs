//! Moving versions through stages: `approve`, `promote`, `rollback`,
//! `status`.
//!
//! Every write here is one signed annotated tag (two for a rollback), pushed
//! atomically with stock git together with the seq ref that claims its
//! counter. The client picks approvals and counters the way the hook will
//! judge them, so a refusal from the server is a race, not a surprise.

use std::collections::BTreeMap;

use crate::store::ObjectId;
use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::events::AuditBreak;
use crate::crypto::SshIdentity;
use crate::model::approval::approval_name;
use crate::model::manifest::Sha256Digest;
use crate::model::names::{self, ModelName, Stage, Version, VersionRef};
use crate::model::policy::{Ability, Policy, StageRule};
use crate::model::promotion::{promotion_name, seq_ref, PromotionAction, SEQ_PREFIX};
use crate::ops::register::signer_user;
use crate::ops::sync;
use crate::rules::approvals::{count_approvals, Parties};
use crate::rules::stages::{transition_allowed, StageHead, VersionView};
use crate::store::{Actor, RefUpdate, StoreError};
use crate::vault::approvals;
use crate::vault::{Vault, VaultError};
use crate::verify::replay;

/// The rule for promotions into `stage`, or the default: ml_engineer
/// promotes, no approvals, no ticket.
pub fn rule_for(policy: &Policy, model: &ModelName, stage: Stage) -> StageRule {
    policy.rule_for(model, stage)
}

/// What an approve, promote or rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct TagOutcome {
    pub tags: Vec<String>,
    pub pushed: Option<String>,
    /// Approvals the promotion relies on.
    pub approvals: Vec<String>,
    pub from: Option<String>,
    pub to: String,
    pub model: String,
    pub version: String,
}

/// Bring the clone up to date with its remote: new tags, and `main` when it
/// fast-forwards; a tag or a main the server changed is refused (see
/// [`sync::fetch_checked`]). Promotions number themselves from what they see.
pub fn refresh_from_remote(vault: &Vault, scope: &sync::TagScope) -> Result<(), VaultError> {
    match sync::remote(vault) {
        Some(remote) => sync::fetch_checked(vault, &remote, scope),
        None => Ok(()),
    }
}

/// The commit that added a version: its registration tag's target, believed
/// only when it chains through main ([`Vault::registering_commit`]).
fn registering_commit(
    vault: &Vault,
    model: &ModelName,
    version: &Version,
) -> Result<ObjectId, VaultError> {
    let tag = format!("refs/tags/{}", names::registration_tag(model, version));
    if vault.store.ref_target(&tag)?.is_none() {
        return Err(VaultError::NoSuchVersion {
            model: model.to_string(),
            version: version.to_string(),
        });
    }
    vault.registering_commit(model, version)
}

/// Create tags locally, push them atomically, undo them if the push fails.
/// One promotion's tag and seq ref are written seq ref first, tag last: a
/// killed mvault can leave a seq ref without its tag, never a tag without
/// its seq ref, and the seq ref is the clone's own bookkeeping (the server
/// decides races), so the next promotion with that counter replaces it. A
/// rollback's two promotions land together or not at all.
fn publish(
    vault: &Vault,
    refs: Vec<(String, ObjectId)>,
    push: bool,
    model: &ModelName,
) -> Result<Option<String>, VaultError> {
    let mut edits = Vec::new();
    for (name, id) in &refs {
        let expected = if name.starts_with(SEQ_PREFIX) {
            vault.store.ref_target(name)?
        } else {
            None
        };
        edits.push(RefUpdate {
            name: name.clone(),
            expected,
            new: Some(*id),
            reason: "mvault tag".into(),
        });
    }
    let tags = refs
        .iter()
        .filter(|(n, _)| n.starts_with("refs/tags/"))
        .count();
    if tags > 1 {
        vault.store.update_refs_together(&edits)?;
    } else {
        vault.store.update_refs(&edits)?;
    }
    if !push {
        return Ok(None);
    }
    let names: Vec<String> = refs.iter().map(|(n, _)| n.clone()).collect();
    match sync::push_refs_atomic(vault, &names) {
        Ok(remote) => Ok(remote),
        Err(e) => {
            let _ = vault.store.update_refs(
                &refs
                    .iter()
                    .map(|(name, id)| RefUpdate {
                        name: name.clone(),
                        expected: Some(*id),
                        new: None,
                        reason: "push failed; undo".into(),
                    })
                    .collect::<Vec<_>>(),
            );
            Err(match e {
                VaultError::PushRace { remote } => VaultError::Push {
                    remote,
                    detail: format!("another promotion of {model} was pushed first and took this counter; nothing was published. Run the same command again: it fetches the new tags and numbers the next one"),
                },
                other => other,
            })
        }
    }
}

/// The commit of main a new tag is made against (named in its
/// `Mvault-Record`), and the earliest time the tag can honestly carry: not
/// before that record nor before the commit it points at, whatever this
/// machine's clock says.
fn record_point(
    vault: &Vault,
    target: ObjectId,
    now: OffsetDateTime,
) -> Result<(ObjectId, i64), VaultError> {
    let (tip, _) = vault.main()?;
    let dated = |c: ObjectId| -> Result<i64, VaultError> {
        let (_, data) = vault.store.object(c)?;
        Ok(crate::store::objects::parse_commit(&data)?.committer.time)
    };
    let time = now.unix_timestamp().max(dated(tip)?).max(dated(target)?);
    Ok((tip, time))
}

/// What approve and promote act on: the version (its manifest signature
/// checked), the policy on main, and the acting user.
struct Subject {
    model: ModelName,
    version: Version,
    rec: crate::vault::VersionRecord,
    policy: Policy,
    user: String,
}

fn subject(
    vault: &Vault,
    r: &VersionRef,
    who: &SshIdentity,
    push: bool,
) -> Result<Subject, VaultError> {
    if push {
        refresh_from_remote(vault, &sync::TagScope::model(r.model()))?;
    }
    let (model, version) = crate::ops::resolve::resolve(vault, r)?;
    let rec = vault.record(&model, &version)?;
    vault.verify_manifest_signature(&rec)?;
    let policy = vault.policy()?;
    let user = signer_user(&policy, who)?;
    Ok(Subject {
        model,
        version,
        rec,
        policy,
        user,
    })
}

/// `mvault approve REF --stage STAGE`.
pub fn approve(
    vault: &Vault,
    r: &VersionRef,
    stage: Stage,
    comment: Option<&str>,
    who: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<TagOutcome, VaultError> {
    let Subject {
        model,
        version,
        rec,
        policy,
        user,
    } = subject(vault, r, who, push)?;
    let rule = rule_for(&policy, &model, stage);
    policy.check_role(&user, &model, rule.approver_role, Ability::Approve, now)?;
    if !rule.allow_self_approval && user == rec.manifest.author {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: format!("{user} is the author of this version; the policy does not allow self-approval for {stage}"),
        });
    }
    let commit = registering_commit(vault, &model, &version)?;
    let name = approval_name(stage, &user, &model, &version);
    if vault
        .store
        .ref_target(&format!("refs/tags/{name}"))?
        .is_some()
    {
        return Err(VaultError::Input {
            path: name,
            reason: "you already approved this version for this stage; approvals are immutable"
                .into(),
        });
    }
    let digest = Sha256Digest::of(rec.manifest_text.as_bytes());
    let (record, time) = record_point(vault, commit, now)?;
    let mut msg = format!(
        "approve {model}@{version} for {stage}\n\nMvault-Action: approve\nMvault-Model: {model}\nMvault-Version: {version}\nMvault-Stage: {stage}\nMvault-Approver: {user}\nMvault-Manifest-Sha256: {digest}\nMvault-Record: {record}\n"
    );
    if let Some(c) = comment {
        msg.push_str(&format!("Mvault-Comment: {}\n", one_line(c)));
    }
    let actor = Actor { name: user, time };
    let tag = vault
        .store
        .write_signed_tag(commit, &name, &actor, &msg, who)?;
    let pushed = publish(
        vault,
        vec![(format!("refs/tags/{name}"), tag)],
        push,
        &model,
    )?;
    Ok(TagOutcome {
        tags: vec![name],
        pushed,
        approvals: Vec::new(),
        from: None,
        to: stage.to_string(),
        model: model.to_string(),
        version: version.to_string(),
    })
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

struct PromotionPlan<'a> {
    model: &'a ModelName,
    version: &'a Version,
    commit: ObjectId,
    digest: String,
    from: Stage,
    to: Stage,
    action: PromotionAction,
    counter: u64,
    previous: Option<ObjectId>,
    /// The commit of main the promotion is made against.
    record: ObjectId,
    approvals: Vec<(String, String)>,
    ticket: Option<&'a str>,
    reason: Option<&'a str>,
}

fn write_promotion(
    vault: &Vault,
    p: &PromotionPlan<'_>,
    actor: &Actor,
    who: &SshIdentity,
) -> Result<(String, ObjectId), StoreError> {
    let name = promotion_name(p.model, p.to, p.counter);
    let verb = match p.action {
        PromotionAction::Promote => format!("promote {}@{} to {}", p.model, p.version, p.to),
        PromotionAction::Rollback => format!("roll back {} production to {}", p.model, p.version),
    };
    let mut msg = format!(
        "{verb}\n\nMvault-Action: {}\nMvault-Model: {}\nMvault-Version: {}\nMvault-Manifest-Sha256: {}\nMvault-From-Stage: {}\nMvault-To-Stage: {}\nMvault-Previous-Promotion: {}\n",
        p.action.as_str(),
        p.model,
        p.version,
        p.digest,
        p.from,
        p.to,
        p.previous.map(|id| id.to_string()).unwrap_or_else(|| "none".into())
    );
    msg.push_str(&format!("Mvault-Record: {}\n", p.record));
    for (n, id) in &p.approvals {
        msg.push_str(&format!("Mvault-Approval: {n} {id}\n"));
    }
    if let Some(t) = p.ticket {
        msg.push_str(&format!("Mvault-Ticket: {}\n", one_line(t)));
    }
    if let Some(r) = p.reason {
        msg.push_str(&format!("Mvault-Reason: {}\n", one_line(r)));
    }
    let id = vault
        .store
        .write_signed_tag(p.commit, &name, actor, &msg, who)?;
    Ok((name, id))
}

/// `mvault promote REF --to STAGE`.
#[allow(clippy::too_many_arguments)]
pub fn promote(
    vault: &Vault,
    r: &VersionRef,
    to: Stage,
    ticket: Option<&str>,
    reason: Option<&str>,
    who: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<TagOutcome, VaultError> {
    let Subject {
        model,
        version,
        rec,
        policy,
        user,
    } = subject(vault, r, who, push)?;
    let rule = rule_for(&policy, &model, to);
    policy.check_role(&user, &model, rule.promote_role, Ability::Promote, now)?;
    let stages = vault.believed_stages(&model)?;
    let from = stages.stage_of(&version.to_string()).stage;
    if !transition_allowed(from, to) {
        return Err(VaultError::StageMove {
            model,
            version,
            from,
            to,
        });
    }
    if rule.require_ticket && ticket.is_none() {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: format!("the policy requires a ticket for {to}: pass --ticket"),
        });
    }
    let digest = Sha256Digest::of(rec.manifest_text.as_bytes()).to_hex();
    let candidates: Vec<_> = approvals::approvals_for(&vault.store, &model, &version, to)?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let count = count_approvals(
        &policy,
        &rule,
        &model,
        &digest,
        &Parties {
            author: &rec.manifest.author,
            promoter: &user,
        },
        candidates,
        now,
    );
    if (count.counted.len() as u32) < rule.approvals {
        let mut reason = format!(
            "{to} needs {} approval(s) from {} (not the author{}); {} counted",
            rule.approvals,
            rule.approver_role,
            if rule.allow_self_approval {
                ""
            } else {
                " or promoter"
            },
            count.counted.len()
        );
        for (n, why) in &count.rejected {
            reason.push_str(&format!("; {n} does not count: {why}"));
        }
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: format!(
                "{reason}. Ask an approver: mvault approve {model}@{version} --stage {to}"
            ),
        });
    }
    let commit = registering_commit(vault, &model, &version)?;
    let (record, time) = record_point(vault, commit, now)?;
    let plan = PromotionPlan {
        model: &model,
        version: &version,
        commit,
        record,
        digest,
        from,
        to,
        action: PromotionAction::Promote,
        counter: stages.max_counter + 1,
        previous: stages.last().map(|p| p.id),
        approvals: count
            .counted
            .iter()
            .map(|a| (a.name.clone(), a.id.clone()))
            .collect(),
        ticket,
        reason,
    };
    let actor = Actor { name: user, time };
    let (name, id) = write_promotion(vault, &plan, &actor, who)?;
    let pushed = publish(
        vault,
        vec![
            (format!("refs/tags/{name}"), id),
            (seq_ref(&model, plan.counter), id),
        ],
        push,
        &model,
    )?;
    Ok(TagOutcome {
        tags: vec![name],
        pushed,
        approvals: plan.approvals.iter().map(|(n, _)| n.clone()).collect(),
        from: Some(from.to_string()),
        to: to.to_string(),
        model: model.to_string(),
        version: version.to_string(),
    })
}

/// `mvault rollback MODEL --to VERSION --reason R`: the version goes back to
/// production, the current production version to deprecated.
pub fn rollback(
    vault: &Vault,
    model: &ModelName,
    version: &Version,
    reason: &str,
    who: &SshIdentity,
    now: OffsetDateTime,
    push: bool,
) -> Result<TagOutcome, VaultError> {
    if push {
        refresh_from_remote(vault, &sync::TagScope::model(model))?;
    }
    let rec = vault.record(model, version)?;
    vault.verify_manifest_signature(&rec)?;
    let policy = vault.policy()?;
    let user = signer_user(&policy, who)?;
    // Who may roll back is production's rule's rollback_role (ml_admin
    // unless it names another), as the hook judges it.
    let rule = rule_for(&policy, model, Stage::Production);
    policy
        .check_role(&user, model, rule.rollback_role, Ability::Promote, now)
        .map_err(|mut d| {
            d.ability = "rollback";
            d
        })?;
    let stages = vault.believed_stages(model)?;
    let vs = stages.stage_of(&version.to_string());
    if !vs.ever_production {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: "was never in production; rollback only puts back a version that was (promote it instead)".into(),
        });
    }
    // What production serves (one definition: rules::stages); the rollback
    // replaces it, and moves it to deprecated below.
    let current = stages.serving(Stage::Production);
    if current.as_deref() == Some(version.to_string().as_str()) {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: "is already the current production version".into(),
        });
    }
    if vs.stage == Stage::Archived {
        return Err(VaultError::Input {
            path: format!("{model}@{version}"),
            reason: "is archived; archived versions do not come back".into(),
        });
    }
    let commit = registering_commit(vault, model, version)?;
    let (record, time) = record_point(vault, commit, now)?;
    let actor = Actor { name: user, time };
    let digest = Sha256Digest::of(rec.manifest_text.as_bytes()).to_hex();
    let back = PromotionPlan {
        model,
        version,
        commit,
        record,
        digest,
        from: vs.stage,
        to: Stage::Production,
        action: PromotionAction::Rollback,
        counter: stages.max_counter + 1,
        previous: stages.last().map(|p| p.id),
        approvals: Vec::new(),
        ticket: None,
        reason: Some(reason),
    };
    let (name1, id1) = write_promotion(vault, &back, &actor, who)?;
    let mut refs = vec![
        (format!("refs/tags/{name1}"), id1),
        (seq_ref(model, back.counter), id1),
    ];
    let mut tags = vec![name1];
    if let Some(cur) = current.filter(|c| *c != version.to_string()) {
        let cur_v = Version::parse(&cur)?;
        let cur_rec = vault.record(model, &cur_v)?;
        if stages.stage_of(&cur).stage == Stage::Production {
            let down = PromotionPlan {
                model,
                version: &cur_v,
                commit: registering_commit(vault, model, &cur_v)?,
                digest: Sha256Digest::of(cur_rec.manifest_text.as_bytes()).to_hex(),
                from: Stage::Production,
                to: Stage::Deprecated,
                // The demotion half of a rollback: judged with it, by the
                // production rule, not as a plain move to deprecated.
                action: PromotionAction::Rollback,
                counter: back.counter + 1,
                previous: Some(id1),
                record,
                approvals: Vec::new(),
                ticket: None,
                reason: Some(reason),
            };
            let (name2, id2) = write_promotion(vault, &down, &actor, who)?;
            refs.push((format!("refs/tags/{name2}"), id2));
            refs.push((seq_ref(model, down.counter), id2));
            tags.push(name2);
        }
    }
    let pushed = publish(vault, refs, push, model)?;
    Ok(TagOutcome {
        tags,
        pushed,
        approvals: Vec::new(),
        from: Some(vs.stage.to_string()),
        to: Stage::Production.to_string(),
        model: model.to_string(),
        version: version.to_string(),
    })
}

/// One model's versions and stages, as `mvault status` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub model: String,
    pub latest: Option<String>,
    /// For each stage that serves a version, that version: what
    /// `model#stage` names.
    pub stages: BTreeMap<&'static str, String>,
    /// Every stage, in stage order: what it serves, the newest promotion
    /// into it, and why it serves that or nothing.
    pub heads: Vec<StageHead>,
    /// Each version's stage, and whether that stage serves it.
    pub versions: Vec<VersionView>,
    /// Promotion tags of the model that are not believed (a stray or
    /// unsigned local tag, a forged one, a broken link), each with the rule
    /// it breaks. `status` leaves them out; `model#stage` refuses while
    /// any is present.
    pub untrusted_tags: Vec<AuditBreak>,
}

/// `mvault status [MODEL]`: every stage's head from the promotions that
/// replay (rules::stages decides what a stage serves), and every tag that
/// does not replay, named rather than fatal.
pub fn status(vault: &Vault, only: Option<&ModelName>) -> Result<Vec<ModelStatus>, VaultError> {
    let now = crate::vault::now().unix_timestamp();
    // What status shows chains back to the root keys, as REF#stage does.
    replay::verify_main(&vault.store, now).map_err(|b| VaultError::RecordBroken {
        object: b.object,
        rule: b.rule,
        detail: b.detail,
    })?;
    let (_, tree) = vault.main()?;
    let mut out = Vec::new();
    for (model, versions) in vault.models(tree)? {
        if only.is_some_and(|m| *m != model) {
            continue;
        }
        let chain = replay::model_chain(&vault.store, &model, now).map_err(|b| {
            VaultError::RecordBroken {
                object: b.object,
                rule: b.rule,
                detail: b.detail,
            }
        })?;
        let stages = chain.stages;
        out.push(ModelStatus {
            model: model.to_string(),
            latest: versions.last().map(|v| v.to_string()),
            stages: stages.serving_map(),
            heads: stages.heads(),
            versions: versions
                .iter()
                .map(|v| stages.version_view(&v.to_string()))
                .collect(),
            untrusted_tags: chain.rejected,
        });
    }
    if let Some(m) = only {
        if out.is_empty() {
            return Err(VaultError::NoSuchModel {
                model: m.to_string(),
            });
        }
    }
    Ok(out)
}
