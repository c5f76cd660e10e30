//! The server's pre-receive hook: the place where trust is enforced.
//!
//! git hands the hook one `<old> <new> <ref>` line per ref a push wants to
//! move, with the pushed objects still in quarantine. The hook judges every
//! update against the policy in force *before* the push (so a push cannot
//! add a key and use it, or grant itself a role) and the root keys pinned in
//! the server's own git config (outside the tree, out of a push's reach).
//! It never decrypts and needs no secret: it reads manifests, signatures,
//! tree entries, object headers and age stanza headers, never payloads, so
//! its cost follows what the push adds, not the history or the blob sizes.
//! Any refusal refuses the whole push; any internal error refuses too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gix::objs::tree::EntryKind;
use gix::ObjectId;
use serde::Serialize;
use ssh_key::PublicKey;
use time::OffsetDateTime;

use crate::approvals;
use crate::crypto;
use crate::manifest::{Manifest, Sha256Digest};
use crate::names::{self, ModelName, Stage, Version};
use crate::policy::{Ability, Policy, POLICY_PATH};
use crate::stages;
use crate::store::{Store, StoreError, MAIN_REF};

/// git config key holding a pinned root admin key (multi-valued).
pub const ROOT_KEY_CONFIG: &str = "mvault.rootKey";
/// git config key naming a trusted local user, used when no server variable
/// names the pusher (local pushes on the server itself).
pub const LOCAL_USER_CONFIG: &str = "mvault.localUser";
/// The decision log, in the server repository's directory.
pub const LOG_FILE: &str = "mvault-decisions.jsonl";
/// The log's head: its length and the hash of its last line.
pub const HEAD_FILE: &str = "mvault-decisions.head";

/// The environment variables that carry the pusher's identity, first found
/// wins: sshd's forced command, gitolite, GitLab, Gitea/Forgejo, GitHub
/// Enterprise, and HTTP servers. Push options never set identity.
pub const IDENTITY_VARS: &[&str] = &[
    "MVAULT_USER",
    "GL_USER",
    "GL_USERNAME",
    "GITEA_PUSHER_NAME",
    "GITHUB_USER_LOGIN",
    "REMOTE_USER",
];

const ZERO: &str = "0000000000000000000000000000000000000000";

/// One ref update git asks about.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub old: String,
    pub new: String,
    pub refname: String,
}

/// Why an update is refused: the ref, the rule, the subject with expected
/// and actual values, and a way out.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub refname: String,
    pub rule: &'static str,
    pub detail: String,
    pub hint: String,
}

impl Refusal {
    fn new(
        refname: &str,
        rule: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Refusal {
            refname: refname.to_owned(),
            rule,
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    /// The line the pusher sees, attacker-controlled text escaped.
    pub fn line(&self) -> String {
        format!(
            "mvault: refused {}: {}: {}",
            escape(&self.refname),
            self.rule,
            escape(&self.detail)
        )
    }
}

/// Escape control and non-ASCII characters so pushed text cannot forge
/// lines or terminal escapes in the pusher's output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// The server's own settings for the hook, from the repository's config.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub root_keys: Vec<PublicKey>,
    pub local_user: Option<String>,
}

impl ServerConfig {
    /// Read the pinned settings from the repository's config.
    pub fn read(store: &Store) -> Result<Self, String> {
        let snap = store.repo().config_snapshot();
        let mut root_keys = Vec::new();
        for k in snap.strings(ROOT_KEY_CONFIG).unwrap_or_default() {
            let text = String::from_utf8_lossy(k.as_ref()).into_owned();
            root_keys.push(
                crypto::parse_public_key(&text).map_err(|e| format!("{ROOT_KEY_CONFIG}: {e}"))?,
            );
        }
        let local_user = snap
            .string(LOCAL_USER_CONFIG)
            .map(|s| String::from_utf8_lossy(s.as_ref()).trim().to_owned())
            .filter(|s| !s.is_empty());
        Ok(ServerConfig {
            root_keys,
            local_user,
        })
    }

    fn is_root(&self, key: &PublicKey) -> bool {
        self.root_keys
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }
}

/// Who is pushing, from the server's environment.
pub fn pusher_from_env(get: impl Fn(&str) -> Option<String>, cfg: &ServerConfig) -> Option<String> {
    for var in IDENTITY_VARS {
        if let Some(v) = get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            return Some(v);
        }
    }
    cfg.local_user.clone()
}

/// Parse git's pre-receive input.
pub fn parse_updates(input: &str) -> Result<Vec<Update>, String> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(old), Some(new), Some(refname)) if old.len() == 40 && new.len() == 40 => out
                .push(Update {
                    old: old.to_owned(),
                    new: new.to_owned(),
                    refname: refname.to_owned(),
                }),
            _ => return Err(format!("unreadable pre-receive line {:?}", escape(line))),
        }
    }
    Ok(out)
}

/// A changed path between two trees.
#[derive(Debug, Clone)]
struct Change {
    path: String,
    old: Option<(ObjectId, EntryKind)>,
    new: Option<(ObjectId, EntryKind)>,
}

/// Why a tree change cannot be judged.
enum DiffError {
    Store(StoreError),
    /// A tree git would refuse or read differently from mvault.
    BadTree(String),
    /// An entry that is not a regular file or a directory.
    BadMode(String),
}

impl From<StoreError> for DiffError {
    fn from(e: StoreError) -> Self {
        DiffError::Store(e)
    }
}

/// A tree entry name every git and file system reads the same way.
fn bad_entry_name(name: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(name) else {
        return Some("a name that is not UTF-8");
    };
    if text.is_empty() || text == "." || text == ".." {
        return Some("an empty, '.' or '..' name");
    }
    if text.contains('/') || text.contains('\0') {
        return Some("a name containing '/' or NUL");
    }
    let lower = text.to_ascii_lowercase();
    if lower == ".git"
        || lower.starts_with(".git ")
        || lower.starts_with(".git.")
        || lower == "git~1"
    {
        return Some("a name git reserves");
    }
    None
}

/// The paths that differ between two trees, descending only into subtrees
/// whose ids differ: the cost follows the change, not the tree. Every new
/// tree it reads must be well-formed: no duplicate or reserved names, only
/// regular files and directories (a duplicate entry would let git and
/// mvault see different contents under one path).
fn diff_trees(
    store: &Store,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<(), DiffError> {
    if old == new {
        return Ok(());
    }
    let a: BTreeMap<String, (ObjectId, EntryKind)> = match old {
        None => BTreeMap::new(),
        Some(t) => store
            .tree_entries(t)?
            .into_iter()
            .map(|(n, id, k)| (n, (id, k)))
            .collect(),
    };
    let mut b: BTreeMap<String, (ObjectId, EntryKind)> = BTreeMap::new();
    if let Some(t) = new {
        for (raw, id, kind) in store.tree_entries_raw(t)? {
            let shown = escape(&String::from_utf8_lossy(&raw));
            let at = if prefix.is_empty() {
                shown.clone()
            } else {
                format!("{prefix}/{shown}")
            };
            if let Some(why) = bad_entry_name(&raw) {
                return Err(DiffError::BadTree(format!("{at}: {why}")));
            }
            if kind != EntryKind::Blob && kind != EntryKind::Tree {
                return Err(DiffError::BadMode(format!(
                    "{at} is a {kind:?}; only regular files and directories are stored"
                )));
            }
            let name = String::from_utf8(raw).expect("checked UTF-8");
            if b.insert(name, (id, kind)).is_some() {
                return Err(DiffError::BadTree(format!(
                    "{at}: the name appears twice in one tree"
                )));
            }
        }
    }
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (oa, ob) = (a.get(name).copied(), b.get(name).copied());
        if oa == ob {
            continue;
        }
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let is_tree =
            |e: Option<(ObjectId, EntryKind)>| e.is_some_and(|(_, k)| k == EntryKind::Tree);
        if is_tree(oa) || is_tree(ob) {
            let ta = oa.filter(|(_, k)| *k == EntryKind::Tree).map(|(id, _)| id);
            let tb = ob.filter(|(_, k)| *k == EntryKind::Tree).map(|(id, _)| id);
            // A file replaced by a directory or the reverse: report the file side too.
            if oa.is_some() && !is_tree(oa) {
                out.push(Change {
                    path: path.clone(),
                    old: oa,
                    new: None,
                });
            }
            if ob.is_some() && !is_tree(ob) {
                out.push(Change {
                    path: path.clone(),
                    old: None,
                    new: ob,
                });
            }
            diff_trees(store, ta, tb, &path, out)?;
        } else {
            out.push(Change {
                path,
                old: oa,
                new: ob,
            });
        }
    }
    Ok(())
}

/// The `Mvault-*` trailers of a message.
fn trailers(message: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in message.lines() {
        if let Some((k, v)) = line.split_once(": ") {
            if k.starts_with("Mvault-") && !k.contains(' ') {
                out.entry(k.to_owned())
                    .or_default()
                    .push(v.trim().to_owned());
            }
        }
    }
    out
}

fn one<'a>(t: &'a BTreeMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    match t.get(key).map(Vec::as_slice) {
        Some([v]) => Some(v.as_str()),
        _ => None,
    }
}

/// A verified signature: who, with which key.
struct Signed {
    key: PublicKey,
    user: Option<String>,
}

/// The hook's view of one push.
pub struct Judge<'a> {
    store: &'a Store,
    cfg: &'a ServerConfig,
    pusher: String,
    now: OffsetDateTime,
    /// Replaying history: no pusher to judge.
    audit: bool,
    /// Client side (pre-push): the server's main as last fetched, and the
    /// refs being pushed, which exist locally but not yet on the server.
    base_main: Option<Option<ObjectId>>,
    pushed_refs: BTreeSet<String>,
    /// The commits this push adds to main, once judged.
    pushed_chain: std::cell::RefCell<BTreeSet<ObjectId>>,
}

/// What the hook decided about one update.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub refname: String,
    pub what: String,
}

impl<'a> Judge<'a> {
    /// A judge for one push.
    pub fn new(
        store: &'a Store,
        cfg: &'a ServerConfig,
        pusher: String,
        now: OffsetDateTime,
    ) -> Self {
        Judge {
            store,
            cfg,
            pusher,
            now,
            audit: false,
            base_main: None,
            pushed_refs: BTreeSet::new(),
            pushed_chain: Default::default(),
        }
    }

    /// A judge that replays history for `mvault audit verify`: the same
    /// commit rules, at the commit's own time, with no pusher.
    pub fn for_audit(store: &'a Store, cfg: &'a ServerConfig, now: OffsetDateTime) -> Self {
        Judge {
            store,
            cfg,
            pusher: String::new(),
            now,
            audit: true,
            base_main: None,
            pushed_refs: BTreeSet::new(),
            pushed_chain: Default::default(),
        }
    }

    /// A judge for the client's pre-push check: the same rules, against
    /// the server's main as last fetched (`base`), with the refs being
    /// pushed treated as not there yet.
    pub fn for_pre_push(
        store: &'a Store,
        cfg: &'a ServerConfig,
        pusher: Option<String>,
        now: OffsetDateTime,
        base: Option<ObjectId>,
        updates: &[Update],
    ) -> Self {
        Judge {
            store,
            cfg,
            // Without a known pusher (the server will know), pusher checks are left to it.
            audit: pusher.is_none(),
            pusher: pusher.unwrap_or_default(),
            now,
            base_main: Some(base),
            pushed_refs: updates.iter().map(|u| u.refname.clone()).collect(),
            pushed_chain: Default::default(),
        }
    }

    fn main_before(&self) -> Result<Option<ObjectId>, StoreError> {
        match self.base_main {
            Some(b) => Ok(b),
            None => self.store.main_tip(),
        }
    }

    /// Judge one commit of history as the hook would have.
    pub fn audit_commit(&self, commit: ObjectId) -> Result<Accepted, Refusal> {
        self.judge_commit(MAIN_REF, commit, None)
    }

    fn policy_at_commit(&self, commit: ObjectId) -> Result<Policy, String> {
        let tree = self.store.commit_tree(commit).map_err(|e| e.to_string())?;
        let bytes = self
            .store
            .read_path(tree, POLICY_PATH)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("commit {commit} has no {POLICY_PATH}"))?;
        Policy::parse(&String::from_utf8_lossy(&bytes))
            .map_err(|e| format!("{POLICY_PATH} at {commit}: {e}"))
    }

    /// Judge every update; the first refusal refuses the push.
    pub fn judge(&self, updates: &[Update]) -> Result<Vec<Accepted>, Refusal> {
        let mut accepted = Vec::new();
        let main_before = self.main_before().map_err(|e| internal(MAIN_REF, e))?;
        let main_after = updates
            .iter()
            .find(|u| u.refname == MAIN_REF)
            .and_then(|u| ObjectId::from_hex(u.new.as_bytes()).ok())
            .or(main_before);
        for u in updates {
            let r = &u.refname;
            // 1. Known namespaces only.
            if r != MAIN_REF && !r.starts_with("refs/tags/") && !r.starts_with(stages::SEQ_PREFIX) {
                return Err(Refusal::new(
                    r,
                    "unknown ref namespace",
                    "only refs/heads/main, refs/tags/* and refs/mvault/seq/* are kept in a vault",
                    "push main and mvault tags only",
                ));
            }
            // 2. Nothing is ever deleted: the record cannot be rewritten.
            if u.new == ZERO {
                return Err(Refusal::new(
                    r,
                    "deletion",
                    "refs are never deleted from a vault",
                    "the record is append-only; register a new version instead",
                ));
            }
        }
        // main first, so tags can point at the commits this push adds.
        if let Some(u) = updates.iter().find(|u| u.refname == MAIN_REF) {
            let new = ObjectId::from_hex(u.new.as_bytes()).map_err(|e| internal(&u.refname, e))?;
            accepted.extend(self.judge_main(u, new, main_before)?);
        }
        // Then tags: registrations and approvals, then promotions in
        // counter order so a rollback's two tags chain within one push.
        let mut promotions = Vec::new();
        let mut seqs: BTreeMap<String, ObjectId> = BTreeMap::new();
        for u in updates.iter().filter(|u| u.refname != MAIN_REF) {
            let new = ObjectId::from_hex(u.new.as_bytes()).map_err(|e| internal(&u.refname, e))?;
            if u.refname.starts_with(stages::SEQ_PREFIX) {
                if u.old != ZERO {
                    return Err(Refusal::new(
                        &u.refname,
                        "tag moved",
                        "a promotion counter is claimed once",
                        "promote again: mvault numbers the next promotion",
                    ));
                }
                seqs.insert(u.refname.clone(), new);
                continue;
            }
            let name = u.refname.strip_prefix("refs/tags/").unwrap_or(&u.refname);
            match stages::parse_promotion_name(name) {
                Some((model, _, n)) => {
                    // 14. Tags are immutable, whatever else is wrong with them.
                    if u.old != ZERO {
                        return Err(Refusal::new(
                            &u.refname,
                            "tag moved",
                            format!("{} already points at {}", escape(name), u.old),
                            "tags are immutable; register or promote anew",
                        ));
                    }
                    promotions.push((model, n, u, new))
                }
                None => accepted.push(self.judge_tag(u, new, main_after, updates)?),
            }
        }
        promotions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut pending: BTreeMap<ModelName, Vec<stages::Promotion>> = BTreeMap::new();
        for (model, n, u, new) in promotions {
            // 18. Every promotion claims its counter with a seq ref in the
            // same push: git creates a ref once, so of two promotions racing
            // for one counter exactly one lands.
            let seq = stages::seq_ref(&model, n);
            if seqs.remove(&seq) != Some(new) {
                return Err(Refusal::new(
                    &u.refname,
                    "promotion counter not claimed",
                    format!("the push must also create {seq} pointing at the same tag"),
                    "promote with mvault, which pushes both atomically",
                ));
            }
            let p = self.judge_promotion(
                u,
                new,
                &model,
                main_after,
                updates,
                pending.get(&model).map(Vec::as_slice).unwrap_or(&[]),
            )?;
            accepted.push(Accepted {
                refname: u.refname.clone(),
                what: format!(
                    "{} {}@{} to {} by {}",
                    p.action.as_str(),
                    p.model,
                    p.version,
                    p.stage,
                    p.tagger
                ),
            });
            pending.entry(model).or_default().push(p);
        }
        if let Some((seq, _)) = seqs.into_iter().next() {
            return Err(Refusal::new(
                &seq,
                "promotion counter not claimed",
                "a seq ref without its promotion tag",
                "promote with mvault",
            ));
        }
        Ok(accepted)
    }

    fn judge_main(
        &self,
        u: &Update,
        new: ObjectId,
        before: Option<ObjectId>,
    ) -> Result<Vec<Accepted>, Refusal> {
        let r = &u.refname;
        let old = if u.old == ZERO {
            None
        } else {
            Some(ObjectId::from_hex(u.old.as_bytes()).map_err(|e| internal(r, e))?)
        };
        if old != before {
            return Err(Refusal::new(
                r,
                "stale update",
                format!(
                    "main is at {}",
                    before
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "nothing".into())
                ),
                "fetch and push again",
            ));
        }
        // 3. Fast-forward only, linear: walk from the new tip back to the
        // old one through single parents; the walk is as long as the push.
        let mut chain = Vec::new();
        let mut at = new;
        loop {
            if Some(at) == old {
                break;
            }
            if !self.store.has_object(at) {
                return Err(Refusal::new(
                    r,
                    "missing object",
                    format!("commit {at} is not in the push"),
                    "push again",
                ));
            }
            let parents = self.store.commit_parents(at).map_err(|e| internal(r, e))?;
            chain.push(at);
            match parents.as_slice() {
                [] if old.is_none() => break,
                [] => {
                    return Err(Refusal::new(
                        r,
                        "non-fast-forward",
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
                        r,
                        "merge commit",
                        format!("commit {at} has {} parents; main is linear", parents.len()),
                        "rebase onto main instead of merging",
                    ))
                }
            }
            if chain.len() > 10_000 {
                return Err(Refusal::new(
                    r,
                    "push too large",
                    "more than 10000 new commits",
                    "push in smaller steps",
                ));
            }
        }
        chain.reverse();
        // Roles come from the policy in force before the push, for every
        // commit of it: a push cannot add a key and use it, or grant a
        // role and exercise it.
        let in_force = match old {
            Some(o) => Some(self.policy_at_commit(o).map_err(|e| internal(r, e))?),
            None => None,
        };
        let mut accepted = Vec::new();
        for c in &chain {
            accepted.push(self.judge_commit(r, *c, in_force.as_ref())?);
        }
        self.pushed_chain.borrow_mut().extend(chain);
        Ok(accepted)
    }

    /// Check a commit's signature. `policy`: the policy in force before it.
    fn commit_signer(
        &self,
        r: &str,
        commit: ObjectId,
        policy: Option<&Policy>,
    ) -> Result<Signed, Refusal> {
        let (_, data) = self.store.object(commit).map_err(|e| internal(r, e))?;
        let Some((sig, signed)) = gix::objs::CommitRefIter::signature(&data, gix::hash::Kind::Sha1)
            .map_err(|e| internal(r, e))?
        else {
            return Err(Refusal::new(
                r,
                "unsigned commit",
                format!("commit {commit} has no signature"),
                "commit with mvault, which signs with your SSH key",
            ));
        };
        let payload: gix::bstr::BString = signed.into();
        let key = crypto::verify_signature(sig.as_ref(), crypto::GIT_NAMESPACE, &payload).map_err(
            |e| {
                Refusal::new(
                    r,
                    "bad commit signature",
                    format!("commit {commit}: {e}"),
                    "re-create the commit with mvault",
                )
            },
        )?;
        let user = match policy {
            Some(p) => match p.user_of_key(&key) {
                Some(u) if u.active_at(self.now) => Some(u.name.clone()),
                Some(u) => {
                    return Err(Refusal::new(r, "expired key", format!("commit {commit} is signed by {}, whose key expired on {}", u.name, u.expires.map(|d| d.to_string()).unwrap_or_default()), "ask an admin to renew the key (mvault policy add-user NAME --key-file KEY.pub --expires DATE)"));
                }
                None if self.cfg.is_root(&key) => None,
                None => {
                    return Err(Refusal::new(r, "unknown signer", format!("commit {commit} is signed by key {}, which is in no policy entry in force", crypto::fingerprint(&key)), "sign with the key the policy names, or ask an admin to add yours"));
                }
            },
            None => None,
        };
        Ok(Signed { key, user })
    }

    fn judge_commit(
        &self,
        r: &str,
        commit: ObjectId,
        in_force: Option<&Policy>,
    ) -> Result<Accepted, Refusal> {
        let parents = self
            .store
            .commit_parents(commit)
            .map_err(|e| internal(r, e))?;
        let (_, data) = self.store.object(commit).map_err(|e| internal(r, e))?;
        let parsed = gix::objs::CommitRef::from_bytes(&data, gix::hash::Kind::Sha1)
            .map_err(|e| internal(r, e))?;
        let message = String::from_utf8_lossy(parsed.message).into_owned();
        let t = trailers(&message);
        let action = one(&t, "Mvault-Action").unwrap_or("");
        let tree = self.store.commit_tree(commit).map_err(|e| internal(r, e))?;
        let Some(parent) = parents.first().copied() else {
            return self.judge_init(r, commit, action);
        };
        // The state before this commit, and the policy that judges roles:
        // the one in force before the push (history replays use the parent's).
        let parent_policy = self.policy_at_commit(parent).map_err(|e| internal(r, e))?;
        let policy = in_force.cloned().unwrap_or_else(|| parent_policy.clone());
        // 4. Signed by a known, unexpired key (judged by the server's clock).
        let signer = self.commit_signer(r, commit, Some(&policy))?;
        let parent_tree = self.store.commit_tree(parent).map_err(|e| internal(r, e))?;
        let mut changes = Vec::new();
        // 4b. The new tree is well-formed: git and mvault read one path one way.
        diff_trees(self.store, Some(parent_tree), Some(tree), "", &mut changes).map_err(
            |e| match e {
                DiffError::Store(e) => internal(r, e),
                DiffError::BadTree(why) => Refusal::new(
                    r,
                    "malformed tree",
                    format!("commit {commit}: {why}"),
                    "build trees with mvault or stock git, which never write such entries",
                ),
                DiffError::BadMode(why) => Refusal::new(
                    r,
                    "bad file mode",
                    format!("commit {commit}: {why}"),
                    "register versions with mvault add; a version directory is written once",
                ),
            },
        )?;
        if changes.is_empty() {
            return Err(Refusal::new(
                r,
                "empty commit",
                format!("commit {commit} changes nothing"),
                "a commit does one thing: register a version or change the policy",
            ));
        }
        // 5. One action per commit, and the tree change must be that action.
        match action {
            "register" => self.judge_register(
                r,
                commit,
                &t,
                &policy,
                &parent_policy,
                &signer,
                parent_tree,
                tree,
                &changes,
            ),
            "policy" => {
                self.judge_policy(r, commit, &policy, &parent_policy, &signer, tree, &changes)
            }
            other => Err(Refusal::new(
                r,
                "unknown action",
                format!(
                    "commit {commit} has Mvault-Action {:?}; expected register or policy",
                    other
                ),
                "make commits with mvault",
            )),
        }
    }

    fn judge_init(&self, r: &str, commit: ObjectId, action: &str) -> Result<Accepted, Refusal> {
        // 6. The first commit of a vault is signed by a root key the server pinned.
        if action != "init" {
            return Err(Refusal::new(
                r,
                "unknown first commit",
                format!("root commit {commit} is not an mvault init commit"),
                "create the vault with mvault init",
            ));
        }
        let signer = self.commit_signer(r, commit, None)?;
        if !self.cfg.is_root(&signer.key) {
            return Err(Refusal::new(
                r,
                "init not signed by a root key",
                format!(
                    "commit {commit} is signed by {}; the server pins {} root key(s)",
                    crypto::fingerprint(&signer.key),
                    self.cfg.root_keys.len()
                ),
                "sign with a key given to mvault hook install --root-key",
            ));
        }
        let policy = self.policy_at_commit(commit).map_err(|e| {
            Refusal::new(
                r,
                "bad policy",
                e,
                "fix the policy (mvault policy check FILE)",
            )
        })?;
        if !policy.users.keys().any(|u| policy.is_admin(u)) {
            return Err(Refusal::new(
                r,
                "no admin",
                "the initial policy names no ml_admin on **",
                "create the vault with mvault init",
            ));
        }
        Ok(Accepted {
            refname: r.to_owned(),
            what: format!("init {commit}"),
        })
    }

    fn require(
        &self,
        r: &str,
        policy: &Policy,
        who: &str,
        what: &str,
        model: &ModelName,
        ability: Ability,
    ) -> Result<(), Refusal> {
        policy.check(who, model, ability, self.now).map_err(|d| {
            Refusal::new(
                r,
                "role",
                format!("{what} {d}"),
                format!(
                    "ask an ml_admin to grant {} on {model}, or have someone who holds it push",
                    d.need
                ),
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_register(
        &self,
        r: &str,
        commit: ObjectId,
        t: &BTreeMap<String, Vec<String>>,
        policy: &Policy,
        parent_policy: &Policy,
        signer: &Signed,
        parent_tree: ObjectId,
        tree: ObjectId,
        changes: &[Change],
    ) -> Result<Accepted, Refusal> {
        let bad = |rule: &'static str, detail: String| {
            Refusal::new(
                r,
                rule,
                format!("commit {commit}: {detail}"),
                "register versions with mvault add; a version directory is written once",
            )
        };
        let model_s = one(t, "Mvault-Model")
            .ok_or_else(|| bad("bad trailers", "no single Mvault-Model trailer".into()))?;
        let version_s = one(t, "Mvault-Version")
            .ok_or_else(|| bad("bad trailers", "no single Mvault-Version trailer".into()))?;
        let model = ModelName::parse(model_s).map_err(|e| bad("bad name", e.to_string()))?;
        let version = Version::parse(version_s).map_err(|e| bad("bad name", e.to_string()))?;
        // 7. Roles: the signer and the pusher may register this model.
        let Some(user) = signer.user.as_deref() else {
            return Err(bad(
                "role",
                "root keys change the policy; versions are registered by users".into(),
            ));
        };
        self.require(r, policy, user, "signer", &model, Ability::Register)?;
        if !self.audit {
            self.require(r, policy, &self.pusher, "pusher", &model, Ability::Register)?;
        }
        // 8. The change is confined to one new version directory (and the
        // model's new key ring): nothing existing is touched.
        let dir = names::version_dir(&model, &version);
        let ring_path = model.keyring_path();
        let mut new_ring = None;
        let mut files: BTreeMap<String, (ObjectId, EntryKind)> = BTreeMap::new();
        for c in changes {
            if c.old.is_some() {
                return Err(bad(
                    "existing content changed",
                    format!(
                        "{} already exists; published content is never modified or deleted",
                        escape(&c.path)
                    ),
                ));
            }
            let Some(newe) = c.new else { continue };
            if c.path == ring_path {
                new_ring = Some(newe.0);
            } else if let Some(rest) = c.path.strip_prefix(&format!("{dir}/")) {
                files.insert(rest.to_owned(), newe);
            } else {
                return Err(bad(
                    "file outside version directory",
                    format!("{} is outside {dir}", escape(&c.path)),
                ));
            }
        }
        if self
            .store
            .entry(parent_tree, &dir)
            .map_err(|e| internal(r, e))?
            .is_some()
        {
            return Err(bad("version exists", format!("{dir} already exists")));
        }
        // Another model may not hide inside a version directory or own this path.
        // No directory above the new version is itself a version: a model
        // nested inside a published version would change that version's tree.
        let mut above = String::from("models");
        for seg in model.as_str().split('/') {
            above = format!("{above}/{seg}");
            if self
                .store
                .entry(parent_tree, &format!("{above}/manifest.toml"))
                .map_err(|e| internal(r, e))?
                .is_some()
            {
                return Err(bad(
                    "name collision",
                    format!("{above} is a version directory; no model can live inside it"),
                ));
            }
        }
        // 9. The manifest: valid, canonical, for this model and version,
        // authored by the signer, signed by the commit's key.
        let manifest_entry = files
            .get("manifest.toml")
            .copied()
            .ok_or_else(|| bad("bad manifest", format!("{dir}/manifest.toml is missing")))?;
        let sig_entry = files
            .get("manifest.sig")
            .copied()
            .ok_or_else(|| bad("bad manifest", format!("{dir}/manifest.sig is missing")))?;
        for (name, (_, kind)) in &files {
            if *kind != EntryKind::Blob {
                return Err(bad(
                    "bad file mode",
                    format!(
                        "{dir}/{} is a {kind:?}; only regular files are stored",
                        escape(name)
                    ),
                ));
            }
        }
        let (_, mbytes) = self
            .store
            .object(manifest_entry.0)
            .map_err(|e| internal(r, e))?;
        let text = String::from_utf8(mbytes)
            .map_err(|_| bad("bad manifest", "manifest.toml is not UTF-8".into()))?;
        let m = Manifest::parse(&text)
            .map_err(|e| bad("bad manifest", format!("{dir}/manifest.toml: {e}")))?;
        if m.model != model || m.version != version {
            return Err(bad(
                "bad manifest",
                format!(
                    "manifest names {}@{}, directory is {model}@{version}",
                    m.model, m.version
                ),
            ));
        }
        if m.author != user {
            return Err(bad(
                "bad manifest",
                format!(
                    "manifest author is {}, commit signer is {user}",
                    escape(&m.author)
                ),
            ));
        }
        if let Some(p) = &m.parent {
            if self
                .store
                .entry(
                    parent_tree,
                    &format!("{}/manifest.toml", names::version_dir(&model, p)),
                )
                .map_err(|e| internal(r, e))?
                .is_none()
            {
                return Err(bad(
                    "bad manifest",
                    format!("parent version {model}@{p} does not exist"),
                ));
            }
        }
        let digest = Sha256Digest::of(text.as_bytes());
        if one(t, "Mvault-Manifest-Sha256") != Some(digest.to_hex().as_str()) {
            return Err(bad(
                "bad trailers",
                format!("Mvault-Manifest-Sha256 does not match manifest.toml ({digest})"),
            ));
        }
        let (_, sig) = self.store.object(sig_entry.0).map_err(|e| internal(r, e))?;
        let mkey = crypto::verify_signature(&sig, crypto::MANIFEST_NAMESPACE, text.as_bytes())
            .map_err(|e| bad("bad manifest signature", format!("{dir}/manifest.sig: {e}")))?;
        if mkey.key_data() != signer.key.key_data() {
            return Err(bad(
                "bad manifest signature",
                format!(
                    "manifest signed by {}, commit by {}",
                    crypto::fingerprint(&mkey),
                    crypto::fingerprint(&signer.key)
                ),
            ));
        }
        // 10. Blobs: exactly the ones the manifest names, each present with
        // its recorded ciphertext size (object headers only).
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for f in &m.files {
            expected.insert(f.blob(), f.blob_size);
        }
        for name in files.keys() {
            if name != "manifest.toml" && name != "manifest.sig" && !expected.contains_key(name) {
                return Err(bad(
                    "unexpected file",
                    format!("{dir}/{} is not named by the manifest", escape(name)),
                ));
            }
        }
        for (blob, size) in &expected {
            let Some((id, _)) = files.get(blob) else {
                return Err(bad(
                    "missing blob",
                    format!("{dir}/{blob} is named by the manifest but not in the tree"),
                ));
            };
            let actual = self.store.object_size(*id).map_err(|e| internal(r, e))?;
            if actual != *size {
                return Err(bad(
                    "blob size",
                    format!("{dir}/{blob}: manifest says {size} bytes, blob has {actual}"),
                ));
            }
        }
        // 11. Key ring: created with the version, wrapped to exactly the
        // policy's readers; otherwise it must already exist.
        match new_ring {
            Some(ring) => {
                let (_, sealed) = self.store.object(ring).map_err(|e| internal(r, e))?;
                check_ring(&sealed, parent_policy, &model, self.now)
                    .map_err(|e| bad("key ring recipients", format!("{ring_path}: {e}")))?;
            }
            None => {
                if self
                    .store
                    .entry(tree, &ring_path)
                    .map_err(|e| internal(r, e))?
                    .is_none()
                {
                    return Err(bad(
                        "missing key ring",
                        format!("{ring_path} does not exist"),
                    ));
                }
            }
        }
        Ok(Accepted {
            refname: r.to_owned(),
            what: format!("register {model}@{version} by {user} ({commit})"),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_policy(
        &self,
        r: &str,
        commit: ObjectId,
        policy: &Policy,
        parent_policy: &Policy,
        signer: &Signed,
        tree: ObjectId,
        changes: &[Change],
    ) -> Result<Accepted, Refusal> {
        let bad = |rule: &'static str, detail: String| {
            Refusal::new(
                r,
                rule,
                format!("commit {commit}: {detail}"),
                "change the policy with mvault policy, signed by an admin",
            )
        };
        // 12. Policy changes are signed by an admin of the policy in force
        // or a root key pinned by the server, and pushed by an admin: a
        // pushed policy cannot grant itself admin.
        let signer_is_admin = signer.user.as_deref().is_some_and(|u| policy.is_admin(u))
            || self.cfg.is_root(&signer.key);
        if !signer_is_admin {
            return Err(Refusal::new(
                r,
                "policy change not signed by an admin",
                format!("commit {commit} is signed by {}, who is not ml_admin on ** in the policy in force, nor a pinned root key", signer.user.clone().unwrap_or_else(|| crypto::fingerprint(&signer.key))),
                "have an admin make the change (mvault policy …)",
            ));
        }
        if !self.audit && !policy.is_admin(&self.pusher) {
            return Err(Refusal::new(
                r,
                "role",
                format!(
                    "pusher {} is not ml_admin on ** in the policy in force",
                    escape(&self.pusher)
                ),
                "have an admin push the policy change",
            ));
        }
        // The change touches the policy and existing key rings, nothing else.
        let mut touched_rings = BTreeSet::new();
        for c in changes {
            if c.path == POLICY_PATH
                && c.old.is_some()
                && c.new.is_some_and(|(_, k)| k == EntryKind::Blob)
            {
                continue;
            }
            if let Some(model) = c
                .path
                .strip_prefix(".mvault/keys/")
                .and_then(|p| p.strip_suffix(".age"))
            {
                if c.old.is_some() && c.new.is_some_and(|(_, k)| k == EntryKind::Blob) {
                    touched_rings.insert(model.to_owned());
                    continue;
                }
            }
            return Err(bad(
                "mixed actions",
                format!("a policy commit changes {} too", escape(&c.path)),
            ));
        }
        let new_policy = self
            .policy_at_commit(commit)
            .map_err(|e| bad("bad policy", e))?;
        if !new_policy.users.keys().any(|u| new_policy.is_admin(u)) {
            return Err(bad(
                "no admin left",
                "the new policy has no ml_admin on **".into(),
            ));
        }
        // 13. Every key ring whose readers change, or that the commit
        // touches, is wrapped to exactly the new policy's readers.
        let mut models = BTreeSet::new();
        collect_rings(self.store, tree, ".mvault/keys", "", &mut models)
            .map_err(|e| internal(r, e))?;
        for name in &models {
            let Ok(model) = ModelName::parse(name) else {
                return Err(bad(
                    "bad key ring name",
                    format!(".mvault/keys/{}.age", escape(name)),
                ));
            };
            let readers_before: BTreeSet<String> = parent_policy
                .readers(&model, self.now)
                .into_iter()
                .map(|(_, k)| crypto::public_key_line(k))
                .collect();
            let readers_after: BTreeSet<String> = new_policy
                .readers(&model, self.now)
                .into_iter()
                .map(|(_, k)| crypto::public_key_line(k))
                .collect();
            if readers_before == readers_after && !touched_rings.contains(name) {
                continue;
            }
            let path = model.keyring_path();
            let sealed = self
                .store
                .read_path(tree, &path)
                .map_err(|e| internal(r, e))?
                .unwrap_or_default();
            check_ring(&sealed, &new_policy, &model, self.now)
                .map_err(|e| bad("key ring recipients", format!("{path}: {e}")))?;
        }
        Ok(Accepted {
            refname: r.to_owned(),
            what: format!(
                "policy change by {} ({commit})",
                signer.user.clone().unwrap_or_else(|| "root key".into())
            ),
        })
    }

    /// The policy in force before the push.
    fn policy_before(&self, r: &str, main_after: Option<ObjectId>) -> Result<Policy, Refusal> {
        match self
            .main_before()
            .map_err(|e| internal(r, e))?
            .or(main_after)
        {
            Some(m) => self.policy_at_commit(m).map_err(|e| internal(r, e)),
            None => Err(Refusal::new(
                r,
                "no main",
                "the vault has no main branch yet",
                "push main first",
            )),
        }
    }

    /// Checks every tag passes: immutable, annotated, named as its ref,
    /// pointing at a commit, signed by a known unexpired user of the policy
    /// in force. Returns the tag's bytes and the signer's name.
    fn tag_basics(
        &self,
        u: &Update,
        new: ObjectId,
        policy: &Policy,
    ) -> Result<(Vec<u8>, String), Refusal> {
        let r = &u.refname;
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        // 14. Tags are immutable: created once, never moved.
        if u.old != ZERO {
            return Err(Refusal::new(
                r,
                "tag moved",
                format!("{} already points at {}", escape(name), u.old),
                "tags are immutable; register or promote anew",
            ));
        }
        let (kind, data) = self.store.object(new).map_err(|e| internal(r, e))?;
        if kind != gix::object::Kind::Tag {
            return Err(Refusal::new(
                r,
                "lightweight tag",
                format!("{} is a {kind}, not an annotated tag", escape(name)),
                "mvault makes signed annotated tags",
            ));
        }
        let tag = gix::objs::TagRef::from_bytes(&data, gix::hash::Kind::Sha1)
            .map_err(|e| internal(r, e))?;
        // 15. The tag names itself: a tag replayed under another ref is refused.
        if tag.name != name.as_bytes() {
            return Err(Refusal::new(
                r,
                "tag name mismatch",
                format!(
                    "the tag object says {:?}, the ref is {}",
                    escape(&String::from_utf8_lossy(tag.name)),
                    escape(name)
                ),
                "push the tag under its own name",
            ));
        }
        if tag.target_kind != gix::object::Kind::Commit {
            return Err(Refusal::new(
                r,
                "tag target",
                format!("tag points at a {}", tag.target_kind),
                "mvault tags point at commits",
            ));
        }
        // 16. Signed by a known, unexpired user.
        let Some((payload, sig)) = crate::vault::split_tag_signature(&data) else {
            return Err(Refusal::new(
                r,
                "unsigned tag",
                format!("{} has no SSH signature", escape(name)),
                "make tags with mvault, which signs them",
            ));
        };
        let key = crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload).map_err(|e| {
            Refusal::new(
                r,
                "bad tag signature",
                e.to_string(),
                "re-create the tag with mvault",
            )
        })?;
        let user = match policy.user_of_key(&key) {
            Some(u) if u.active_at(self.now) => u.name.clone(),
            Some(u) => {
                return Err(Refusal::new(
                    r,
                    "expired key",
                    format!("tag signed by {}, whose key has expired", u.name),
                    "ask an admin to renew the key",
                ))
            }
            None => {
                return Err(Refusal::new(
                    r,
                    "unknown signer",
                    format!(
                        "tag signed by key {}, which is in no policy entry in force",
                        crypto::fingerprint(&key)
                    ),
                    "sign with the key the policy names",
                ))
            }
        };
        Ok((data, user))
    }

    /// The commit on main that added `model@version`, checked: the tag's
    /// target adds the version (its parent lacks it) and main after the
    /// push holds the same version directory. Returns the manifest digest
    /// and the manifest's author.
    fn check_registering_commit(
        &self,
        r: &str,
        target: ObjectId,
        model: &ModelName,
        version: &Version,
        main_after: Option<ObjectId>,
    ) -> Result<(String, String), Refusal> {
        let dir = names::version_dir(model, version);
        let wrong = || {
            Refusal::new(
                r,
                "tag target",
                format!("the tag must point at the commit on main that added {model}@{version}"),
                "let mvault create the tag",
            )
        };
        let target_tree = self.store.commit_tree(target).map_err(|_| wrong())?;
        // The target is a register commit for this very version...
        let (_, tdata) = self.store.object(target).map_err(|_| wrong())?;
        let tcommit =
            gix::objs::CommitRef::from_bytes(&tdata, gix::hash::Kind::Sha1).map_err(|_| wrong())?;
        let tt = trailers(&tcommit.message.to_string());
        if tcommit.parents().count() != 1
            || one(&tt, "Mvault-Action") != Some("register")
            || one(&tt, "Mvault-Model") != Some(model.as_str())
            || one(&tt, "Mvault-Version") != Some(version.to_string().as_str())
        {
            return Err(wrong());
        }
        // ...and it is on main: added by this push, or already there.
        let on_main = self.pushed_chain.borrow().contains(&target)
            || match self.main_before().map_err(|e| internal(r, e))? {
                Some(before) => self
                    .store
                    .is_ancestor(target, before)
                    .map_err(|e| internal(r, e))?,
                None => false,
            };
        if !on_main {
            return Err(wrong());
        }
        let at_target = self
            .store
            .entry(target_tree, &dir)
            .map_err(|e| internal(r, e))?;
        let parent_has = match self
            .store
            .commit_parents(target)
            .map_err(|e| internal(r, e))?
            .first()
        {
            Some(p) => {
                let pt = self.store.commit_tree(*p).map_err(|e| internal(r, e))?;
                self.store
                    .entry(pt, &dir)
                    .map_err(|e| internal(r, e))?
                    .is_some()
            }
            None => false,
        };
        let Some(main_after) = main_after else {
            return Err(wrong());
        };
        let main_tree = self
            .store
            .commit_tree(main_after)
            .map_err(|e| internal(r, e))?;
        let on_main = self
            .store
            .entry(main_tree, &dir)
            .map_err(|e| internal(r, e))?;
        if at_target.is_none() || parent_has || at_target != on_main {
            return Err(wrong());
        }
        let manifest = self
            .store
            .read_path(target_tree, &format!("{dir}/manifest.toml"))
            .map_err(|e| internal(r, e))?
            .unwrap_or_default();
        let author = Manifest::parse(&String::from_utf8_lossy(&manifest))
            .map(|m| m.author)
            .unwrap_or_default();
        Ok((Sha256Digest::of(&manifest).to_hex(), author))
    }

    fn judge_tag(
        &self,
        u: &Update,
        new: ObjectId,
        main_after: Option<ObjectId>,
        updates: &[Update],
    ) -> Result<Accepted, Refusal> {
        let r = &u.refname;
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        let policy = self.policy_before(r, main_after)?;
        let (data, user) = self.tag_basics(u, new, &policy)?;
        if name.starts_with(approvals::APPROVAL_PREFIX) {
            return self.judge_approval(u, new, &policy, main_after, updates);
        }
        let tag = gix::objs::TagRef::from_bytes(&data, gix::hash::Kind::Sha1)
            .map_err(|e| internal(r, e))?;
        // 17. Registration tags: `<model>@v<version>` on the commit that
        // added that version, which is on main.
        let Some((m, v)) = name.rsplit_once("@v") else {
            return Err(Refusal::new(
                r,
                "unknown tag form",
                format!(
                    "{} is not <model>@v<version>, <model>#<stage>#<n> or an approval",
                    escape(name)
                ),
                "push only tags mvault makes",
            ));
        };
        let model = ModelName::parse(m)
            .map_err(|e| Refusal::new(r, "bad name", e.to_string(), "use a valid model name"))?;
        let version = Version::parse(v)
            .map_err(|e| Refusal::new(r, "bad name", e.to_string(), "use strict SemVer"))?;
        self.require(r, &policy, &user, "tag signer", &model, Ability::Register)?;
        if !self.audit {
            self.require(
                r,
                &policy,
                &self.pusher,
                "pusher",
                &model,
                Ability::Register,
            )?;
        }
        let (digest, _) =
            self.check_registering_commit(r, tag.target(), &model, &version, main_after)?;
        let msg = String::from_utf8_lossy(tag.message).into_owned();
        if one(&trailers(&msg), "Mvault-Manifest-Sha256") != Some(digest.as_str()) {
            return Err(Refusal::new(
                r,
                "tag digest",
                format!("the tag does not bind the manifest's SHA-256 {digest}"),
                "let mvault add create the tag",
            ));
        }
        Ok(Accepted {
            refname: r.to_owned(),
            what: format!("registration tag {model}@v{version} by {user}"),
        })
    }

    fn judge_approval(
        &self,
        u: &Update,
        new: ObjectId,
        policy: &Policy,
        main_after: Option<ObjectId>,
        _updates: &[Update],
    ) -> Result<Accepted, Refusal> {
        let r = &u.refname;
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        // 19. An approval names its stage, approver, model and version, is
        // signed by that approver, who holds the approver role, binds the
        // version's manifest digest and points at its registering commit.
        let a = approvals::read_approval(self.store, name, new).map_err(|e| {
            Refusal::new(
                r,
                "bad approval",
                e.to_string(),
                "approve with mvault approve",
            )
        })?;
        let signer = policy
            .user_of_key(&a.key)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        if signer != a.user {
            return Err(Refusal::new(
                r,
                "approval signer",
                format!(
                    "named for {} but signed by {}",
                    escape(&a.user),
                    escape(&signer)
                ),
                "approvals are made by the approver they name",
            ));
        }
        let model = ModelName::parse(&a.model).map_err(|e| internal(r, e))?;
        let version = Version::parse(&a.version).map_err(|e| internal(r, e))?;
        let rule = crate::release::rule_for(policy, &model, a.stage);
        let holds = |who: &str| {
            policy
                .check_role(who, &model, rule.approver_role, Ability::Approve, self.now)
                .is_ok()
        };
        if !holds(&a.user) {
            return Err(Refusal::new(
                r,
                "role",
                format!(
                    "approver {} does not hold {} on {model}",
                    escape(&a.user),
                    rule.approver_role
                ),
                format!("ask an ml_admin to grant {} on {model}", rule.approver_role),
            ));
        }
        if !self.audit && !holds(&self.pusher) {
            return Err(Refusal::new(
                r,
                "role",
                format!(
                    "pusher {} does not hold {} on {model}",
                    escape(&self.pusher),
                    rule.approver_role
                ),
                "approvals are pushed by approvers",
            ));
        }
        let (digest, author) =
            self.check_registering_commit(r, a.target, &model, &version, main_after)?;
        if a.manifest_sha256 != digest {
            return Err(Refusal::new(
                r,
                "approval digest",
                format!(
                    "binds manifest {}, {model}@{version}'s is {digest}",
                    escape(&a.manifest_sha256)
                ),
                "approve the version as it is registered",
            ));
        }
        if !rule.allow_self_approval && a.user == author {
            return Err(Refusal::new(
                r,
                "self-approval",
                format!("{} is the author of {model}@{version}", escape(&a.user)),
                "ask another approver",
            ));
        }
        Ok(Accepted {
            refname: r.to_owned(),
            what: format!(
                "approval of {model}@{version} for {} by {}",
                a.stage, a.user
            ),
        })
    }

    fn judge_promotion(
        &self,
        u: &Update,
        new: ObjectId,
        model: &ModelName,
        main_after: Option<ObjectId>,
        updates: &[Update],
        pending: &[stages::Promotion],
    ) -> Result<stages::Promotion, Refusal> {
        let r = &u.refname;
        let name = r.strip_prefix("refs/tags/").unwrap_or(r);
        let policy = self.policy_before(r, main_after)?;
        let (_, user) = self.tag_basics(u, new, &policy)?;
        let p = stages::read_promotion(self.store, name, new).map_err(|e| {
            Refusal::new(
                r,
                "bad promotion",
                e.to_string(),
                "promote with mvault promote",
            )
        })?;
        let version = Version::parse(&p.version).map_err(|e| {
            Refusal::new(
                r,
                "bad promotion",
                e.to_string(),
                "promote with mvault promote",
            )
        })?;
        // 20. The chain: counter one more than the highest on any tag of
        // the model, previous link the object id of that tag.
        let mut history = stages::ModelStages::read_excluding(self.store, model, &self.pushed_refs)
            .map_err(|e| internal(r, e))?;
        for q in pending {
            history.max_counter = history.max_counter.max(q.counter);
            history.promotions.push(q.clone());
        }
        if p.counter != history.max_counter + 1 {
            return Err(Refusal::new(
                r,
                "wrong counter",
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
                r,
                "broken chain",
                format!(
                    "Mvault-Previous-Promotion is {}, the last promotion of {model} is {}",
                    escape(p.previous.as_deref().unwrap_or("none")),
                    expected_prev.as_deref().unwrap_or("none")
                ),
                "fetch tags and promote again",
            ));
        }
        // 21. The target is the version's registering commit on main, and
        // the tag binds its manifest.
        let (digest, author) =
            self.check_registering_commit(r, p.target, model, &version, main_after)?;
        if p.manifest_sha256 != digest {
            return Err(Refusal::new(
                r,
                "promotion digest",
                format!(
                    "binds manifest {}, {model}@{version}'s is {digest}",
                    escape(&p.manifest_sha256)
                ),
                "promote with mvault promote",
            ));
        }
        // 22. A legal move from the stage the tags say the version is in.
        let vs = history.stage_of(&p.version);
        if p.from != Some(vs.stage) {
            return Err(Refusal::new(
                r,
                "wrong stage",
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
            stages::PromotionAction::Promote => {
                if !stages::transition_allowed(vs.stage, p.stage) {
                    return Err(Refusal::new(
                        r,
                        "stage skipped",
                        format!(
                            "{model}@{version} is in {}; from there it can go to {}, not {}",
                            vs.stage,
                            stages::next_stages(vs.stage).join(", "),
                            p.stage
                        ),
                        "promote one stage at a time",
                    ));
                }
            }
            stages::PromotionAction::Rollback => {
                // A rollback is a version put back in production that was
                // there before, with a reason; its optional second half
                // moves the production version it replaces to deprecated,
                // right after the first half, in the same push.
                let back_in = p.stage == Stage::Production
                    && vs.ever_production
                    && vs.stage != Stage::Archived
                    && !(vs.stage == Stage::Production
                        && history.serving(Stage::Production) == Some(p.version.as_str()));
                let demotion = p.stage == Stage::Deprecated
                    && vs.stage == Stage::Production
                    && pending.last().is_some_and(|q| {
                        q.action == stages::PromotionAction::Rollback
                            && q.stage == Stage::Production
                            && q.counter + 1 == p.counter
                    });
                if !(back_in || demotion) || p.reason.is_none() {
                    return Err(Refusal::new(r, "bad rollback", format!("{model}@{version} was never in production, is archived or already served, or no reason was given"), "roll back only to an earlier production version, with --reason"));
                }
            }
        }
        // 23. Roles: the signer and the pusher may promote into this stage
        // (a rollback, both halves, by the production rule).
        let rule_stage = if p.action == stages::PromotionAction::Rollback {
            Stage::Production
        } else {
            p.stage
        };
        let rule = crate::release::rule_for(&policy, model, rule_stage);
        let holds = |who: &str| {
            policy
                .check_role(who, model, rule.promote_role, Ability::Promote, self.now)
                .is_ok()
        };
        if !holds(&user) {
            return Err(Refusal::new(
                r,
                "role",
                format!(
                    "promoter {user} does not hold {} on {model}",
                    rule.promote_role
                ),
                format!(
                    "ask an ml_admin to grant {} on {model}, or have someone who holds it promote",
                    rule.promote_role
                ),
            ));
        }
        if !self.audit && !holds(&self.pusher) {
            return Err(Refusal::new(
                r,
                "role",
                format!(
                    "pusher {} does not hold {} on {model}",
                    escape(&self.pusher),
                    rule.promote_role
                ),
                "have the promoter push",
            ));
        }
        if rule.require_ticket && p.ticket.is_none() && p.action == stages::PromotionAction::Promote
        {
            return Err(Refusal::new(
                r,
                "ticket required",
                format!("promotions to {} need Mvault-Ticket", p.stage),
                "pass --ticket",
            ));
        }
        // 24. Approvals: enough valid ones, distinct people, none by the
        // author or promoter unless allowed, all for this manifest and stage.
        if p.action == stages::PromotionAction::Promote && rule.approvals > 0 {
            let mut candidates = Vec::new();
            for (aname, aid) in &p.approvals {
                let id = ObjectId::from_hex(aid.as_bytes()).map_err(|_| {
                    Refusal::new(
                        r,
                        "bad approval",
                        format!("{} has a malformed id", escape(aname)),
                        "promote with mvault",
                    )
                })?;
                let full = format!("refs/tags/{aname}");
                let known = self.store.ref_target(&full).map_err(|e| internal(r, e))? == Some(id)
                    || updates
                        .iter()
                        .any(|x| x.refname == full && x.new == aid.as_str());
                if !known {
                    return Err(Refusal::new(
                        r,
                        "unknown approval",
                        format!(
                            "{} {} is not an approval tag in the vault",
                            escape(aname),
                            escape(aid)
                        ),
                        "push the approval first",
                    ));
                }
                let a = approvals::read_approval(self.store, aname, id).map_err(|e| {
                    Refusal::new(
                        r,
                        "bad approval",
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
                        r,
                        "approval for another version or stage",
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
            let count = approvals::count_approvals(
                &policy,
                &rule,
                model,
                &digest,
                &approvals::Parties {
                    author: &author,
                    promoter: &user,
                },
                candidates,
                self.now,
            );
            if (count.counted.len() as u32) < rule.approvals {
                let why: Vec<String> = count
                    .rejected
                    .iter()
                    .map(|(n, w)| format!("{n}: {w}"))
                    .collect();
                return Err(Refusal::new(
                    r,
                    "not enough approvals",
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
}

fn collect_rings(
    store: &Store,
    tree: ObjectId,
    dir: &str,
    prefix: &str,
    out: &mut BTreeSet<String>,
) -> Result<(), StoreError> {
    for e in store.list_dir(tree, dir)? {
        let name = if prefix.is_empty() {
            e.name.clone()
        } else {
            format!("{prefix}/{}", e.name)
        };
        if e.is_tree {
            collect_rings(store, tree, &format!("{dir}/{}", e.name), &name, out)?;
        } else if let Some(m) = name.strip_suffix(".age") {
            out.insert(m.to_owned());
        }
    }
    Ok(())
}

/// A key ring's `ssh-ed25519` stanzas must name exactly the model's readers;
/// any other recipient type (but age's grease) is refused. Read from the age
/// header alone, without decrypting.
pub fn check_ring(
    sealed: &[u8],
    policy: &Policy,
    model: &ModelName,
    now: OffsetDateTime,
) -> Result<(), String> {
    let stanzas = crypto::age_header_stanzas(sealed).ok_or("not an age file")?;
    let mut found = BTreeSet::new();
    let mut grease = 0;
    for (kind, args) in &stanzas {
        if kind == "ssh-ed25519" {
            // One stanza per reader: a second stanza under a reader's tag
            // could be wrapped to anyone (the tag is only a hint).
            let tag = args.first().cloned().unwrap_or_default();
            if !found.insert(tag.clone()) {
                return Err(format!(
                    "two ssh-ed25519 stanzas carry the tag {}",
                    escape(&tag)
                ));
            }
        } else if kind.ends_with("-grease") && grease == 0 {
            // age adds one random "grease" stanza to every header.
            grease += 1;
        } else {
            return Err(format!(
                "a {} recipient is not a reader in the policy",
                escape(kind)
            ));
        }
    }
    let readers = policy.readers(model, now);
    let expected: BTreeMap<String, &str> = readers
        .iter()
        .map(|(u, k)| (crypto::ssh_stanza_tag(k), *u))
        .collect();
    let expected_tags: BTreeSet<String> = expected.keys().cloned().collect();
    if found != expected_tags {
        let extra = found.difference(&expected_tags).count();
        let missing: Vec<&str> = expected_tags
            .difference(&found)
            .filter_map(|t| expected.get(t).copied())
            .collect();
        return Err(format!(
            "wrapped to {} key(s), the policy's readers are {} key(s); {extra} recipient(s) are not readers, missing: [{}]",
            found.len(),
            expected_tags.len(),
            missing.join(", ")
        ));
    }
    Ok(())
}

fn internal(r: &str, e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        r,
        "internal error",
        e.to_string(),
        "the hook fails closed; ask the server admin to check mvault hook check",
    )
}

/// One line of the decision log.
#[derive(Debug, Serialize)]
struct LogLine<'a> {
    time: String,
    pusher: Option<&'a str>,
    decision: &'a str,
    updates: &'a [Update],
    accepted: &'a [Accepted],
    refusal: Option<&'a Refusal>,
    prev: String,
}

/// Append one decision to the hash-chained log: each line carries the
/// SHA-256 of the line before it (zeros for the first).
pub fn append_log(
    git_dir: &Path,
    pusher: Option<&str>,
    updates: &[Update],
    outcome: &Result<Vec<Accepted>, Refusal>,
    now: OffsetDateTime,
) -> std::io::Result<()> {
    let empty: Vec<Accepted> = Vec::new();
    let line = LogLine {
        time: crate::vault::rfc3339(now),
        pusher,
        decision: if outcome.is_ok() { "accept" } else { "refuse" },
        updates,
        accepted: outcome.as_ref().map(Vec::as_slice).unwrap_or(&empty),
        refusal: outcome.as_ref().err(),
        prev: String::new(),
    };
    append_chained(
        git_dir,
        serde_json::to_value(&line).map_err(std::io::Error::other)?,
    )
}

/// Append `entry` to the server log with its `prev` link set. Only the
/// log's tail is read, so the cost does not grow with the log.
pub fn append_chained(git_dir: &Path, mut entry: serde_json::Value) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = git_dir.join(LOG_FILE);
    let lock = git_dir.join(format!("{LOG_FILE}.lock"));
    // A lock file serialises concurrent hooks (git runs one per push).
    let mut tries = 0;
    let _guard = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(f) => {
                break LockGuard {
                    path: lock.clone(),
                    _file: f,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 200 => {
                // A lock left by a killed hook: no append takes a minute.
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(60));
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => return Err(e),
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    let len = f.metadata()?.len();
    let mut prev = "0".repeat(64);
    if len > 0 {
        // Read backwards in growing windows until the last line is whole.
        let mut window = 64 * 1024u64;
        loop {
            let start = len.saturating_sub(window);
            f.seek(SeekFrom::Start(start))?;
            let mut tail = Vec::new();
            f.read_to_end(&mut tail)?;
            let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
            match body.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    prev = Sha256Digest::of(&body[i + 1..]).to_hex();
                    break;
                }
                None if start == 0 => {
                    prev = Sha256Digest::of(body).to_hex();
                    break;
                }
                None => window *= 4,
            }
        }
    }
    entry["prev"] = serde_json::Value::String(prev);
    let mut text = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
    text.push('\n');
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    // The head: the log's length and its last line's hash, kept beside it,
    // so cutting lines off the end or editing the last one is detected.
    let line_hash = Sha256Digest::of(text.trim_end_matches('\n').as_bytes()).to_hex();
    let head = git_dir.join(HEAD_FILE);
    let tmp = git_dir.join(format!("{HEAD_FILE}.tmp"));
    std::fs::write(&tmp, format!("{} {line_hash}\n", len + text.len() as u64))?;
    std::fs::rename(&tmp, &head)?;
    Ok(())
}

/// The access log half of the server log: `git upload-pack` runs this in
/// place of `git pack-objects` (`uploadpack.packObjectsHook`). It records
/// who fetched which refs, then runs the real pack-objects on the same input.
pub fn pack_objects(
    git_dir: &Path,
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> std::io::Result<i32> {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    if let Ok(store) = Store::open(git_dir) {
        let cfg = ServerConfig::read(&store).unwrap_or_default();
        // Only vaults are logged; other repositories of the same user pass through.
        if !cfg.root_keys.is_empty() {
            let wants: BTreeSet<String> = String::from_utf8_lossy(&input)
                .lines()
                .map(str::trim)
                .filter(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_owned)
                .collect();
            let mut refs = Vec::new();
            if let Ok(all) = store.refs_with_prefix("refs/") {
                for (name, id) in all {
                    if wants.contains(&id.to_string()) {
                        refs.push(name);
                    }
                }
            }
            let user = pusher_from_env(&env, &cfg).unwrap_or_else(|| "unknown".into());
            let entry = serde_json::json!({
                "time": crate::vault::rfc3339(now),
                "event": "fetch",
                "user": user,
                "refs": refs,
                "wants": wants.len(),
            });
            append_chained(store.git_dir(), entry)?;
        }
    }
    let Some((program, rest)) = args.split_first() else {
        return Err(std::io::Error::other("no pack-objects command given"));
    };
    let mut child = std::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&input)?;
    drop(stdin);
    Ok(child.wait()?.code().unwrap_or(1))
}

struct LockGuard {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Check the decision log's chain; `Ok(lines)` or the first broken line.
pub fn verify_log(git_dir: &Path) -> Result<usize, String> {
    let path = git_dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prev = "0".repeat(64);
    let mut n = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format!("{LOG_FILE} line {}: not JSON: {e}", i + 1))?;
        let got = v.get("prev").and_then(|p| p.as_str()).unwrap_or("");
        if got != prev {
            return Err(format!(
                "{LOG_FILE} line {}: chain broken: prev is {got}, the line before hashes to {prev} (a line was edited, removed or inserted)",
                i + 1
            ));
        }
        prev = Sha256Digest::of(line).to_hex();
        n += 1;
    }
    let head = std::fs::read_to_string(git_dir.join(HEAD_FILE))
        .map_err(|e| format!("{HEAD_FILE}: {e} (the log's head is missing)"))?;
    let (len, hash) = head.trim().split_once(' ').unwrap_or(("", ""));
    if len != bytes.len().to_string() || hash != prev {
        return Err(format!(
            "{LOG_FILE}: the log ends at line {n} with hash {prev} and {} bytes, but its head records {len} bytes and hash {hash} (lines were cut off the end or the last line was edited)",
            bytes.len()
        ));
    }
    Ok(n)
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
    let outcome = (|| -> Result<Vec<Accepted>, Refusal> {
        let first = updates
            .first()
            .map(|u| u.refname.clone())
            .unwrap_or_default();
        let store =
            Store::open_quarantined(git_dir, scratch.path()).map_err(|e| internal(&first, e))?;
        let cfg = ServerConfig::read(&store).map_err(|e| internal(&first, e))?;
        if cfg.root_keys.is_empty() {
            return Err(Refusal::new(
                &first,
                "hook not configured",
                "no root key is pinned (mvault.rootKey)",
                "run mvault hook install REPO --root-key KEY.pub",
            ));
        }
        let Some(p) = pusher_from_env(&env, &cfg) else {
            return Err(Refusal::new(
                &first,
                "unknown pusher",
                format!("none of {} is set, and no {LOCAL_USER_CONFIG} is configured", IDENTITY_VARS.join(", ")),
                "the server must say who pushes (MVAULT_USER in authorized_keys, or the git server's own variable)",
            ));
        };
        pusher = Some(p.clone());
        Judge::new(&store, &cfg, p, now).judge(&updates)
    })();
    let mut lines = Vec::new();
    if let Err(e) = append_log(git_dir, pusher.as_deref(), &updates, &outcome, now) {
        lines.push(format!(
            "mvault: refused: internal error: cannot write the decision log: {e}"
        ));
        lines.push("hint: the hook fails closed; ask the server admin to check the repository's permissions".into());
        return (false, lines);
    }
    match outcome {
        Ok(acc) => {
            for a in &acc {
                lines.push(format!(
                    "mvault: accepted {}: {}",
                    escape(&a.refname),
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

/// The shim `mvault hook install` writes as `hooks/pre-receive`.
pub fn shim(mvault_bin: &Path) -> String {
    let template = include_str!("../hooks/pre-receive");
    template.replace(
        "@MVAULT_BIN@",
        &mvault_bin.display().to_string().replace('\'', "'\\''"),
    )
}

/// The git settings the hook relies on, set by `mvault hook install`.
pub const SERVER_CONFIG: &[(&str, &str)] = &[
    ("receive.denyNonFastForwards", "true"),
    ("receive.denyDeletes", "true"),
    ("receive.unpackLimit", "1"),
    ("core.looseCompression", "0"),
    ("pack.compression", "0"),
    ("core.bigFileThreshold", "1048576"),
    ("core.packedGitWindowSize", "16777216"),
    ("core.packedGitLimit", "67108864"),
    ("uploadpack.allowFilter", "true"),
    // git's own object checks on every push, behind the hook's: malformed
    // trees and names are refused before the hook even runs.
    ("receive.fsckObjects", "true"),
];

/// The attributes a bare repository reads from `info/attributes`.
pub const SERVER_ATTRIBUTES: &str =
    "models/**/blobs/* binary -delta\n.mvault/keys/** binary -delta\n";

/// What `hook install` did or `hook check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    pub ok: bool,
    pub what: String,
}

/// Install the hook into a bare repository.
pub fn install(
    repo: &Path,
    root_keys: &[PublicKey],
    mvault_bin: &Path,
    local_user: Option<&str>,
) -> Result<Vec<CheckItem>, String> {
    let store = Store::open(repo).map_err(|e| e.to_string())?;
    let git_dir = store.git_dir().to_owned();
    if store.work_dir().is_some() {
        return Err(format!(
            "{} has a work tree; install the hook in the server's bare repository",
            repo.display()
        ));
    }
    if root_keys.is_empty() {
        return Err("give at least one --root-key".into());
    }
    let git = |args: &[&str]| store.git(args).map_err(|e| e.to_string());
    let _ = git(&["config", "--unset-all", ROOT_KEY_CONFIG]);
    for k in root_keys {
        git(&[
            "config",
            "--add",
            ROOT_KEY_CONFIG,
            &crypto::public_key_line(k),
        ])?;
    }
    if let Some(u) = local_user {
        git(&["config", LOCAL_USER_CONFIG, u])?;
    }
    for (k, v) in SERVER_CONFIG {
        git(&["config", k, v])?;
    }
    let info = git_dir.join("info");
    std::fs::create_dir_all(&info).map_err(|e| e.to_string())?;
    std::fs::write(info.join("attributes"), SERVER_ATTRIBUTES).map_err(|e| e.to_string())?;
    let hooks = git_dir.join("hooks");
    std::fs::create_dir_all(&hooks).map_err(|e| e.to_string())?;
    let hook = hooks.join("pre-receive");
    let tmp = hooks.join(".pre-receive.mvault-tmp");
    std::fs::write(&tmp, shim(mvault_bin)).map_err(|e| e.to_string())?;
    set_executable(&tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &hook).map_err(|e| e.to_string())?;
    Ok(check(repo))
}

#[cfg(unix)]
fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Check that a server repository is installed correctly.
pub fn check(repo: &Path) -> Vec<CheckItem> {
    let mut out = Vec::new();
    let mut item = |ok: bool, what: String| out.push(CheckItem { ok, what });
    let store = match Store::open(repo) {
        Ok(s) => s,
        Err(e) => {
            item(false, e.to_string());
            return out;
        }
    };
    item(store.work_dir().is_none(), "the repository is bare".into());
    let hook = store.git_dir().join("hooks/pre-receive");
    let text = std::fs::read_to_string(&hook).unwrap_or_default();
    item(
        text.contains("hook pre-receive"),
        format!("{} runs mvault hook pre-receive", hook.display()),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::metadata(&hook)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        item(exec, "the hook is executable".into());
    }
    let bin = text.lines().find_map(|l| {
        l.strip_prefix("MVAULT_BIN='")
            .and_then(|r| r.strip_suffix('\''))
    });
    item(
        bin.is_some_and(|b| Path::new(b).exists()),
        format!(
            "the mvault binary the hook runs exists ({})",
            bin.unwrap_or("?")
        ),
    );
    match ServerConfig::read(&store) {
        Ok(cfg) => item(
            !cfg.root_keys.is_empty(),
            format!(
                "{} root key(s) pinned in the server config",
                cfg.root_keys.len()
            ),
        ),
        Err(e) => item(false, e),
    }
    let snap = store.repo().config_snapshot();
    for (k, v) in SERVER_CONFIG {
        let got = snap
            .string(*k)
            .map(|s| String::from_utf8_lossy(s.as_ref()).into_owned());
        item(
            got.as_deref() == Some(*v),
            format!(
                "{k} = {v} (found {})",
                got.unwrap_or_else(|| "unset".into())
            ),
        );
    }
    let attrs =
        std::fs::read_to_string(store.git_dir().join("info/attributes")).unwrap_or_default();
    item(
        attrs.contains("-delta"),
        "info/attributes keeps blobs out of delta search".into(),
    );
    out
}

/// The client's pre-push check: run the server's rules locally before
/// pushing, against the server's main as this clone last saw it. git gives
/// `<local ref> <local sha> <remote ref> <remote sha>` lines.
pub fn pre_push(
    store: &Store,
    remote: &str,
    input: &str,
    pusher: Option<String>,
    now: OffsetDateTime,
) -> (bool, Vec<String>) {
    let mut updates = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split(' ').collect();
        if let [_, local_sha, remote_ref, remote_sha] = parts.as_slice() {
            updates.push(Update {
                old: (*remote_sha).to_owned(),
                new: (*local_sha).to_owned(),
                refname: (*remote_ref).to_owned(),
            });
        }
    }
    if updates.is_empty() {
        return (true, Vec::new());
    }
    // A new vault's first push is judged against root keys only the
    // server knows: leave it to the server.
    if updates
        .iter()
        .any(|u| u.refname == MAIN_REF && u.old == ZERO)
    {
        return (
            true,
            vec!["mvault: pre-push: a new vault's first push is checked by the server".into()],
        );
    }
    let base = match updates.iter().find(|u| u.refname == MAIN_REF) {
        Some(u) if u.old == ZERO => None,
        Some(u) => ObjectId::from_hex(u.old.as_bytes()).ok(),
        None => store
            .ref_target(&format!("refs/remotes/{remote}/main"))
            .ok()
            .flatten(),
    };
    let cfg = ServerConfig::default();
    match Judge::for_pre_push(store, &cfg, pusher, now, base, &updates).judge(&updates) {
        Ok(acc) => (
            true,
            acc.iter()
                .map(|a| {
                    format!(
                        "mvault: pre-push ok {}: {}",
                        escape(&a.refname),
                        escape(&a.what)
                    )
                })
                .collect(),
        ),
        Err(r) => (
            false,
            vec![
                r.line(),
                format!("hint: {}", r.hint),
                "hint: the server's hook would refuse this push; nothing was sent".into(),
            ],
        ),
    }
}

/// The client-side pre-push shim `mvault hook install-pre-push` writes.
pub fn pre_push_shim(mvault_bin: &Path) -> String {
    format!(
        "#!/bin/sh\n# mvault pre-push check, installed by `mvault hook install-pre-push`:\n# runs the server's rules locally so a refusal is known before pushing.\nexec '{}' hook pre-push \"$@\"\n",
        mvault_bin.display().to_string().replace('\'', "'\\''")
    )
}

/// Install the pre-push shim into a clone's hooks directory.
pub fn install_pre_push(store: &Store, mvault_bin: &Path) -> std::io::Result<PathBuf> {
    let hooks = store.git_dir().join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let path = hooks.join("pre-push");
    std::fs::write(&path, pre_push_shim(mvault_bin))?;
    set_executable(&path)?;
    Ok(path)
}
