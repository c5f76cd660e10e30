//! Real vault objects built in memory, for the rules' unit tests: no git
//! process, no file system, no clock. [`MemorySource`] and [`MemoryMain`]
//! are what the rules see; the builders here write objects byte for byte as
//! `ops::admin`, `ops::register`, `ops::purge` and `ops::release` write
//! them, signed by in-process ed25519 keys derived from fixed seeds, and
//! [`World`] (in `fixtures/world.rs`) puts them together into a small valid
//! vault that each test then bends.

use std::collections::{BTreeMap, BTreeSet};

use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};

use super::context::{MainLine, ROOT_KEY_TRAILER};
use super::source::ObjectSource;
use crate::crypto::{self, DataKey, SignatureError, Signer};
use crate::model::names::{ModelName, Stage, Version};
use crate::model::promotion::{promotion_name, PromotionAction};
use crate::store::objects::{
    encode_commit_payload, encode_signed_commit, encode_tag_payload, encode_tree, object_id,
    EntryKind, ObjectId, ObjectKind, Person, TreeItem,
};
use crate::store::StoreError;

mod world;

pub use world::{Registered, VersionDraft, World};

/// The vault's first moment (2023-11-14T22:13:20Z); later objects count from it.
pub const T0: i64 = 1_700_000_000;
/// The judge's clock.
pub const NOW: i64 = T0 + 10_000;
/// The allowed skew.
pub const SKEW: i64 = 300;

/// Objects by id and refs by name, in memory.
#[derive(Default, Clone)]
pub struct MemorySource {
    objects: BTreeMap<ObjectId, (ObjectKind, Vec<u8>)>,
    refs: BTreeMap<String, ObjectId>,
}

impl MemorySource {
    /// Store `data` as an object of `kind`; its git id.
    pub fn put(&mut self, kind: ObjectKind, data: Vec<u8>) -> ObjectId {
        let id = object_id(kind, &data);
        self.objects.insert(id, (kind, data));
        id
    }

    pub fn blob(&mut self, data: &[u8]) -> ObjectId {
        self.put(ObjectKind::Blob, data.to_vec())
    }

    /// A tree of `items` in git's order (a tree sorts as if its name ended in '/').
    pub fn tree(&mut self, mut items: Vec<TreeItem>) -> ObjectId {
        items.sort_by_key(|i| {
            let mut k = i.name.clone();
            if i.kind == EntryKind::Tree {
                k.push(b'/');
            }
            k
        });
        self.raw_tree(&items)
    }

    /// A tree of `items` exactly as given: duplicates, bad order and bad
    /// names kept (hostile trees).
    pub fn raw_tree(&mut self, items: &[TreeItem]) -> ObjectId {
        self.put(ObjectKind::Tree, encode_tree(items))
    }

    /// The nested trees holding `files` (path → blob).
    pub fn tree_of(&mut self, files: &Files) -> ObjectId {
        let mut here: Vec<TreeItem> = Vec::new();
        let mut dirs: BTreeMap<&str, Files> = BTreeMap::new();
        for (path, (id, kind)) in files {
            match path.split_once('/') {
                Some((dir, rest)) => {
                    dirs.entry(dir)
                        .or_default()
                        .insert(rest.to_owned(), (*id, *kind));
                }
                None => here.push(item(path, *id, *kind)),
            }
        }
        for (dir, sub) in dirs {
            let id = self.tree_of(&sub);
            here.push(item(dir, id, EntryKind::Tree));
        }
        self.tree(here)
    }

    /// The payload tree of `parts` (name → ciphertext), its blobs stored.
    pub fn payload_tree(&mut self, parts: &BTreeMap<String, Vec<u8>>) -> ObjectId {
        for bytes in parts.values() {
            self.blob(bytes);
        }
        self.raw_tree(&payload_items(parts))
    }

    pub fn set_ref(&mut self, name: &str, id: ObjectId) {
        self.refs.insert(name.to_owned(), id);
    }

    /// Drop object `id`, as a clone that never fetched it lacks it.
    pub fn forget(&mut self, id: ObjectId) {
        self.objects.remove(&id);
    }

    /// The bytes of object `id` (panics when absent: a fixture bug).
    pub fn bytes(&self, id: ObjectId) -> Vec<u8> {
        self.objects[&id].1.clone()
    }
}

fn missing(id: ObjectId) -> StoreError {
    StoreError::Git(format!("object {id} not found"))
}

impl ObjectSource for MemorySource {
    fn object(&self, id: ObjectId) -> Result<(ObjectKind, Vec<u8>), StoreError> {
        self.objects.get(&id).cloned().ok_or_else(|| missing(id))
    }
    fn object_size(&self, id: ObjectId) -> Result<u64, StoreError> {
        self.objects
            .get(&id)
            .map(|(_, d)| d.len() as u64)
            .ok_or_else(|| missing(id))
    }
    fn blob_prefix(&self, id: ObjectId, max: usize) -> Result<Vec<u8>, StoreError> {
        let (_, d) = self.objects.get(&id).ok_or_else(|| missing(id))?;
        Ok(d[..d.len().min(max)].to_vec())
    }
    fn has_object(&self, id: ObjectId) -> bool {
        self.objects.contains_key(&id)
    }
    fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError> {
        Ok(self.refs.get(name).copied())
    }
}

/// `main` as a set of commits and a tip.
#[derive(Clone)]
pub struct MemoryMain {
    pub commits: BTreeSet<ObjectId>,
    pub tip: ObjectId,
    /// main in order, and the dates of its policy commits by position.
    pub order: Vec<ObjectId>,
    pub policy_dates: Vec<(usize, i64)>,
    /// The stage of each (model, version) the test set one for, and when
    /// it entered it, as the promotion tags the judge believes would say;
    /// every other version is in development.
    pub stages: BTreeMap<(String, String), (Stage, i64)>,
}

impl MemoryMain {
    /// Say that `model@version` is in `stage` (since `T0`).
    pub fn set_stage(&mut self, model: &ModelName, version: &Version, stage: Stage) {
        self.set_stage_at(model, version, stage, T0);
    }

    /// Say that `model@version` entered `stage` at `since`.
    pub fn set_stage_at(&mut self, model: &ModelName, version: &Version, stage: Stage, since: i64) {
        self.stages
            .insert((model.to_string(), version.to_string()), (stage, since));
    }
}

impl MainLine for MemoryMain {
    fn contains(&self, commit: ObjectId) -> Result<bool, StoreError> {
        Ok(self.commits.contains(&commit))
    }
    fn tip(&self) -> ObjectId {
        self.tip
    }
    fn policy_change_after(&self, commit: ObjectId) -> Result<Option<i64>, StoreError> {
        let Some(at) = self.order.iter().position(|c| *c == commit) else {
            return Ok(None);
        };
        Ok(self
            .policy_dates
            .iter()
            .find(|(i, _)| *i > at)
            .map(|(_, d)| *d))
    }
    fn stages_at(
        &self,
        model: &ModelName,
        _at: ObjectId,
    ) -> Result<crate::rules::stages::ModelStages, StoreError> {
        // One promotion per version the test placed, in the order of
        // their dates, as the tags would say.
        let mut placed: Vec<(&String, Stage, i64)> = self
            .stages
            .iter()
            .filter(|((m, _), _)| *m == model.to_string())
            .map(|((_, v), (s, t))| (v, *s, *t))
            .collect();
        placed.sort_by_key(|(_, _, t)| *t);
        let promotions = placed
            .into_iter()
            .enumerate()
            .map(|(i, (v, stage, time))| {
                let counter = i as u64 + 1;
                let id = object_id(ObjectKind::Tag, format!("{model}#{v}").as_bytes());
                crate::model::promotion::Promotion {
                    name: promotion_name(model, stage, counter),
                    id,
                    model: model.to_string(),
                    stage,
                    counter,
                    version: v.clone(),
                    from: None,
                    action: PromotionAction::Promote,
                    previous: None,
                    approvals: Vec::new(),
                    manifest_sha256: String::new(),
                    ticket: None,
                    reason: None,
                    record: None,
                    tagger: String::new(),
                    time,
                    target: id,
                }
            })
            .collect::<Vec<_>>();
        Ok(crate::rules::stages::ModelStages {
            max_counter: promotions.len() as u64,
            promotions,
        })
    }
}

/// A tree entry.
pub fn item(name: &str, id: ObjectId, kind: EntryKind) -> TreeItem {
    TreeItem {
        name: name.as_bytes().to_vec(),
        id,
        kind,
    }
}

/// Paths of a commit's tree, each with its object and kind.
pub type Files = BTreeMap<String, (ObjectId, EntryKind)>;

/// A person's ed25519 key, from a fixed seed.
#[derive(Clone)]
pub struct TestKey {
    pub name: String,
    key: PrivateKey,
}

impl TestKey {
    pub fn new(name: &str, seed: u8) -> Self {
        let pair = Ed25519Keypair::from_seed(&[seed; 32]);
        TestKey {
            name: name.to_owned(),
            key: PrivateKey::from(pair),
        }
    }

    /// `NAME <NAME@mvault>` at `time`, as mvault writes identities.
    pub fn at(&self, time: i64) -> Person {
        Person {
            name: self.name.clone(),
            email: format!("{}@mvault", self.name),
            time,
        }
    }

    pub fn line(&self) -> String {
        crypto::public_key_line(self.key.public_key())
    }

    pub fn fingerprint(&self) -> String {
        crypto::fingerprint(self.key.public_key())
    }
}

impl Signer for TestKey {
    fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
    fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, SignatureError> {
        let sig = self
            .key
            .sign(namespace, HashAlg::Sha512, msg)
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        sig.to_pem(LineEnding::LF)
            .map_err(|e| SignatureError::Malformed(e.to_string()))
    }
}

/// Sign `payload` in the `git` namespace.
pub fn git_sig(key: &TestKey, payload: &[u8]) -> String {
    key.sign(crypto::GIT_NAMESPACE, payload).expect("signs")
}

/// The bytes of a commit, signed by `signer` when there is one.
pub fn commit_bytes(
    tree: ObjectId,
    parents: &[ObjectId],
    author: &Person,
    committer: &Person,
    message: &str,
    signer: Option<&TestKey>,
) -> Vec<u8> {
    let payload = encode_commit_payload(tree, parents, author, committer, message);
    match signer {
        None => payload,
        Some(k) => encode_signed_commit(
            tree,
            parents,
            author,
            committer,
            message,
            &git_sig(k, &payload),
        ),
    }
}

/// The bytes of an annotated tag of commit `target`, the signature
/// appended as `git tag -s` does, when there is a signer.
pub fn tag_bytes(
    target: ObjectId,
    name: &str,
    tagger: &Person,
    message: &str,
    signer: Option<&TestKey>,
) -> Vec<u8> {
    let mut bytes = encode_tag_payload(target, name, tagger, message);
    if let Some(k) = signer {
        let sig = git_sig(k, &bytes);
        bytes.extend_from_slice(sig.as_bytes());
    }
    bytes
}

/// RFC 3339 of unix seconds, as manifests carry it.
pub fn rfc3339(t: i64) -> String {
    super::context::rfc3339(t)
}

/// Real age ciphertext of `plaintext` to `key`.
pub fn age_blob(key: &DataKey, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crypto::encrypt_stream(&key.recipient(), plaintext, &mut out).expect("encrypts");
    out
}

/// The entries of a payload tree holding `parts` (name → ciphertext), in
/// git's order: each a regular file named as the part is named.
pub fn payload_items(parts: &BTreeMap<String, Vec<u8>>) -> Vec<TreeItem> {
    // Names of one length with no trees among them: byte order is git's.
    parts
        .iter()
        .map(|(name, bytes)| item(name, object_id(ObjectKind::Blob, bytes), EntryKind::Blob))
        .collect()
}

/// The id of the payload tree holding `parts`, as `ops::register` writes it.
pub fn payload_id(parts: &BTreeMap<String, Vec<u8>>) -> ObjectId {
    object_id(ObjectKind::Tree, &encode_tree(&payload_items(parts)))
}

/// The world's policy: an admin, alice (ml_engineer on nlp/*), bob
/// (approver on nlp/*), carol (ml_engineer on nlp/*, key expired in 2020);
/// production needs one approval, staging a ticket.
pub fn policy_text(admin: &TestKey, alice: &TestKey, bob: &TestKey, carol: &TestKey) -> String {
    format!(
        r#"schema = 1

[users.admin]
keys = ["{}"]

[users.alice]
keys = ["{}"]

[users.bob]
keys = ["{}"]

[users.carol]
keys = ["{}"]
expires = "2020-01-01"

[[grants]]
user = "admin"
role = "ml_admin"
models = "**"

[[grants]]
user = "alice"
role = "ml_engineer"
models = "nlp/*"

[[grants]]
user = "bob"
role = "approver"
models = "nlp/*"

[[grants]]
user = "carol"
role = "ml_engineer"
models = "nlp/*"

[[stages]]
stage = "production"
models = "**"
promote_role = "ml_engineer"
approvals = 1
approver_role = "approver"
allow_self_approval = false
require_ticket = false

[[stages]]
stage = "staging"
models = "**"
promote_role = "ml_engineer"
approvals = 0
approver_role = "approver"
allow_self_approval = false
require_ticket = true
"#,
        admin.line(),
        alice.line(),
        bob.line(),
        carol.line()
    )
}

/// What a promotion tag says, as `ops::release::write_promotion` writes it.
#[derive(Clone)]
pub struct PromotionSpec {
    pub action: PromotionAction,
    pub model: String,
    pub version: String,
    pub digest: String,
    pub from: Stage,
    pub to: Stage,
    pub counter: u64,
    pub previous: Option<ObjectId>,
    pub record: ObjectId,
    pub approvals: Vec<(String, String)>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
}

impl PromotionSpec {
    pub fn name(&self) -> String {
        promotion_name(
            &ModelName::parse(&self.model).expect("valid"),
            self.to,
            self.counter,
        )
    }

    pub fn message(&self) -> String {
        let verb = match self.action {
            PromotionAction::Promote => {
                format!("promote {}@{} to {}", self.model, self.version, self.to)
            }
            PromotionAction::Rollback => {
                format!("roll back {} production to {}", self.model, self.version)
            }
        };
        let mut msg = format!(
            "{verb}\n\nMvault-Action: {}\nMvault-Model: {}\nMvault-Version: {}\nMvault-Manifest-Sha256: {}\nMvault-From-Stage: {}\nMvault-To-Stage: {}\nMvault-Previous-Promotion: {}\n",
            self.action.as_str(),
            self.model,
            self.version,
            self.digest,
            self.from,
            self.to,
            self.previous
                .map(|id| id.to_string())
                .unwrap_or_else(|| "none".into())
        );
        msg.push_str(&format!("Mvault-Record: {}\n", self.record));
        for (n, id) in &self.approvals {
            msg.push_str(&format!("Mvault-Approval: {n} {id}\n"));
        }
        if let Some(t) = &self.ticket {
            msg.push_str(&format!("Mvault-Ticket: {t}\n"));
        }
        if let Some(r) = &self.reason {
            msg.push_str(&format!("Mvault-Reason: {r}\n"));
        }
        msg
    }
}

/// The message of an approval tag, as `ops::release` writes it.
pub fn approval_message(
    model: &str,
    version: &str,
    stage: Stage,
    user: &str,
    digest: &str,
    record: ObjectId,
) -> String {
    format!(
        "approve {model}@{version} for {stage}\n\nMvault-Action: approve\nMvault-Model: {model}\nMvault-Version: {version}\nMvault-Stage: {stage}\nMvault-Approver: {user}\nMvault-Manifest-Sha256: {digest}\nMvault-Record: {record}\n"
    )
}

/// The message of a register commit, as `ops::register::add` writes it.
pub fn register_message(
    model: &str,
    version: &str,
    digest: &str,
    new_ring: Option<&str>,
) -> String {
    let mut m = format!(
        "register {model}@{version}\n\nMvault-Action: register\nMvault-Model: {model}\nMvault-Version: {version}\nMvault-Manifest-Sha256: {digest}\n"
    );
    if let Some(r) = new_ring {
        m.push_str(&format!("Mvault-Key-Ring: created {r}\n"));
    }
    m
}

/// The message of a purge commit, as `ops::purge` writes it.
pub fn purge_message(model: &str, version: &str, reason: &str) -> String {
    format!(
        "purge {model}@{version}\n\n{reason}\n\nMvault-Action: purge\nMvault-Model: {model}\nMvault-Version: {version}\n"
    )
}

/// The message of an init commit recording `root` as admin and root key.
pub fn init_message(root: &TestKey) -> String {
    format!(
        "init vault\n\nMvault-Action: init\nMvault-Admin: {} {fp}\n{ROOT_KEY_TRAILER}: {fp}\n",
        root.name,
        fp = root.fingerprint()
    )
}
