//! The audit trail: events read from commits and tags, and a replay of the
//! whole history that checks every signature against the policy in force
//! at its point, every manifest against its tree, every key ring against
//! its readers and every promotion chain link.
//!
//! Events come from commit messages, tag messages and the key embedded in
//! each SSH signature, so listing them is cheap; `verify` does the
//! cryptography. Nothing outside git is needed to reconstruct history.

use std::collections::{BTreeMap, BTreeSet};

use gix::ObjectId;
use serde::Serialize;
use time::OffsetDateTime;

use crate::approvals;
use crate::crypto::{self, SshIdentity};
use crate::hook::{self, Judge, ServerConfig};
use crate::names::{ModelName, VersionRef};
use crate::stages::{self, trailer, trailers, ModelStages, PromotionAction};
use crate::store::{Store, MAIN_REF};
use crate::vault::{rfc3339, split_tag_signature, Vault, VaultError};

/// One thing that happened, as the record says.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub time: String,
    #[serde(skip)]
    pub unix: i64,
    /// init, register, approve, promote, rollback, deprecate, archive,
    /// policy, add-user, remove-user, grant, revoke, key-rewrap, key-rotation.
    pub action: String,
    pub actor: String,
    /// Fingerprint of the key that signed the object (as embedded in the signature).
    pub key: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub stage: Option<String>,
    pub from_stage: Option<String>,
    pub manifest_sha256: Option<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    /// What the policy change said, for policy events.
    pub detail: Option<String>,
    /// The commit id or the tag name the event comes from.
    pub source: String,
    pub object: String,
}

/// Which events to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub model: Option<globset::GlobMatcher>,
    pub version: Option<String>,
    pub actor: Option<String>,
    pub actions: Vec<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: Option<usize>,
}

impl Filter {
    fn keep(&self, e: &Event) -> bool {
        if let Some(g) = &self.model {
            if !e.model.as_deref().is_some_and(|m| g.is_match(m)) {
                return false;
            }
        }
        if self.version.is_some() && e.version != self.version {
            return false;
        }
        if self.actor.as_deref().is_some_and(|a| a != e.actor) {
            return false;
        }
        if !self.actions.is_empty() && !self.actions.contains(&e.action) {
            return false;
        }
        if self.since.is_some_and(|s| e.unix < s) || self.until.is_some_and(|u| e.unix > u) {
            return false;
        }
        true
    }
}

/// The fingerprint of the key embedded in an armored SSH signature.
fn embedded_key(sig: &[u8]) -> Option<String> {
    let s = ssh_key::SshSig::from_pem(sig).ok()?;
    Some(crypto::fingerprint(&ssh_key::PublicKey::new(
        s.public_key().clone(),
        "",
    )))
}

fn base_event(
    time: i64,
    action: &str,
    actor: &str,
    key: Option<String>,
    source: String,
    object: String,
) -> Event {
    Event {
        time: OffsetDateTime::from_unix_timestamp(time)
            .map(rfc3339)
            .unwrap_or_default(),
        unix: time,
        action: action.to_owned(),
        actor: actor.to_owned(),
        key,
        model: None,
        version: None,
        stage: None,
        from_stage: None,
        manifest_sha256: None,
        ticket: None,
        reason: None,
        detail: None,
        source,
        object,
    }
}

/// The commits of `main`, oldest first, with their raw bytes.
pub fn main_commits(store: &Store) -> Result<Vec<(ObjectId, Vec<u8>)>, VaultError> {
    let mut out = Vec::new();
    let mut at = store.main_tip()?;
    while let Some(id) = at {
        let (_, data) = store.object(id)?;
        at = gix::objs::CommitRef::from_bytes(&data, gix::hash::Kind::Sha1)
            .map_err(|e| crate::store::StoreError::Git(e.to_string()))?
            .parents()
            .next();
        out.push((id, data));
    }
    out.reverse();
    Ok(out)
}

fn commit_events(id: ObjectId, data: &[u8], out: &mut Vec<Event>) -> Result<(), VaultError> {
    let c = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
        .map_err(|e| crate::store::StoreError::Git(e.to_string()))?;
    let author = c
        .author()
        .map_err(|e| crate::store::StoreError::Git(e.to_string()))?;
    let time = author.time().map(|t| t.seconds).unwrap_or(0);
    let actor = author.name.to_string();
    let key = gix::objs::CommitRefIter::signature(data, gix::hash::Kind::Sha1)
        .ok()
        .flatten()
        .and_then(|(sig, _)| embedded_key(sig.as_ref()));
    let message = c.message.to_string();
    let t = trailers(&message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    let src = id.to_string();
    match get("Mvault-Action").as_deref() {
        Some("register") => {
            let mut e = base_event(time, "register", &actor, key, src.clone(), src);
            e.model = get("Mvault-Model");
            e.version = get("Mvault-Version");
            e.manifest_sha256 = get("Mvault-Manifest-Sha256");
            e.detail = get("Mvault-Parent-Version").map(|p| format!("parent {p}"));
            out.push(e);
        }
        Some("init") => out.push(base_event(time, "init", &actor, key, src.clone(), src)),
        Some("policy") => {
            for (k, v) in &t {
                let (action, model) = match k.as_str() {
                    "Mvault-Policy-Change" => {
                        (v.split(' ').next().unwrap_or("policy").to_owned(), None)
                    }
                    "Mvault-Key-Rewrap" => ("key-rewrap".to_owned(), Some(v.clone())),
                    "Mvault-Key-Rotation" => ("key-rotation".to_owned(), Some(v.clone())),
                    _ => continue,
                };
                let mut e =
                    base_event(time, &action, &actor, key.clone(), src.clone(), src.clone());
                e.detail = Some(v.clone());
                e.model = model;
                if k == "Mvault-Policy-Change" {
                    // "grant alice ml_engineer nlp/*": the glob is the subject.
                    let parts: Vec<&str> = v.split(' ').collect();
                    if matches!(parts.first(), Some(&"grant") | Some(&"revoke")) {
                        e.model = parts.get(3).map(|s| s.to_string());
                    }
                }
                out.push(e);
            }
        }
        other => {
            let mut e = base_event(time, "unknown", &actor, key, src.clone(), src);
            e.detail = Some(format!("Mvault-Action {:?}", other.unwrap_or("")));
            out.push(e);
        }
    }
    Ok(())
}

fn tag_event(store: &Store, name: &str, id: ObjectId) -> Result<Option<Event>, VaultError> {
    let (kind, data) = store.object(id)?;
    if kind != gix::object::Kind::Tag {
        return Ok(None);
    }
    let tag = gix::objs::TagRef::from_bytes(&data, gix::hash::Kind::Sha1)
        .map_err(|e| crate::store::StoreError::Git(e.to_string()))?;
    let tagger = tag.tagger().ok().flatten();
    let time = tagger
        .and_then(|s| s.time().ok())
        .map(|t| t.seconds)
        .unwrap_or(0);
    let actor = tagger.map(|s| s.name.to_string()).unwrap_or_default();
    let key = split_tag_signature(&data).and_then(|(_, sig)| embedded_key(sig));
    let message = String::from_utf8_lossy(tag.message).into_owned();
    let t = trailers(&message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    let src = name.to_owned();
    let obj = id.to_string();
    if let Some((model, stage, _)) = stages::parse_promotion_name(name) {
        let action = match (get("Mvault-Action").as_deref(), stage) {
            // A rollback's second half deprecates the version it replaces.
            (_, crate::names::Stage::Deprecated) => "deprecate",
            (_, crate::names::Stage::Archived) => "archive",
            (Some("rollback"), _) => "rollback",
            _ => "promote",
        };
        let mut e = base_event(time, action, &actor, key, src, obj);
        e.model = Some(model.to_string());
        e.version = get("Mvault-Version");
        e.stage = Some(stage.to_string());
        e.from_stage = get("Mvault-From-Stage");
        e.manifest_sha256 = get("Mvault-Manifest-Sha256");
        e.ticket = get("Mvault-Ticket");
        e.reason = get("Mvault-Reason");
        let approvals: Vec<String> = t
            .iter()
            .filter(|(k, _)| k == "Mvault-Approval")
            .map(|(_, v)| v.split(' ').next().unwrap_or("").to_owned())
            .collect();
        if !approvals.is_empty() {
            e.detail = Some(format!("approvals: {}", approvals.join(", ")));
        }
        return Ok(Some(e));
    }
    if let Some((stage, _user, model, version)) = approvals::parse_approval_name(name) {
        let mut e = base_event(time, "approve", &actor, key, src, obj);
        e.model = Some(model.to_string());
        e.version = Some(version.to_string());
        e.stage = Some(stage.to_string());
        e.manifest_sha256 = get("Mvault-Manifest-Sha256");
        e.detail = get("Mvault-Comment");
        return Ok(Some(e));
    }
    Ok(None)
}

/// Every event, oldest first, filtered.
pub fn events(vault: &Vault, filter: &Filter) -> Result<Vec<Event>, VaultError> {
    let mut out = Vec::new();
    for (id, data) in main_commits(&vault.store)? {
        commit_events(id, &data, &mut out)?;
    }
    let mut tag_events = Vec::new();
    for (name, id) in vault.store.refs_with_prefix("refs/tags/")? {
        let short = name.trim_start_matches("refs/tags/");
        if let Some(e) = tag_event(&vault.store, short, id)? {
            tag_events.push(e);
        }
    }
    // Commits keep history order; tags follow by kind and counter; then a
    // stable sort by time interleaves them.
    tag_events.sort_by_key(order_key);
    out.extend(tag_events);
    out.sort_by_key(|e| e.unix);
    let mut kept: Vec<Event> = out.into_iter().filter(|e| filter.keep(e)).collect();
    if let Some(n) = filter.limit {
        let skip = kept.len().saturating_sub(n);
        kept.drain(..skip);
    }
    Ok(kept)
}

fn order_key(e: &Event) -> (u8, u64, String) {
    let rank = match e.action.as_str() {
        "init" => 0,
        "policy" | "add-user" | "remove-user" | "grant" | "revoke" | "key-rewrap"
        | "key-rotation" => 1,
        "register" => 2,
        "approve" => 3,
        _ => 4,
    };
    let counter = stages::parse_promotion_name(&e.source)
        .map(|(_, _, n)| n)
        .unwrap_or(0);
    (rank, counter, e.source.clone())
}

/// What `audit verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    pub commits: usize,
    pub tags: usize,
    pub signatures: usize,
    pub versions_decrypted: usize,
    /// The first thing that breaks.
    pub first_break: Option<AuditBreak>,
}

/// A broken link in the record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditBreak {
    /// Commit id or tag name.
    pub object: String,
    pub rule: String,
    pub detail: String,
}

fn brk(
    object: impl Into<String>,
    rule: impl Into<String>,
    detail: impl Into<String>,
) -> AuditBreak {
    AuditBreak {
        object: object.into(),
        rule: rule.into(),
        detail: detail.into(),
    }
}

/// Replay the whole history. With `decrypt`, also decrypt every version the
/// key can read and check every plaintext digest.
pub fn verify(vault: &Vault, decrypt: Option<&SshIdentity>) -> Result<AuditReport, VaultError> {
    let mut report = AuditReport {
        ok: true,
        commits: 0,
        tags: 0,
        signatures: 0,
        versions_decrypted: 0,
        first_break: None,
    };
    let result = replay(vault, decrypt, &mut report);
    if let Err(b) = result {
        report.ok = false;
        report.first_break = Some(b);
    }
    Ok(report)
}

fn replay(
    vault: &Vault,
    decrypt: Option<&SshIdentity>,
    report: &mut AuditReport,
) -> Result<(), AuditBreak> {
    let store = &vault.store;
    let commits =
        main_commits(store).map_err(|e| brk(MAIN_REF, "unreadable history", e.to_string()))?;
    // Every commit of main, to check that tags point at commits on it.
    let main_set: std::collections::HashSet<ObjectId> = commits.iter().map(|(id, _)| *id).collect();
    let Some((root, _)) = commits.first() else {
        return Err(brk(MAIN_REF, "empty", "main has no commits"));
    };
    // The root commit's signer stands in for the server's pinned root key:
    // it must be an admin of the policy it creates.
    let root_policy = vault
        .policy_at(
            store
                .commit_tree(*root)
                .map_err(|e| brk(root.to_string(), "unreadable", e.to_string()))?,
        )
        .map_err(|e| brk(root.to_string(), "bad policy", e.to_string()))?;
    let root_key = {
        let (_, data) = store
            .object(*root)
            .map_err(|e| brk(root.to_string(), "unreadable", e.to_string()))?;
        let (sig, signed) = gix::objs::CommitRefIter::signature(&data, gix::hash::Kind::Sha1)
            .ok()
            .flatten()
            .ok_or_else(|| {
                brk(
                    root.to_string(),
                    "unsigned commit",
                    "the first commit has no signature",
                )
            })?;
        let payload: gix::bstr::BString = signed.into();
        let key = crypto::verify_signature(sig.as_ref(), crypto::GIT_NAMESPACE, &payload)
            .map_err(|e| brk(root.to_string(), "bad commit signature", e.to_string()))?;
        match root_policy.user_of_key(&key) {
            Some(u) if root_policy.is_admin(&u.name) => key,
            _ => {
                return Err(brk(
                    root.to_string(),
                    "init not signed by an admin",
                    "the first commit's signer is not ml_admin on ** in the policy it creates",
                ))
            }
        }
    };
    let cfg = ServerConfig {
        root_keys: vec![root_key],
        local_user: None,
    };
    for (i, (id, data)) in commits.iter().enumerate() {
        report.commits += 1;
        report.signatures += 1;
        if i == 0 {
            continue;
        }
        let c = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
            .map_err(|e| brk(id.to_string(), "unreadable", e.to_string()))?;
        let time = c
            .committer()
            .ok()
            .and_then(|s| s.time().ok())
            .map(|t| t.seconds)
            .unwrap_or(0);
        let now = OffsetDateTime::from_unix_timestamp(time).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // The hook's own rules, judged at the commit's time, with no pusher.
        let judge = Judge::for_audit(store, &cfg, now);
        judge
            .audit_commit(*id)
            .map_err(|r| brk(id.to_string(), r.rule, r.detail))?;
        if c.message.to_string().contains("Mvault-Action: register") {
            report.signatures += 1;
        }
    }
    // Tags: registrations, approvals, and each model's promotion chain.
    let (tip, tip_tree) = vault
        .main()
        .map_err(|e| brk(MAIN_REF, "unreadable", e.to_string()))?;
    let policy_now = vault
        .policy_at(tip_tree)
        .map_err(|e| brk(MAIN_REF, "bad policy", e.to_string()))?;
    let tags = store
        .refs_with_prefix("refs/tags/")
        .map_err(|e| brk("refs/tags", "unreadable", e.to_string()))?;
    let mut models = BTreeSet::new();
    for (name, id) in &tags {
        let short = name.trim_start_matches("refs/tags/");
        report.tags += 1;
        report.signatures += 1;
        if let Some((m, _, _)) = stages::parse_promotion_name(short) {
            models.insert(m);
            continue;
        }
        let (kind, data) = store
            .object(*id)
            .map_err(|e| brk(short, "unreadable", e.to_string()))?;
        if kind != gix::object::Kind::Tag {
            return Err(brk(
                short,
                "lightweight tag",
                "mvault tags are annotated and signed",
            ));
        }
        let tag = gix::objs::TagRef::from_bytes(&data, gix::hash::Kind::Sha1)
            .map_err(|e| brk(short, "unreadable", e.to_string()))?;
        if tag.name != short.as_bytes() {
            return Err(brk(
                short,
                "tag name mismatch",
                format!(
                    "the tag object says {:?}",
                    String::from_utf8_lossy(tag.name)
                ),
            ));
        }
        let (payload, sig) = split_tag_signature(&data)
            .ok_or_else(|| brk(short, "unsigned tag", "no SSH signature"))?;
        let key = crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload)
            .map_err(|e| brk(short, "bad tag signature", e.to_string()))?;
        let target = tag.target();
        let tag_time = tag
            .tagger()
            .ok()
            .flatten()
            .and_then(|t| t.time().ok())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // The policy in force when the tag was made: the one of the first
        // main commit at or after the tag's time is not knowable from git
        // alone, so the tag is judged by the policy at its target commit
        // and the current one: the signer must be authorised by one of them.
        let at_target = vault
            .policy_at(
                store
                    .commit_tree(target)
                    .map_err(|e| brk(short, "bad target", e.to_string()))?,
            )
            .map_err(|e| brk(short, "bad policy", e.to_string()))?;
        let signer = at_target
            .user_of_key(&key)
            .or_else(|| policy_now.user_of_key(&key))
            .map(|u| u.name.clone());
        let Some(signer) = signer else {
            return Err(brk(
                short,
                "unknown signer",
                format!(
                    "signed by key {}, which no policy in force names",
                    crypto::fingerprint(&key)
                ),
            ));
        };
        if let Some((stage, user, model, version)) = approvals::parse_approval_name(short) {
            let a = approvals::read_approval(store, short, *id)
                .map_err(|e| brk(short, "bad approval", e.to_string()))?;
            if user != signer {
                return Err(brk(
                    short,
                    "approval signer",
                    format!("named for {user}, signed by {signer}"),
                ));
            }
            let rule = crate::release::rule_for(&at_target, &model, stage);
            let ok = [&at_target, &policy_now]
                .iter()
                .any(|p| p.has_role(&signer, &model, rule.approver_role));
            if !ok {
                return Err(brk(
                    short,
                    "tag signed by a key not authorised at its time",
                    format!("{signer} does not hold {} on {model}", rule.approver_role),
                ));
            }
            check_binding(
                vault,
                short,
                target,
                &model,
                &version,
                &a.manifest_sha256,
                tip,
                Some(&main_set),
            )?;
            continue;
        }
        if let Some((m, v)) = short.rsplit_once("@v") {
            let (Ok(model), Ok(version)) = (ModelName::parse(m), crate::names::Version::parse(v))
            else {
                return Err(brk(short, "unknown tag form", "not a registration tag"));
            };
            let ok = [&at_target, &policy_now].iter().any(|p| {
                p.check(&signer, &model, crate::policy::Ability::Register, tag_time)
                    .is_ok()
            });
            if !ok {
                return Err(brk(
                    short,
                    "tag signed by a key not authorised at its time",
                    format!("{signer} could not register {model}"),
                ));
            }
            let msg = String::from_utf8_lossy(tag.message).into_owned();
            let digest = trailer(&trailers(&msg), "Mvault-Manifest-Sha256")
                .unwrap_or("")
                .to_owned();
            check_binding(
                vault,
                short,
                target,
                &model,
                &version,
                &digest,
                tip,
                Some(&main_set),
            )?;
            continue;
        }
        return Err(brk(short, "unknown tag form", "not a tag mvault makes"));
    }
    for model in models {
        verify_chain(vault, &model, &policy_now, tip, Some(&main_set))?;
    }
    // The server's decision log, when this is the server's repository.
    if store.git_dir().join(hook::LOG_FILE).exists() {
        hook::verify_log(store.git_dir())
            .map_err(|e| brk(hook::LOG_FILE, "server log chain broken", e))?;
    }
    if let Some(who) = decrypt {
        for (model, versions) in vault
            .models(tip_tree)
            .map_err(|e| brk(MAIN_REF, "unreadable", e.to_string()))?
        {
            for v in versions {
                let r = VersionRef::Exact(model.clone(), v.clone());
                match crate::retrieve::verify(vault, &r, who) {
                    Ok(_) => report.versions_decrypted += 1,
                    Err(VaultError::NoReadAccess { .. }) => {}
                    Err(e) => {
                        return Err(brk(
                            format!("{model}@{v}"),
                            "plaintext check failed",
                            e.to_string(),
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// Check one model's promotion chain (signatures, counters, links,
/// approvals): what `pull nlp/bert#production` relies on.
pub fn verify_model_chain(vault: &Vault, model: &ModelName) -> Result<(), AuditBreak> {
    let (tip, tree) = vault
        .main()
        .map_err(|e| brk(MAIN_REF, "unreadable", e.to_string()))?;
    let policy = vault
        .policy_at(tree)
        .map_err(|e| brk(MAIN_REF, "bad policy", e.to_string()))?;
    verify_chain(vault, model, &policy, tip, None)
}

/// A tag binds the registering commit of `model@version` on main and its manifest digest.
#[allow(clippy::too_many_arguments)]
fn check_binding(
    vault: &Vault,
    name: &str,
    target: ObjectId,
    model: &ModelName,
    version: &crate::names::Version,
    digest: &str,
    tip: ObjectId,
    main_set: Option<&std::collections::HashSet<ObjectId>>,
) -> Result<(), AuditBreak> {
    let store = &vault.store;
    let dir = crate::names::version_dir(model, version);
    let t_tree = store
        .commit_tree(target)
        .map_err(|e| brk(name, "bad target", e.to_string()))?;
    let at_target = store
        .entry(t_tree, &dir)
        .map_err(|e| brk(name, "unreadable", e.to_string()))?;
    // The target is on main.
    let on_main = match main_set {
        Some(set) => set.contains(&target),
        None => store
            .is_ancestor(target, tip)
            .map_err(|e| brk(name, "unreadable", e.to_string()))?,
    };
    if !on_main {
        return Err(brk(
            name,
            "tag target",
            format!("points at {target}, which is not on main"),
        ));
    }
    let main_tree = store
        .commit_tree(tip)
        .map_err(|e| brk(name, "unreadable", e.to_string()))?;
    let on_main = store
        .entry(main_tree, &dir)
        .map_err(|e| brk(name, "unreadable", e.to_string()))?;
    if at_target.is_none() || at_target != on_main {
        return Err(brk(
            name,
            "tag target",
            format!("does not point at the commit on main that added {model}@{version}"),
        ));
    }
    let manifest = store
        .read_path(t_tree, &format!("{dir}/manifest.toml"))
        .map_err(|e| brk(name, "unreadable", e.to_string()))?
        .unwrap_or_default();
    let actual = crate::manifest::Sha256Digest::of(&manifest).to_hex();
    if actual != digest {
        return Err(brk(name, "manifest digest", format!("the tag binds {digest}, the manifest on main hashes to {actual} (edited after signing?)")));
    }
    Ok(())
}

/// Replay one model's promotions: counters 1..n with no gap, each linked to
/// the one before, legal moves, signed by a promoter, approvals enough.
fn verify_chain(
    vault: &Vault,
    model: &ModelName,
    policy_now: &crate::policy::Policy,
    tip: ObjectId,
    main_set: Option<&std::collections::HashSet<ObjectId>>,
) -> Result<(), AuditBreak> {
    let store = &vault.store;
    let all = ModelStages::read(store, model)
        .map_err(|e| brk(model.to_string(), "bad promotion", e.to_string()))?;
    let mut replayed = ModelStages::default();
    let mut seen_counters = BTreeMap::new();
    for p in &all.promotions {
        if seen_counters.insert(p.counter, p.name.clone()).is_some() {
            return Err(brk(
                &p.name,
                "wrong counter",
                format!("counter {} is used twice", p.counter),
            ));
        }
        if p.counter != replayed.max_counter + 1 {
            return Err(brk(
                &p.name,
                "wrong counter",
                format!("expected counter {}", replayed.max_counter + 1),
            ));
        }
        let prev = replayed.last().map(|q| q.id.to_string());
        if p.previous != prev {
            return Err(brk(
                &p.name,
                "broken chain",
                format!(
                    "names previous {}, the promotion before is {}",
                    p.previous.as_deref().unwrap_or("none"),
                    prev.as_deref().unwrap_or("none")
                ),
            ));
        }
        let (_, data) = store
            .object(p.id)
            .map_err(|e| brk(&p.name, "unreadable", e.to_string()))?;
        let (payload, sig) = split_tag_signature(&data)
            .ok_or_else(|| brk(&p.name, "unsigned tag", "no SSH signature"))?;
        let key = crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload)
            .map_err(|e| brk(&p.name, "bad tag signature", e.to_string()))?;
        let version = crate::names::Version::parse(&p.version)
            .map_err(|e| brk(&p.name, "bad promotion", e.to_string()))?;
        let at_target = vault
            .policy_at(
                store
                    .commit_tree(p.target)
                    .map_err(|e| brk(&p.name, "bad target", e.to_string()))?,
            )
            .map_err(|e| brk(&p.name, "bad policy", e.to_string()))?;
        let rule_stage = if p.action == PromotionAction::Rollback {
            crate::names::Stage::Production
        } else {
            p.stage
        };
        let rule = crate::release::rule_for(&at_target, model, rule_stage);
        let signer = at_target
            .user_of_key(&key)
            .or_else(|| policy_now.user_of_key(&key))
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let ok = [&at_target, policy_now]
            .iter()
            .any(|pol| pol.has_role(&signer, model, rule.promote_role));
        if !ok {
            return Err(brk(
                &p.name,
                "tag signed by a key not authorised at its time",
                format!(
                    "{} ({}) does not hold {} on {model}",
                    if signer.is_empty() {
                        "an unknown key"
                    } else {
                        &signer
                    },
                    crypto::fingerprint(&key),
                    rule.promote_role
                ),
            ));
        }
        check_binding(
            vault,
            &p.name,
            p.target,
            model,
            &version,
            &p.manifest_sha256,
            tip,
            main_set,
        )?;
        let vs = replayed.stage_of(&p.version);
        if p.from != Some(vs.stage) {
            return Err(brk(
                &p.name,
                "wrong stage",
                format!("says it leaves {:?}, the chain says {}", p.from, vs.stage),
            ));
        }
        let legal = match p.action {
            PromotionAction::Promote => stages::transition_allowed(vs.stage, p.stage),
            PromotionAction::Rollback => {
                let back_in = p.stage == crate::names::Stage::Production
                    && vs.ever_production
                    && vs.stage != crate::names::Stage::Archived;
                let demotion = p.stage == crate::names::Stage::Deprecated
                    && vs.stage == crate::names::Stage::Production
                    && replayed.last().is_some_and(|q| {
                        q.action == PromotionAction::Rollback && q.counter + 1 == p.counter
                    });
                (back_in || demotion) && p.reason.is_some()
            }
        };
        if !legal {
            return Err(brk(
                &p.name,
                "stage skipped",
                format!("{} → {} is not a legal move", vs.stage, p.stage),
            ));
        }
        if p.action == PromotionAction::Promote && rule.approvals > 0 {
            let mut cands = Vec::new();
            for (an, aid) in &p.approvals {
                let id = ObjectId::from_hex(aid.as_bytes())
                    .map_err(|_| brk(&p.name, "bad approval", an.clone()))?;
                let a = approvals::read_approval(store, an, id)
                    .map_err(|e| brk(&p.name, "bad approval", e.to_string()))?;
                if a.stage == p.stage && a.version == p.version && a.model == p.model {
                    cands.push(a);
                }
            }
            let author = vault
                .record(model, &version)
                .map(|r| r.manifest.author)
                .unwrap_or_default();
            let when =
                OffsetDateTime::from_unix_timestamp(p.time).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let count = approvals::count_approvals(
                &at_target,
                &rule,
                model,
                &p.manifest_sha256,
                &approvals::Parties {
                    author: &author,
                    promoter: &signer,
                },
                cands,
                when,
            );
            if (count.counted.len() as u32) < rule.approvals {
                return Err(brk(
                    &p.name,
                    "not enough approvals",
                    format!("{} needed, {} valid", rule.approvals, count.counted.len()),
                ));
            }
        }
        replayed.max_counter = p.counter;
        replayed.promotions.push(p.clone());
    }
    Ok(())
}
