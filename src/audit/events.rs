//! The audit trail: events read from commits and tags, and the shape of
//! what `audit verify` (the replay driver in `crate::verify::replay`) finds.
//!
//! Events come from commit messages, tag messages and the key embedded in
//! each SSH signature, so listing them is cheap; the replay does the
//! cryptography. Nothing outside git is needed to reconstruct history.
//! Every actor shown is a name the hook checked against the signer.

use serde::Serialize;
use time::OffsetDateTime;

use crate::crypto;
use crate::model::approval::parse_approval_name;
use crate::model::deployment::{deploy_reason, ENVIRONMENT_TRAILER};
use crate::model::promotion::parse_promotion_name;
use crate::model::receipt::RECEIPTS_REF;
use crate::model::trailers::{trailer, trailers};
use crate::rules::receipts::{receipt_index, Received};
use crate::store::objects::{self, ObjectId, ObjectKind};
use crate::store::Store;
use crate::vault::{rfc3339, Vault, VaultError};

/// One thing that happened, as the record says.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// The time the record claims (commit or tag date).
    pub time: String,
    #[serde(skip)]
    pub unix: i64,
    /// The time the server accepted it, from the receipt that landed it
    /// (`None`: no receipt of the pinned server key names it).
    pub received: Option<String>,
    #[serde(skip)]
    pub received_unix: Option<i64>,
    /// init, register, approve, promote, rollback, deprecate, archive,
    /// deploy, policy, add-user, remove-user, grant, revoke, env, key-rewrap,
    /// key-rotation.
    pub action: String,
    pub actor: String,
    /// Fingerprint of the key that signed the object (as embedded in the signature).
    pub key: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub stage: Option<String>,
    pub from_stage: Option<String>,
    /// The environment a deploy event sent the version to.
    pub environment: Option<String>,
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
        // The server's time when a receipt gives it: a date the signer
        // chose (backdated within the rules) does not move an event out of
        // the period in which the server accepted it.
        let t = e.received_unix.unwrap_or(e.unix);
        if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
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
        received: None,
        received_unix: None,
        action: action.to_owned(),
        actor: actor.to_owned(),
        key,
        model: None,
        version: None,
        stage: None,
        from_stage: None,
        environment: None,
        manifest_sha256: None,
        ticket: None,
        reason: None,
        detail: None,
        source,
        object,
    }
}

/// The commits of `main`, oldest first, parsed.
pub fn main_commits(store: &Store) -> Result<Vec<(ObjectId, objects::CommitObject)>, VaultError> {
    let mut out = Vec::new();
    let mut at = store.main_tip()?;
    while let Some(id) = at {
        let (_, data) = store.object(id)?;
        let c = objects::parse_commit(&data)?;
        at = c.parents.first().copied();
        out.push((id, c));
    }
    out.reverse();
    Ok(out)
}

fn commit_events(
    id: ObjectId,
    c: &objects::CommitObject,
    out: &mut Vec<Event>,
) -> Result<(), VaultError> {
    let time = c.committer.time;
    let actor = c.author.name.clone();
    let key = c.signature.as_ref().and_then(|(sig, _)| embedded_key(sig));
    let t = trailers(&c.message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    let src = id.to_string();
    match get("Mvault-Action").as_deref() {
        Some("register") => {
            let mut e = base_event(
                time,
                "register",
                &actor,
                key.clone(),
                src.clone(),
                src.clone(),
            );
            e.model = get("Mvault-Model");
            e.version = get("Mvault-Version");
            e.manifest_sha256 = get("Mvault-Manifest-Sha256");
            e.detail = get("Mvault-Parent-Version").map(|p| format!("parent {p}"));
            let rotated = get("Mvault-Key-Ring").filter(|r| r.starts_with("rotated "));
            let (model, version) = (e.model.clone(), e.version.clone());
            out.push(e);
            // A version that cut a former reader off (expiry) rotated the key.
            if let Some(r) = rotated {
                let mut e = base_event(time, "key-rotation", &actor, key, src.clone(), src);
                e.model = model;
                e.version = version;
                e.detail = Some(r);
                out.push(e);
            }
        }
        Some("deploy") => {
            let mut e = base_event(time, "deploy", &actor, key, src.clone(), src);
            e.model = get("Mvault-Model");
            e.version = get("Mvault-Version");
            e.environment = get(ENVIRONMENT_TRAILER);
            e.manifest_sha256 = get("Mvault-Manifest-Sha256");
            e.reason = deploy_reason(&c.message);
            out.push(e);
        }
        Some("purge") => {
            // "purge M@V", the reason as its own paragraph, then trailers:
            // the same shape as a deploy commit's message.
            let mut e = base_event(time, "purge", &actor, key, src.clone(), src);
            e.model = get("Mvault-Model");
            e.version = get("Mvault-Version");
            e.reason = deploy_reason(&c.message);
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
    if kind != ObjectKind::Tag {
        return Ok(None);
    }
    let tag = objects::parse_tag(&data)?;
    let time = tag.tagger.as_ref().map(|p| p.time).unwrap_or(0);
    let actor = tag
        .tagger
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let key = tag
        .signature
        .as_ref()
        .and_then(|(sig, _)| embedded_key(sig));
    let t = trailers(&tag.message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    let src = name.to_owned();
    let obj = id.to_string();
    if let Some((model, stage, _)) = parse_promotion_name(name) {
        let action = match (get("Mvault-Action").as_deref(), stage) {
            // A rollback's second half deprecates the version it replaces.
            (_, crate::model::names::Stage::Deprecated) => "deprecate",
            (_, crate::model::names::Stage::Archived) => "archive",
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
    if let Some((stage, _user, model, version)) = parse_approval_name(name) {
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
    for (id, c) in main_commits(&vault.store)? {
        commit_events(id, &c, &mut out)?;
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
    let received = received_times(&vault.store);
    for e in &mut out {
        let Some(at) = e
            .object
            .parse::<ObjectId>()
            .ok()
            .and_then(|id| received.get(&id))
        else {
            continue;
        };
        e.received_unix = Some(at.time);
        e.received = OffsetDateTime::from_unix_timestamp(at.time)
            .map(rfc3339)
            .ok();
    }
    out.sort_by_key(|e| e.unix);
    let mut kept: Vec<Event> = out.into_iter().filter(|e| filter.keep(e)).collect();
    if let Some(n) = filter.limit {
        let skip = kept.len().saturating_sub(n);
        kept.drain(..skip);
    }
    Ok(kept)
}

/// When the server accepted each object, from the receipts the policy in
/// force believes; empty when there are none or the chain does not read
/// (`audit verify` names why).
pub fn received_times(store: &Store) -> std::collections::BTreeMap<ObjectId, Received> {
    let (Ok(Some(tip)), Ok(main)) = (store.ref_target(RECEIPTS_REF), store.main_tip()) else {
        return Default::default();
    };
    receipt_index(store, tip, main)
        .map(|i| i.received)
        .unwrap_or_default()
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
    let counter = parse_promotion_name(&e.source)
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
    /// What the receipt check found (`None`: the vault pins no server key
    /// and has no receipts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptSummary>,
}

/// What the receipt check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiptSummary {
    /// Receipts in the chain.
    pub receipts: usize,
    /// Receipts signed by the server key the policy in force pins.
    pub believed: usize,
    /// Commits and tags a believed receipt landed.
    pub received: usize,
    /// Commits and tags from before receipts began.
    pub before_receipts: usize,
    /// Commits and tags newer than the receipts this clone has (a clone
    /// only; `mvault sync` brings the receipts that cover them).
    pub not_yet_covered: usize,
}

/// A broken link in the record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditBreak {
    /// Commit id or tag name.
    pub object: String,
    pub rule: String,
    pub detail: String,
}
