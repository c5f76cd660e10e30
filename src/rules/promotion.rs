//! Promotion tags `<model>#<stage>#<n>`: one link of a model's hash chain.
//!
//! Checks, after those every tag passes (`rules::tags`):
//! 19. the counter is one more than the highest of the model and the tag
//!     names the previous promotion's object id (a broken or replayed chain);
//! 20. it points at the version's registering commit on main and binds its
//!     manifest digest;
//! 21. it is judged by the policy at the record it names;
//! 22. the move is legal from the stage the chain says the version is in
//!     (skipped stages; a rollback only to an earlier production version,
//!     with a reason, its demotion half right after it);
//! 23. the signer and the pusher hold the stage rule's promote role (for
//!     a rollback, both halves: production's `rollback_role`, ml_admin
//!     unless the rule names another); a ticket when the rule asks for one;
//! 24. enough approvals: known approval tags for this version and stage,
//!     binding this manifest, one per person, none by the author or the
//!     promoter unless the rule allows it.

use super::approvals::{count_approvals, Parties};
use super::context::{walk_deployment_after, Clock, Context};
use super::source::ObjectSource;
use super::stages::{refused_move, transition_allowed, ModelStages};
use super::tags::{check_tag_object, record_policy, registering_commit};
use super::{escape, Refusal, Rule};
use crate::model::approval::parse_approval;
use crate::model::names::{ModelName, Stage, Version};
use crate::model::policy::{Ability, Role};
use crate::model::promotion::{parse_promotion, Promotion, PromotionAction};
use crate::store::objects;

/// Judge promotion tag `name` (object `id`) of `model`, after `history`:
/// the model's promotions before it, in counter order.
pub fn judge_promotion(
    src: &dyn ObjectSource,
    ctx: &Context<'_>,
    subject: &str,
    name: &str,
    id: objects::ObjectId,
    model: &ModelName,
    history: &ModelStages,
) -> Result<Promotion, Refusal> {
    let checked = check_tag_object(src, subject, name, id)?;
    let bad = |e: String| {
        Refusal::new(
            Rule::BadPromotion,
            subject,
            e,
            "promote with mvault promote",
        )
    };
    let p = parse_promotion(name, id, &checked.data).map_err(|e| bad(e.to_string()))?;
    let version = Version::parse(&p.version).map_err(|e| bad(e.to_string()))?;
    // 19. The chain.
    if p.counter != history.max_counter + 1 {
        return Err(Refusal::new(
            Rule::WrongCounter,
            subject,
            format!(
                "counter {} but the next for {model} is {}",
                p.counter,
                history.max_counter + 1
            ),
            "fetch tags (git fetch --tags) and promote again",
        ));
    }
    let expected_prev = history.last().map(|q| q.id.to_string());
    if p.previous != expected_prev {
        return Err(Refusal::new(
            Rule::BrokenChain,
            subject,
            format!(
                "Mvault-Previous-Promotion is {}, the last promotion of {model} is {}",
                escape(p.previous.as_deref().unwrap_or("none")),
                expected_prev.as_deref().unwrap_or("none")
            ),
            "fetch tags and promote again",
        ));
    }
    // 20. The registering commit on main, and its manifest.
    let reg = registering_commit(src, ctx, subject, p.target, model, &version)?;
    if p.manifest_sha256 != reg.manifest_sha256 {
        return Err(Refusal::new(
            Rule::PromotionDigest,
            subject,
            format!(
                "binds manifest {}, {model}@{version}'s is {}",
                escape(&p.manifest_sha256),
                reg.manifest_sha256
            ),
            "promote with mvault promote",
        ));
    }
    // 21. The policy of the record it names; the signer under it.
    let (policy, record) = record_policy(
        src,
        ctx,
        subject,
        p.record.as_deref(),
        checked.time,
        Rule::BadPromotion,
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
    // 21a. At push time, the record is not behind a deployment of the
    // model: the deployment was judged by the model's stages as of its
    // parent, and a promotion made against an older record would change
    // what the replay reads there (a version demoted "before" a
    // deployment the hook let in). Registrations and purges read the same
    // stages, but a late promotion can only archive more (the cap counts
    // fewer) and never moves an archived version, so the replay cannot
    // refuse them. Push only: the replay's tip is later.
    if let Clock::Server { .. } = ctx.clock {
        let record_id = p
            .record
            .as_deref()
            .and_then(objects::parse_id)
            .ok_or_else(|| Refusal::internal(subject, "a checked record without its id"))?;
        let later = walk_deployment_after(src, ctx.main.tip(), record_id, model)
            .map_err(|e| Refusal::internal(subject, e))?;
        if let Some(commit) = later {
            return Err(Refusal::new(
                Rule::RecordBehindModel,
                subject,
                format!(
                    "it was made against {record_id}, but main has commit {commit} (a deployment of {model}) after it"
                ),
                "fetch (git fetch) and promote again: mvault promote fetches first",
            ));
        }
    }
    // 21b. At push time, a tag into archived is dated now: its date
    // starts the version's retention clock (rule 84), and a date as early
    // as its record allows would make a purge by the purge_role due at
    // once. Push only: the replay cannot know when it arrived.
    if let Clock::Server { now, skew } = ctx.clock {
        if p.stage == Stage::Archived && checked.time < now.saturating_sub(skew) {
            return Err(Refusal::new(
                Rule::ArchiveBackdated,
                subject,
                format!(
                    "it moves {model}@{version} to archived dated {}, {} s before the judge's clock ({}, skew {skew} s); an archive tag starts the retention clock",
                    super::context::rfc3339(checked.time),
                    now - checked.time,
                    super::context::rfc3339(now)
                ),
                "archive when you push: mvault promote MODEL@VERSION --to archived (it pushes at once)",
            ));
        }
    }
    // 22. A legal move.
    let vs = history.stage_of(&p.version);
    if p.from != Some(vs.stage) {
        return Err(Refusal::new(
            Rule::WrongStage,
            subject,
            format!(
                "the tag says {model}@{version} leaves {}, the tags say it is in {}",
                p.from
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "none".into()),
                vs.stage
            ),
            "fetch tags and promote again",
        ));
    }
    match p.action {
        PromotionAction::Promote => {
            if !transition_allowed(vs.stage, p.stage) {
                return Err(Refusal::new(
                    Rule::StageSkipped,
                    subject,
                    format!(
                        "{model}@{version} is in {}; {}",
                        vs.stage,
                        refused_move(vs.stage, p.stage)
                    ),
                    "promote one stage at a time",
                ));
            }
        }
        PromotionAction::Rollback => {
            // A version put back in production that was there before, with
            // a reason; its optional second half moves the production
            // version it replaces to deprecated, right after the first.
            let back_in = p.stage == Stage::Production
                && vs.ever_production
                && vs.stage != Stage::Archived
                && !(vs.stage == Stage::Production
                    && history.serving(Stage::Production).as_deref() == Some(p.version.as_str()));
            let demotion = p.stage == Stage::Deprecated
                && vs.stage == Stage::Production
                && history.last().is_some_and(|q| {
                    q.action == PromotionAction::Rollback
                        && q.stage == Stage::Production
                        && q.counter + 1 == p.counter
                });
            if !(back_in || demotion) || p.reason.is_none() {
                return Err(Refusal::new(
                    Rule::BadRollback,
                    subject,
                    format!("{model}@{version} was never in production, is archived or already served, or no reason was given"),
                    "roll back only to an earlier production version, with --reason",
                ));
            }
        }
    }
    // 23. Roles, under the stage's rule (a rollback, both halves, by production's).
    let rule_stage = match p.action {
        PromotionAction::Rollback => Stage::Production,
        PromotionAction::Promote => p.stage,
    };
    let rule = policy.rule_for(model, rule_stage);
    let (needed, verb) = match p.action {
        PromotionAction::Rollback => (rule.rollback_role, "roll back"),
        PromotionAction::Promote => (rule.promote_role, "promote"),
    };
    let at = ctx.clock.judgement_time(checked.time);
    for (who, what, rule_id) in std::iter::once((user.as_str(), "promoter", Rule::Role))
        .chain(ctx.pusher.map(|p| (p, "pusher", Rule::PusherRole)))
    {
        policy
            .check_role(who, model, needed, Ability::Promote, at)
            .map_err(|d| {
                Refusal::new(
                    rule_id,
                    subject,
                    format!(
                        "{what} {} does not hold {needed} on {model}, which {verb} needs ({})",
                        escape(who),
                        escape(&d.to_string())
                    ),
                    match p.action {
                        PromotionAction::Rollback => format!(
                            "have an ml_admin roll back, or ask one to name the role: mvault policy rule stage set --stage production --models '{}' --rollback-role {}",
                            rule.models,
                            Role::MlEngineer
                        ),
                        PromotionAction::Promote => format!(
                            "ask an ml_admin to grant {needed} on {model}, or have someone who holds it promote"
                        ),
                    },
                )
            })?;
    }
    if rule.require_ticket && p.ticket.is_none() && p.action == PromotionAction::Promote {
        return Err(Refusal::new(
            Rule::TicketRequired,
            subject,
            format!("promotions to {} need Mvault-Ticket", p.stage),
            "pass --ticket",
        ));
    }
    // 24. Approvals.
    if p.action == PromotionAction::Promote && rule.approvals > 0 {
        let mut candidates = Vec::new();
        for (aname, aid) in &p.approvals {
            let Some(aid) = objects::parse_id(aid) else {
                return Err(Refusal::new(
                    Rule::BadApproval,
                    subject,
                    format!("{} has a malformed id", escape(aname)),
                    "promote with mvault",
                ));
            };
            let known = src
                .ref_target(&format!("refs/tags/{aname}"))
                .map_err(|e| Refusal::internal(subject, e))?
                == Some(aid);
            if !known {
                return Err(Refusal::new(
                    Rule::UnknownApproval,
                    subject,
                    format!(
                        "{} {aid} is not an approval tag in the vault",
                        escape(aname)
                    ),
                    "push the approval first",
                ));
            }
            let (_, data) = src.object(aid).map_err(|e| Refusal::internal(subject, e))?;
            let a = parse_approval(aname, aid, &data).map_err(|e| {
                Refusal::new(
                    Rule::BadApproval,
                    subject,
                    e.to_string(),
                    "approve with mvault approve",
                )
            })?;
            if a.stage != p.stage
                || a.model != p.model
                || a.version != p.version
                || a.target != p.target
            {
                return Err(Refusal::new(
                    Rule::ApprovalForOther,
                    subject,
                    format!(
                        "{} approves {}@{} for {}",
                        escape(aname),
                        a.model,
                        a.version,
                        a.stage
                    ),
                    "approve this version for this stage",
                ));
            }
            candidates.push(a);
        }
        let count = count_approvals(
            &policy,
            &rule,
            model,
            &reg.manifest_sha256,
            &Parties {
                author: &reg.author,
                promoter: &user,
            },
            candidates,
            at,
        );
        if (count.counted.len() as u32) < rule.approvals {
            let why: Vec<String> = count
                .rejected
                .iter()
                .map(|(n, w)| format!("{n}: {w}"))
                .collect();
            return Err(Refusal::new(
                Rule::NotEnoughApprovals,
                subject,
                format!(
                    "{} needs {} approval(s) from {}, {} counted{}{}",
                    p.stage,
                    rule.approvals,
                    rule.approver_role,
                    count.counted.len(),
                    if why.is_empty() { "" } else { "; " },
                    escape(&why.join("; "))
                ),
                format!(
                    "ask an approver: mvault approve {model}@{version} --stage {}",
                    p.stage
                ),
            ));
        }
    }
    Ok(p)
}
