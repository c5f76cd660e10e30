//! The replay driver: `mvault audit verify`, and the chain checks every
//! client command relies on. The whole record is judged again from the
//! repository alone, by the same rules the hook applied: every commit of
//! `main` by its parent's policy, every tag by the policy its rules name,
//! every promotion chain link by link. It names the first thing that
//! breaks.

use std::collections::{BTreeMap, BTreeSet};

use crate::audit::events::{AuditBreak, AuditReport};
use crate::model::approval::APPROVAL_PREFIX;
use crate::model::names::ModelName;
use crate::model::promotion::parse_promotion_name;
use crate::rules::commit::{judge_commit, recorded_roots, Action};
use crate::rules::context::DEFAULT_SKEW_SECONDS;
use crate::rules::payload::judge_payload;
use crate::rules::promotion::judge_promotion;
use crate::rules::stages::ModelStages;
use crate::rules::tags::{judge_approval, judge_registration};
use crate::rules::{source, Clock, Context, MainLine, Refusal, RootKeys};
use crate::server::config::ServerConfig;
use crate::server::log::{verify_log, LOG_FILE};
use crate::store::objects::ObjectId;
use crate::store::{Store, StoreError, MAIN_REF};
use crate::vault::main_index::{indexed, verified_index, MainIndex};
use crate::vault::stages::read_promotion;

/// main as a replay sees it: a known set of commits, the clone's index of
/// the main it replayed, or the ancestry of the tip.
pub struct ReplayedMain<'a> {
    store: &'a Store,
    tip: ObjectId,
    commits: Option<BTreeSet<ObjectId>>,
    /// For each commit of main, the date of the first policy commit after
    /// it, when the whole of main was replayed.
    policy_after: Option<BTreeMap<ObjectId, Option<i64>>>,
    /// main up to `tip` as this clone replayed it before.
    index: Option<MainIndex>,
}

impl MainLine for ReplayedMain<'_> {
    fn contains(&self, commit: ObjectId) -> Result<bool, StoreError> {
        if let Some(index) = &self.index {
            return Ok(index.contains(commit));
        }
        match &self.commits {
            Some(set) => Ok(set.contains(&commit)),
            None => self.store.is_ancestor(commit, self.tip),
        }
    }
    fn tip(&self) -> ObjectId {
        self.tip
    }
    fn policy_change_after(&self, commit: ObjectId) -> Result<Option<i64>, StoreError> {
        if let Some(after) = self
            .index
            .as_ref()
            .and_then(|i| i.policy_change_after(commit))
        {
            return Ok(after);
        }
        match &self.policy_after {
            Some(map) => Ok(map.get(&commit).copied().flatten()),
            None => crate::rules::context::walk_policy_change_after(self.store, self.tip, commit),
        }
    }
    fn stages_at(
        &self,
        model: &crate::model::names::ModelName,
        at: ObjectId,
    ) -> Result<ModelStages, StoreError> {
        crate::vault::stages::stages_at(self.store, model, at)
    }
}

fn brk(r: Refusal) -> AuditBreak {
    AuditBreak {
        object: r.subject,
        rule: r.rule.name().to_owned(),
        detail: r.detail,
    }
}

fn unreadable(object: &str, e: impl std::fmt::Display) -> AuditBreak {
    AuditBreak {
        object: object.to_owned(),
        rule: crate::rules::Rule::Internal.name().to_owned(),
        detail: e.to_string(),
    }
}

/// The root keys a replay trusts: those the repository's own config pins
/// (a server's, or a clone whose owner pinned them), else those the
/// vault's first commit records.
pub fn trusted_roots(store: &Store, first: ObjectId) -> Result<RootKeys, AuditBreak> {
    let cfg = ServerConfig::read(store).map_err(|e| unreadable("config", e))?;
    if !cfg.root_keys.is_empty() {
        return Ok(cfg.roots());
    }
    let c = source::commit(store, first).map_err(|e| unreadable(&first.to_string(), e))?;
    Ok(RootKeys::from_fingerprints(recorded_roots(&c)))
}

/// The commits of `main`, oldest first, following first parents.
pub fn main_commits(store: &Store) -> Result<Vec<ObjectId>, StoreError> {
    let mut out = Vec::new();
    let mut at = store.main_tip()?;
    while let Some(id) = at {
        out.push(id);
        at = store.commit_parents(id)?.first().copied();
    }
    out.reverse();
    Ok(out)
}

pub use crate::vault::main_index::VERIFIED_REF;

/// Replay the commits of `main` this clone has not replayed yet, from the
/// root keys on, and remember the tip: what every client command believes
/// chains back to the vault's root keys through signed history, at a cost
/// that follows what is new. A `main` that does not descend from the one
/// replayed before is refused. What was replayed is also kept as a
/// [`MainIndex`], so that later questions about main need no walk.
pub fn verify_main(store: &Store, now: i64) -> Result<ObjectId, AuditBreak> {
    let tip = store
        .main_tip()
        .map_err(|e| unreadable(MAIN_REF, e))?
        .ok_or_else(|| unreadable(MAIN_REF, "main has no commits"))?;
    let done = store
        .ref_target(VERIFIED_REF)
        .map_err(|e| unreadable(VERIFIED_REF, e))?;
    if done == Some(tip) {
        return Ok(tip);
    }
    // The new commits, from the tip back to the main replayed before. main
    // is linear (a merge commit breaks a rule), so a main that descends
    // from it meets it on this walk; one that reaches its first commit
    // without meeting it is a rewrite (a server forking history from
    // before a revocation, say): refused, never replayed afresh.
    let mut new = Vec::new();
    let mut at = Some(tip);
    while let Some(id) = at {
        if Some(id) == done {
            break;
        }
        new.push(id);
        at = store
            .commit_parents(id)
            .map_err(|e| unreadable(&id.to_string(), e))?
            .first()
            .copied();
    }
    if let (Some(d), None) = (done, at) {
        return Err(AuditBreak {
            object: MAIN_REF.into(),
            rule: "main rewritten".into(),
            detail: format!(
                "main is at {tip}, which does not descend from {d}, the main this clone verified before; the server's history was rewritten"
            ),
        });
    }
    new.reverse();
    let mut index = match done {
        Some(d) => MainIndex::load_or_rebuild(store, d).map_err(|e| unreadable(VERIFIED_REF, e))?,
        None => MainIndex::default(),
    };
    let first = match (index.root(), new.first()) {
        (Some(root), _) | (None, Some(&root)) => root,
        (None, None) => return Err(unreadable(MAIN_REF, "main has no commits")),
    };
    let roots = trusted_roots(store, first)?;
    let main = ReplayedMain {
        store,
        tip,
        commits: None,
        policy_after: None,
        index: None,
    };
    let ctx = Context {
        roots: &roots,
        clock: Clock::Replay {
            now,
            skew: DEFAULT_SKEW_SECONDS,
        },
        pusher: None,
        main: &main,
    };
    for id in &new {
        let v = judge_commit(store, &ctx, &id.to_string(), *id).map_err(brk)?;
        let c = source::commit(store, *id).map_err(|e| unreadable(&id.to_string(), e))?;
        let mut entry = indexed(*id, &c.message, c.committer.time);
        if !matches!(v.action, Action::Policy) {
            entry.policy_time = None;
        }
        index.extend([entry]);
    }
    // Only a clone remembers; a failure to remember costs a replay later.
    // The index first: it is believed only when it ends where the ref
    // points, so a kill between the two costs a rebuild, never a lie.
    let _ = index.save(store);
    let _ = store.update_refs(&[crate::store::RefUpdate {
        name: VERIFIED_REF.into(),
        expected: done,
        new: Some(tip),
        reason: "mvault: main replayed from the root keys".into(),
    }]);
    Ok(tip)
}

/// Replay the whole record; the first break, if any, is in the report.
pub fn verify(store: &Store, now: i64) -> AuditReport {
    let mut report = AuditReport {
        ok: true,
        commits: 0,
        tags: 0,
        signatures: 0,
        versions_decrypted: 0,
        first_break: None,
        receipts: None,
    };
    if let Err(b) = replay(store, now, &mut report) {
        report.ok = false;
        report.first_break = Some(b);
    }
    report
}

fn replay(store: &Store, now: i64, report: &mut AuditReport) -> Result<(), AuditBreak> {
    let commits = main_commits(store).map_err(|e| unreadable(MAIN_REF, e))?;
    let (Some(first), Some(tip)) = (commits.first().copied(), commits.last().copied()) else {
        return Err(unreadable(MAIN_REF, "main has no commits"));
    };
    let roots = trusted_roots(store, first)?;
    let mut main = ReplayedMain {
        store,
        tip,
        commits: Some(commits.iter().copied().collect()),
        policy_after: None,
        index: None,
    };
    let mut policy_dates = Vec::new();
    {
        let ctx = Context {
            roots: &roots,
            clock: Clock::Replay {
                now,
                skew: DEFAULT_SKEW_SECONDS,
            },
            pusher: None,
            main: &main,
        };
        for id in &commits {
            let v = judge_commit(store, &ctx, &id.to_string(), *id).map_err(brk)?;
            report.commits += 1;
            report.signatures += 1;
            match v.action {
                Action::Register {
                    payload, manifest, ..
                } => {
                    report.signatures += 1;
                    // The payload, when this repository has it (a record-only
                    // clone fetches only the versions it pulls; a purged
                    // version's is gone by design).
                    if store.has_object(payload) {
                        judge_payload(store, &id.to_string(), &manifest, payload).map_err(brk)?;
                    }
                }
                Action::Purge { .. } | Action::Deploy { .. } => {}
                Action::Policy => {
                    let c =
                        source::commit(store, *id).map_err(|e| unreadable(&id.to_string(), e))?;
                    policy_dates.push((*id, c.committer.time));
                }
                Action::Init => {}
            }
        }
    }
    // Each commit's next policy change, from the end of main back.
    let mut after = BTreeMap::new();
    let mut next = None;
    for id in commits.iter().rev() {
        after.insert(*id, next);
        if let Some((_, d)) = policy_dates.iter().find(|(p, _)| p == id) {
            next = Some(*d);
        }
    }
    main.policy_after = Some(after);
    let ctx = Context {
        roots: &roots,
        clock: Clock::Replay {
            now,
            skew: DEFAULT_SKEW_SECONDS,
        },
        pusher: None,
        main: &main,
    };
    // Tags: registrations and approvals one by one, promotions per model.
    let tags = store
        .refs_with_prefix("refs/tags/")
        .map_err(|e| unreadable("refs/tags", e))?;
    let mut chains: BTreeMap<ModelName, Vec<(u64, String, ObjectId)>> = BTreeMap::new();
    for (full, id) in &tags {
        let name = full.trim_start_matches("refs/tags/");
        report.tags += 1;
        report.signatures += 1;
        if name.starts_with(APPROVAL_PREFIX) {
            judge_approval(store, &ctx, name, name, *id).map_err(brk)?;
        } else if let Some((model, _, n)) = parse_promotion_name(name) {
            chains
                .entry(model)
                .or_default()
                .push((n, name.to_owned(), *id));
        } else {
            judge_registration(store, &ctx, name, name, *id).map_err(brk)?;
        }
    }
    for (model, mut links) in chains {
        links.sort();
        replay_chain(store, &ctx, &model, &links)?;
    }
    // Every commit and tag received under a receipt of the pinned server key.
    report.receipts = super::receipts::verify_receipts(store, &commits, &tags)?;
    // The server's decision log, when this is the server's repository.
    if store.git_dir().join(LOG_FILE).exists() {
        verify_log(store.git_dir()).map_err(|e| AuditBreak {
            object: LOG_FILE.into(),
            rule: "server log chain broken".into(),
            detail: e,
        })?;
    }
    Ok(())
}

/// Replay one model's promotions in counter order, each judged after the
/// ones before it.
fn replay_chain(
    store: &Store,
    ctx: &Context<'_>,
    model: &ModelName,
    links: &[(u64, String, ObjectId)],
) -> Result<ModelStages, AuditBreak> {
    let mut replayed = ModelStages::default();
    for (_, name, id) in links {
        let p = judge_promotion(store, ctx, name, name, *id, model, &replayed).map_err(brk)?;
        replayed.max_counter = p.counter;
        replayed.promotions.push(p);
    }
    Ok(replayed)
}

/// One model's promotion chain as a client believes it: the promotions
/// that replay, and every promotion tag that does not, with why.
#[derive(Debug, Clone, Default)]
pub struct ModelChain {
    /// The promotions that replay, in counter order.
    pub stages: ModelStages,
    /// Each tag left out: unreadable (a stray or unsigned local tag), or
    /// breaking a rule of the chain; in the order they were met.
    pub rejected: Vec<AuditBreak>,
}

/// What a tag in the promotion form is when it cannot be one of mvault's
/// (signed, annotated): a lightweight tag, or an unsigned one.
fn stray_tag(store: &Store, id: ObjectId) -> Option<String> {
    let (_, data) = store.object(id).ok()?;
    match crate::store::objects::parse_tag(&data) {
        Err(_) => Some(
            "a lightweight tag (made without -a or -s): it points straight at a commit; mvault's promotions are signed annotated tags".into(),
        ),
        Ok(t) if t.signature.is_none() => Some(
            "an unsigned tag: mvault's promotions are signed (mvault promote)".into(),
        ),
        Ok(_) => None,
    }
}

/// Check one model's promotion chain against main as this repository has
/// it: what `REF#stage` relies on. Returns the replayed stages, or the
/// first tag that breaks the chain.
pub fn verify_model_chain(
    store: &Store,
    model: &ModelName,
    now: i64,
) -> Result<ModelStages, AuditBreak> {
    let chain = model_chain(store, model, now)?;
    match chain.rejected.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(chain.stages),
    }
}

/// Replay one model's promotion tags in counter order, each judged after
/// the ones believed before it; a tag that does not parse or breaks a rule
/// is left out and named, and the replay goes on (a later tag that chains
/// to a left-out one breaks in turn). What `status` shows;
/// [`verify_model_chain`] refuses at the first tag left out.
pub fn model_chain(store: &Store, model: &ModelName, now: i64) -> Result<ModelChain, AuditBreak> {
    let tip = store
        .main_tip()
        .map_err(|e| unreadable(MAIN_REF, e))?
        .ok_or_else(|| unreadable(MAIN_REF, "main has no commits"))?;
    // The replayed main's index answers which commits are on main and when
    // the policy changed without a walk; without one, git is asked.
    let index = verified_index(store);
    let first = match index.as_ref().and_then(MainIndex::root) {
        Some(root) => root,
        None => store
            .root_commit(tip)
            .map_err(|e| unreadable(MAIN_REF, e))?,
    };
    let roots = trusted_roots(store, first)?;
    let main = ReplayedMain {
        store,
        tip,
        commits: None,
        policy_after: None,
        index,
    };
    let ctx = Context {
        roots: &roots,
        clock: Clock::Replay {
            now,
            skew: DEFAULT_SKEW_SECONDS,
        },
        pusher: None,
        main: &main,
    };
    let prefix = format!("refs/tags/{model}#");
    let mut chain = ModelChain::default();
    let mut links = Vec::new();
    for (full, id) in store
        .refs_with_prefix(&prefix)
        .map_err(|e| unreadable(&prefix, e))?
    {
        let name = full.trim_start_matches("refs/tags/");
        if let Some((m, _, n)) = parse_promotion_name(name) {
            if &m == model {
                // Read first, so a tag that does not parse is named as such:
                // a stray tag by what it is, else by what does not parse.
                let stray = stray_tag(store, id);
                match read_promotion(store, name, id) {
                    Ok(_) if stray.is_none() => links.push((n, name.to_owned(), id)),
                    Ok(_) => chain.rejected.push(AuditBreak {
                        object: name.to_owned(),
                        rule: crate::rules::Rule::BadPromotion.name().to_owned(),
                        detail: stray.unwrap_or_default(),
                    }),
                    Err(e) => chain.rejected.push(AuditBreak {
                        object: name.to_owned(),
                        rule: crate::rules::Rule::BadPromotion.name().to_owned(),
                        detail: stray.unwrap_or_else(|| e.to_string()),
                    }),
                }
            }
        }
    }
    links.sort();
    for (_, name, id) in &links {
        match judge_promotion(store, &ctx, name, name, *id, model, &chain.stages) {
            Ok(p) => {
                chain.stages.max_counter = p.counter;
                chain.stages.promotions.push(p);
            }
            Err(r) => chain.rejected.push(brk(r)),
        }
    }
    Ok(chain)
}
