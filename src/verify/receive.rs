//! The receive driver: the server's pre-receive hook, where trust is
//! enforced.
//!
//! git hands the hook one `<old> <new> <ref>` line per ref a push wants to
//! move, with the pushed objects still in quarantine. This driver checks
//! what only a push has (ref namespaces, deletions, fast-forward, the
//! pusher, staleness), then hands every commit and tag to the rules core,
//! the same functions `audit verify` replays. It never decrypts and needs
//! no secret: it reads manifests, signatures, tree entries, object and age
//! headers, never payloads, so its cost follows what the push adds. Any
//! refusal refuses the whole push; any internal error refuses too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use time::OffsetDateTime;

use crate::model::manifest::Manifest;
use crate::model::names::{self, parse_payload_ref, ModelName, DATA_PREFIX};
use crate::model::promotion::{parse_promotion_name, seq_ref, Promotion, SEQ_PREFIX};
use crate::model::receipt::{RECEIPTS_REF, TIMESTAMP_REF};
use crate::model::report::{IntegrityReport, REPORT_PREFIX};
use crate::model::updates::{parse_updates, Update};
use crate::model::witness::WITNESS_PREFIX;
use crate::rules::commit::{judge_commit, Action};
use crate::rules::payload::judge_payload;
use crate::rules::promotion::judge_promotion;
use crate::rules::report::{judge_report, AcceptedReport};
use crate::rules::stages::ModelStages;
use crate::rules::tags::{judge_approval, judge_registration};
use crate::rules::witness::judge_witness;
use crate::rules::{
    escape, Accepted, Clock, Context, MainLine, ObjectSource, Refusal, RootKeys, Rule,
};
use crate::server::alerts::{new_grants, GrantLine};
use crate::server::config::{
    pusher_from_env, ServerConfig, ServerIdentity, IDENTITY_VARS, LOCAL_USER_CONFIG,
};
use crate::server::log::append_log;
use crate::server::receipts::{receipts_enabled, record_pending, settle_pending};
use crate::store::objects::{ObjectId, ObjectKind};
use crate::store::{Store, StoreError, MAIN_REF};
use crate::vault::stages::read_stages_excluding;

/// The longest chain of new commits one push may add.
pub const MAX_PUSH_COMMITS: usize = 10_000;

/// The repository as the rules see it during a push: the store's objects,
/// and its refs plus the ones this push creates.
pub struct PushView<'a> {
    store: &'a Store,
    created: BTreeMap<String, ObjectId>,
}

impl<'a> PushView<'a> {
    pub fn new(store: &'a Store, updates: &[Update]) -> Self {
        PushView {
            store,
            created: updates
                .iter()
                .filter_map(|u| u.new_id().map(|id| (u.refname.clone(), id)))
                .collect(),
        }
    }
}

impl ObjectSource for PushView<'_> {
    fn object(&self, id: ObjectId) -> Result<(ObjectKind, Vec<u8>), StoreError> {
        self.store.object(id)
    }
    fn object_size(&self, id: ObjectId) -> Result<u64, StoreError> {
        self.store.object_size(id)
    }
    fn blob_prefix(&self, id: ObjectId, max: usize) -> Result<Vec<u8>, StoreError> {
        self.store.blob_prefix(id, max)
    }
    fn has_object(&self, id: ObjectId) -> bool {
        self.store.has_object(id)
    }
    fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError> {
        match self.created.get(name) {
            Some(id) => Ok(Some(*id)),
            None => self.store.ref_target(name),
        }
    }
}

/// `main` after the push: the commits it adds, and the ones before.
struct PushedMain<'a> {
    store: &'a Store,
    before: Option<ObjectId>,
    pushed: BTreeSet<ObjectId>,
    tip: ObjectId,
}

impl MainLine for PushedMain<'_> {
    fn contains(&self, commit: ObjectId) -> Result<bool, StoreError> {
        if self.pushed.contains(&commit) {
            return Ok(true);
        }
        match self.before {
            Some(b) => self.store.is_ancestor(commit, b),
            None => Ok(false),
        }
    }
    fn tip(&self) -> ObjectId {
        self.tip
    }
    fn policy_change_after(&self, commit: ObjectId) -> Result<Option<i64>, StoreError> {
        crate::rules::context::walk_policy_change_after(self.store, self.tip, commit)
    }
    fn stages_at(
        &self,
        model: &crate::model::names::ModelName,
        at: ObjectId,
    ) -> Result<ModelStages, StoreError> {
        crate::vault::stages::stages_at(self.store, model, at)
    }
}

/// What a push is judged against besides its objects.
pub struct PushContext<'a> {
    pub roots: &'a RootKeys,
    pub clock: Clock,
    pub pusher: Option<&'a str>,
    /// main as the judge knows it before the push (the server's, or the
    /// client's last fetch of it).
    pub main_before: Option<ObjectId>,
}

/// Judge every update of a push; the first refusal refuses the push.
pub fn judge_push(
    store: &Store,
    pc: &PushContext<'_>,
    updates: &[Update],
) -> Result<Vec<Accepted>, Refusal> {
    // Integrity reports travel alone and are judged apart (rules 98 to 101).
    if updates.iter().any(|u| u.refname.starts_with(REPORT_PREFIX)) {
        return judge_report_push(store, pc, updates)
            .map(|reports| reports.into_iter().map(|r| r.accepted).collect());
    }
    // 1. Known namespaces only; 2. nothing is ever deleted.
    for u in updates {
        let r = &u.refname;
        // 0. The receipt chain and the timestamp are written by the server
        //    alone (after a push landed): a pushed one would forge them.
        if r == RECEIPTS_REF || r == TIMESTAMP_REF {
            return Err(Refusal::new(
                Rule::ReceiptsRef,
                r,
                "receipts and the timestamp are written by the server after a push lands, never pushed",
                "push main and mvault tags only (a mirror: leave refs/mvault/receipts and refs/mvault/timestamp out)",
            ));
        }
        if r.starts_with(DATA_PREFIX) {
            if parse_payload_ref(r).is_none() {
                return Err(Refusal::new(
                    Rule::UnknownNamespace,
                    r,
                    "a payload ref is refs/mvault/data/<model>/<version>",
                    "push payload refs with mvault add",
                ));
            }
            // Deletions of payload refs are judged below, against purges.
            continue;
        }
        let witness = r.starts_with(WITNESS_PREFIX);
        if r != MAIN_REF && !r.starts_with("refs/tags/") && !r.starts_with(SEQ_PREFIX) && !witness {
            return Err(Refusal::new(
                Rule::UnknownNamespace,
                r,
                "only refs/heads/main, refs/tags/*, refs/mvault/seq/*, refs/mvault/data/* and refs/mvault/witness/* are kept in a vault",
                "push main and mvault tags only",
            ));
        }
        if u.is_deletion() {
            return Err(Refusal::new(
                Rule::Deletion,
                r,
                "refs are never deleted from a vault (only a purged version's payload ref)",
                "the record is append-only; register a new version instead",
            ));
        }
    }
    let view = PushView::new(store, updates);
    let mut accepted = Vec::new();
    // Witness cosignatures, judged under the policy in force (rules 95–97).
    for u in updates
        .iter()
        .filter(|u| u.refname.starts_with(WITNESS_PREFIX))
    {
        let r = &u.refname;
        let new = u
            .new_id()
            .ok_or_else(|| Refusal::internal(r, "no new id"))?;
        let base = pc
            .main_before
            .ok_or_else(|| Refusal::internal(r, "the vault has no main branch yet"))?;
        let policy =
            crate::rules::source::policy_at(&view, base).map_err(|e| Refusal::internal(r, e))?;
        let now = pc.clock.judgement_time(i64::MAX);
        accepted.push(judge_witness(
            &view,
            &policy,
            r,
            u.old_id(),
            new,
            pc.pusher,
            now,
        )?);
    }
    let mut registered: BTreeMap<String, (ObjectId, Box<Manifest>)> = BTreeMap::new();
    let mut purged: BTreeSet<String> = BTreeSet::new();
    // 3. main first, so tags can point at the commits this push adds.
    let (pushed, tip) = match updates.iter().find(|u| u.refname == MAIN_REF) {
        Some(u) => {
            let new = u
                .new_id()
                .ok_or_else(|| Refusal::internal(MAIN_REF, "no new id"))?;
            let chain = main_chain(store, u, new, pc.main_before)?;
            let main = PushedMain {
                store,
                before: pc.main_before,
                pushed: chain.iter().copied().collect(),
                tip: new,
            };
            // After the first commit, a root key counts only if the vault
            // records it too: the replay and every client trust the
            // recorded keys, so a key only the server pins would sign
            // policy that no client can follow. Read only when a root key
            // could matter (a policy change), so the cost does not grow
            // with history otherwise.
            let roots = match pc.main_before {
                Some(before) if has_policy_commit(store, &chain) => {
                    let recorded = super::prepush::vault_roots(store, before)
                        .map_err(|e| Refusal::internal(MAIN_REF, e))?;
                    pc.roots.intersect(&recorded)
                }
                _ => pc.roots.clone(),
            };
            let ctx = Context {
                roots: &roots,
                clock: pc.clock,
                pusher: pc.pusher,
                main: &main,
            };
            for (i, c) in chain.iter().enumerate() {
                let v = judge_commit(&view, &ctx, MAIN_REF, *c)?;
                // A policy change takes effect for the next push: it ends
                // its own, so every commit of a push is judged by the
                // policy in force before it (the parent's, for each).
                if v.action == Action::Policy && pc.main_before.is_some() && i + 1 != chain.len() {
                    return Err(Refusal::new(
                        Rule::PolicyNotLast,
                        MAIN_REF,
                        format!(
                            "policy commit {c} is followed by {} more commit(s) in the same push",
                            chain.len() - i - 1
                        ),
                        "push the policy change on its own, then the rest",
                    ));
                }
                match v.action {
                    Action::Register {
                        model,
                        version,
                        payload,
                        manifest,
                    } => {
                        registered.insert(
                            format!("{DATA_PREFIX}{model}/{version}"),
                            (payload, manifest),
                        );
                    }
                    Action::Purge { model, version } => {
                        purged.insert(format!("{DATA_PREFIX}{model}/{version}"));
                    }
                    _ => {}
                }
                accepted.push(v.accepted);
            }
            (main.pushed, new)
        }
        None => match pc.main_before {
            Some(b) => (BTreeSet::new(), b),
            None => {
                let r = updates
                    .first()
                    .map(|u| u.refname.as_str())
                    .unwrap_or(MAIN_REF);
                return Err(Refusal::new(
                    Rule::NonFastForward,
                    r,
                    "the vault has no main branch yet",
                    "push main first",
                ));
            }
        },
    };
    let main = PushedMain {
        store,
        before: pc.main_before,
        pushed,
        tip,
    };
    let ctx = context(pc, &main);
    // 4. Registrations and approvals; promotions wait for their counters.
    let mut promotions = Vec::new();
    let mut seqs: BTreeMap<String, ObjectId> = BTreeMap::new();
    // Payload refs: created with their version, never moved, deleted only
    // with a purge record.
    for u in updates
        .iter()
        .filter(|u| u.refname.starts_with(DATA_PREFIX))
    {
        let r = &u.refname;
        if u.is_deletion() {
            let on_main = match parse_payload_ref(r) {
                Some((m, v)) => {
                    let tree = store
                        .commit_tree(tip)
                        .map_err(|e| Refusal::internal(r, e))?;
                    store
                        .read_path(tree, &names::purge_path(&m, &v))
                        .map_err(|e| Refusal::internal(r, e))?
                        .is_some()
                }
                None => false,
            };
            if !purged.contains(r) && !on_main {
                return Err(Refusal::new(
                    Rule::Deletion,
                    r,
                    "a payload ref is deleted only with a purge record of its version on main",
                    "archive the version, then mvault purge MODEL@VERSION --reason TEXT",
                ));
            }
            accepted.push(Accepted {
                subject: r.clone(),
                what: "payload deleted under its purge record".into(),
            });
            continue;
        }
        let new = u
            .new_id()
            .ok_or_else(|| Refusal::internal(r, "no new id"))?;
        if !u.is_creation() {
            return Err(Refusal::new(
                Rule::PayloadRefMoved,
                r,
                format!("{} already points at {}", escape(r), u.old),
                "a version's payload is written once; register a new version",
            ));
        }
        let Some((payload, manifest)) = registered.remove(r) else {
            return Err(Refusal::new(
                Rule::PayloadRefWithoutVersion,
                r,
                "no commit of this push registers that version",
                "push a payload ref together with its version (mvault add)",
            ));
        };
        if new != payload {
            return Err(Refusal::new(
                Rule::PayloadMismatch,
                r,
                format!("points at {new}; the signed manifest names payload {payload}"),
                "push the payload that mvault add wrote",
            ));
        }
        judge_payload(&view, r, &manifest, new)?;
        accepted.push(Accepted {
            subject: r.clone(),
            what: format!("payload {new} of {}@{}", manifest.model, manifest.version),
        });
    }
    if let Some((r, (payload, _))) = registered.into_iter().next() {
        return Err(Refusal::new(
            Rule::PayloadRefMissing,
            &r,
            format!("the push registers the version but does not create its payload ref (tree {payload})"),
            "push the version with mvault add, which pushes main, the tag and the payload ref atomically",
        ));
    }
    for u in updates.iter().filter(|u| {
        u.refname != MAIN_REF
            && !u.refname.starts_with(DATA_PREFIX)
            && !u.refname.starts_with(WITNESS_PREFIX)
    }) {
        let r = &u.refname;
        let new = u
            .new_id()
            .ok_or_else(|| Refusal::internal(r, "no new id"))?;
        if !u.is_creation() {
            return Err(Refusal::new(
                Rule::TagMoved,
                r,
                format!("{} already points at {}", escape(r), u.old),
                "tags and promotion counters are immutable; register or promote anew",
            ));
        }
        if r.starts_with(SEQ_PREFIX) {
            seqs.insert(r.clone(), new);
            continue;
        }
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        if name.starts_with(crate::model::approval::APPROVAL_PREFIX) {
            accepted.push(judge_approval(&view, &ctx, r, name, new)?);
        } else if let Some((model, _, n)) = parse_promotion_name(name) {
            promotions.push((model, n, u, new));
        } else {
            accepted.push(judge_registration(&view, &ctx, r, name, new)?);
        }
    }
    // 5. Promotions in counter order, so a rollback's two tags chain in one push.
    promotions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let pushed_refs: BTreeSet<String> = updates.iter().map(|u| u.refname.clone()).collect();
    let mut histories: BTreeMap<ModelName, ModelStages> = BTreeMap::new();
    for (model, n, u, new) in promotions {
        let r = &u.refname;
        // Every promotion claims its counter with a seq ref in the same
        // push: git creates a ref once, so of two promotions racing for
        // one counter exactly one lands.
        let seq = seq_ref(&model, n);
        if seqs.remove(&seq) != Some(new) {
            return Err(Refusal::new(
                Rule::CounterNotClaimed,
                r,
                format!("the push must also create {seq} pointing at the same tag"),
                "promote with mvault, which pushes both atomically",
            ));
        }
        if !histories.contains_key(&model) {
            let h = read_stages_excluding(store, &model, &pushed_refs)
                .map_err(|e| Refusal::internal(r, e))?;
            histories.insert(model.clone(), h);
        }
        let history = histories.get_mut(&model).expect("inserted above");
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        let p = judge_promotion(&view, &ctx, r, name, new, &model, history)?;
        accepted.push(promotion_accepted(r, &p));
        history.max_counter = history.max_counter.max(p.counter);
        history.promotions.push(p);
    }
    if let Some((seq, _)) = seqs.into_iter().next() {
        return Err(Refusal::new(
            Rule::CounterNotClaimed,
            &seq,
            "a seq ref without its promotion tag",
            "promote with mvault",
        ));
    }
    Ok(accepted)
}

/// Judge a push of integrity reports: nothing else in it (rule 100), each
/// report ref new (rule 101), each report by the rules (98, 99).
pub fn judge_report_push(
    store: &Store,
    pc: &PushContext<'_>,
    updates: &[Update],
) -> Result<Vec<AcceptedReport>, Refusal> {
    if let Some(u) = updates
        .iter()
        .find(|u| !u.refname.starts_with(REPORT_PREFIX))
    {
        return Err(Refusal::new(
            Rule::ReportMixed,
            &u.refname,
            "a push that sends an integrity report sends nothing else",
            "push the report on its own (mvault does), then the rest",
        ));
    }
    let view = PushView::new(store, updates);
    let mut out = Vec::new();
    for u in updates {
        let r = &u.refname;
        if u.is_deletion() || !u.is_creation() {
            return Err(Refusal::new(
                Rule::ReportRewritten,
                r,
                format!(
                    "{} exists already; a report is written once and kept",
                    escape(r)
                ),
                "send a new report (a new report has a new id)",
            ));
        }
        let Some(tip) = pc.main_before else {
            return Err(Refusal::new(
                Rule::BadReport,
                r,
                "the vault has no main branch yet, so no policy says who may report",
                "push main first",
            ));
        };
        let main = PushedMain {
            store,
            before: Some(tip),
            pushed: BTreeSet::new(),
            tip,
        };
        let new = u
            .new_id()
            .ok_or_else(|| Refusal::internal(r, "no new id"))?;
        out.push(judge_report(&view, &context(pc, &main), r, new)?);
    }
    Ok(out)
}

/// The reports an accepted push sends, read back for the server log.
fn sent_reports(store: &Store, updates: &[Update]) -> Vec<(String, IntegrityReport)> {
    updates
        .iter()
        .filter(|u| u.refname.starts_with(REPORT_PREFIX))
        .filter_map(|u| {
            let c = crate::rules::source::commit(store, u.new_id()?).ok()?;
            let report = IntegrityReport::parse(c.message.as_bytes()).ok()?;
            Some((u.refname.clone(), report))
        })
        .collect()
}

/// The roles an accepted push's policy change grants, for the alerts.
fn granted(store: &Store, before: Option<ObjectId>, updates: &[Update]) -> Vec<GrantLine> {
    let (Some(before), Some(after)) = (
        before,
        updates
            .iter()
            .find(|u| u.refname == MAIN_REF)
            .and_then(|u| u.new_id()),
    ) else {
        return Vec::new();
    };
    use crate::rules::source::{policy_at, policy_blob_at};
    if policy_blob_at(store, before).ok() == policy_blob_at(store, after).ok() {
        return Vec::new();
    }
    match (policy_at(store, before), policy_at(store, after)) {
        (Ok(b), Ok(a)) => new_grants(&b, &a),
        _ => Vec::new(),
    }
}

fn context<'a>(pc: &'a PushContext<'a>, main: &'a dyn MainLine) -> Context<'a> {
    Context {
        roots: pc.roots,
        clock: pc.clock,
        pusher: pc.pusher,
        main,
    }
}

/// Whether any commit of `chain` says it changes the policy.
fn has_policy_commit(store: &Store, chain: &[ObjectId]) -> bool {
    chain.iter().any(|c| {
        crate::rules::source::commit(store, *c).is_ok_and(|c| {
            let t = crate::model::trailers::trailers(&c.message);
            crate::model::trailers::trailer(&t, "Mvault-Action") != Some("register")
        })
    })
}

fn promotion_accepted(r: &str, p: &Promotion) -> Accepted {
    Accepted {
        subject: r.to_owned(),
        what: format!(
            "{} {}@{} to {} by {}",
            p.action.as_str(),
            p.model,
            p.version,
            p.stage,
            p.tagger
        ),
    }
}

/// The commits a main update adds, oldest first: fast-forward only,
/// linear, as long as the push.
fn main_chain(
    store: &Store,
    u: &Update,
    new: ObjectId,
    before: Option<ObjectId>,
) -> Result<Vec<ObjectId>, Refusal> {
    let r = &u.refname;
    let old = u.old_id();
    if old != before {
        return Err(Refusal::new(
            Rule::StaleUpdate,
            r,
            format!(
                "main is at {}",
                before
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "nothing".into())
            ),
            "fetch and push again",
        ));
    }
    let mut chain = Vec::new();
    let mut at = new;
    loop {
        if Some(at) == old {
            break;
        }
        if !store.has_object(at) {
            return Err(Refusal::new(
                Rule::MissingObject,
                r,
                format!("commit {at} is not in the push"),
                "push again",
            ));
        }
        let parents = store
            .commit_parents(at)
            .map_err(|e| Refusal::internal(r, e))?;
        chain.push(at);
        match parents.as_slice() {
            [] if old.is_none() => break,
            [] => {
                return Err(Refusal::new(
                    Rule::NonFastForward,
                    r,
                    format!(
                        "{new} does not descend from main {}",
                        old.map(|o| o.to_string()).unwrap_or_default()
                    ),
                    "fetch, rebuild on the server's main (mvault add does this) and push again",
                ));
            }
            [p] => at = *p,
            _ => {
                return Err(Refusal::new(
                    Rule::MergeCommit,
                    r,
                    format!("commit {at} has {} parents; main is linear", parents.len()),
                    "rebase onto main instead of merging",
                ))
            }
        }
        if chain.len() > MAX_PUSH_COMMITS {
            return Err(Refusal::new(
                Rule::PushTooLarge,
                r,
                format!("more than {MAX_PUSH_COMMITS} new commits"),
                "push in smaller steps",
            ));
        }
    }
    chain.reverse();
    Ok(chain)
}

/// Run the hook: read git's lines, judge, log, answer. Returns the lines
/// to print and whether the push is accepted.
pub fn pre_receive(
    git_dir: &Path,
    input: &str,
    env: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> (bool, Vec<String>) {
    let updates = match parse_updates(input) {
        Ok(u) => u,
        Err(e) => return (false, vec![format!("mvault: refused: {e}")]),
    };
    let scratch = match tempfile::Builder::new().prefix("mvault-hook-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return (
                false,
                vec![format!(
                    "mvault: refused: internal error: cannot create a scratch directory: {e}"
                )],
            )
        }
    };
    let mut pusher = None;
    let mut reports = Vec::new();
    let mut grants = Vec::new();
    let outcome = (|| -> Result<Vec<Accepted>, Refusal> {
        let first = updates
            .first()
            .map(|u| u.refname.clone())
            .unwrap_or_default();
        let store = Store::open_quarantined(git_dir, scratch.path())
            .map_err(|e| Refusal::internal(&first, e))?;
        let cfg = ServerConfig::read(&store).map_err(|e| Refusal::internal(&first, e))?;
        if cfg.root_keys.is_empty() {
            return Err(Refusal::new(
                Rule::HookNotConfigured,
                &first,
                "no root key is pinned (mvault.rootKey)",
                "run mvault hook install REPO --root-key KEY.pub",
            ));
        }
        let Some(p) = pusher_from_env(&env, &cfg) else {
            return Err(Refusal::new(
                Rule::UnknownPusher,
                &first,
                format!("none of {} is set, and no {LOCAL_USER_CONFIG} is configured", IDENTITY_VARS.join(", ")),
                "the server must say who pushes (MVAULT_USER in authorized_keys, or the git server's own variable)",
            ));
        };
        let main_before = store.main_tip().map_err(|e| Refusal::internal(&first, e))?;
        // The server's name for the pusher, mapped through the aliases of
        // the policy in force before the push to the policy user every
        // rule judges.
        let in_force = main_before.and_then(|b| crate::rules::source::policy_at(&store, b).ok());
        let identity = ServerIdentity::resolve(p, in_force.as_ref());
        pusher = Some(identity.clone());
        let p = identity.user;
        let roots = cfg.roots();
        let pc = PushContext {
            roots: &roots,
            clock: Clock::Server {
                now: now.unix_timestamp(),
                skew: cfg.skew,
            },
            pusher: Some(&p),
            main_before,
        };
        let accepted = judge_push(&store, &pc, &updates)?;
        // What the log and the alerts add: the reports sent, the roles granted.
        reports = sent_reports(&store, &updates);
        grants = granted(&store, main_before, &updates);
        Ok(accepted)
    })();
    let mut lines = Vec::new();
    let address = crate::server::config::client_address_from_env(&env);
    // Pushes whose hooks have finished without landing are logged first,
    // so the log stays in the order things happened.
    let receipts = Store::open(git_dir).ok().filter(receipts_enabled);
    if let Some(store) = &receipts {
        if let Err(e) = settle_pending(store, now) {
            lines.push(format!(
                "mvault: warning: cannot settle earlier pushes in the decision log: {e}"
            ));
        }
    }
    let push = match append_log(
        git_dir,
        pusher.as_ref(),
        address.as_deref(),
        &updates,
        &outcome,
        &grants,
        now,
    ) {
        Ok(push) => push,
        Err(e) => {
            lines.push(format!(
                "mvault: refused: internal error: cannot write the decision log: {e}"
            ));
            lines.push("hint: the hook fails closed; ask the server admin to check the repository's permissions".into());
            return (false, lines);
        }
    };
    // An accept is pending until git's post-receive says it landed (its
    // receipt), or its hooks end without that (`not-landed`).
    if outcome.is_ok() && receipts.is_some() {
        if let Err(e) = record_pending(
            git_dir,
            &push,
            pusher.as_ref().map(|id| id.user.as_str()),
            &updates,
            now,
        ) {
            lines.push(format!(
                "mvault: warning: cannot record the push as pending: {e}"
            ));
        }
    }
    if let Some(id) = pusher.as_ref().filter(|id| id.server_name != id.user) {
        lines.push(format!(
            "mvault: pusher {} is policy user {} (an alias)",
            escape(&id.server_name),
            escape(&id.user)
        ));
    }
    for (refname, report) in &reports {
        let entry = serde_json::json!({
            "time": crate::vault::rfc3339(now),
            "event": "integrity-violation",
            "user": pusher.as_ref().map(|id| &id.user),
            "address": address,
            "ref": refname,
            "report": report,
        });
        if let Err(e) = crate::server::alerts::record(git_dir, entry, now) {
            lines.push(format!(
                "mvault: refused {}: internal error: cannot write the report to the server log: {e}",
                escape(refname)
            ));
            lines.push("hint: the hook fails closed; ask the server admin to check the repository's permissions".into());
            return (false, lines);
        }
    }
    match outcome {
        Ok(acc) => {
            for a in &acc {
                lines.push(format!(
                    "mvault: accepted {}: {}",
                    escape(&a.subject),
                    escape(&a.what)
                ));
            }
            (true, lines)
        }
        Err(refusal) => {
            lines.push(refusal.line());
            lines.push(format!("hint: {}", refusal.hint));
            (false, lines)
        }
    }
}
