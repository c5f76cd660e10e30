//! Real vault objects built in memory, for the rules' unit tests: no git
//! process, no file system, no clock. [`MemorySource`] and [`MemoryMain`]
//! are what the rules see; the builders write objects byte for byte as
//! `ops::admin`, `ops::register` and `ops::release` write them, signed by
//! in-process ed25519 keys derived from fixed seeds, and [`World`] puts
//! them together into a small valid vault that each test then bends.

use std::collections::{BTreeMap, BTreeSet};

use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};

use super::context::{Clock, Context, MainLine, RootKeys, ROOT_KEY_TRAILER};
use super::source::ObjectSource;
use super::stages::ModelStages;
use crate::crypto::{self, DataKey, KeyRing, SignatureError, Signer};
use crate::model::approval::approval_name;
use crate::model::manifest::{FileEntry, Manifest, Sha256Digest};
use crate::model::names::{self, ModelName, Stage, Version};
use crate::model::policy::{Policy, POLICY_PATH};
use crate::model::promotion::{parse_promotion, promotion_name, PromotionAction};
use crate::store::objects::{
    encode_commit_payload, encode_signed_commit, encode_tag_payload, encode_tree, object_id,
    EntryKind, ObjectId, ObjectKind, Person, TreeItem,
};
use crate::store::StoreError;

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

    pub fn set_ref(&mut self, name: &str, id: ObjectId) {
        self.refs.insert(name.to_owned(), id);
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

/// A version ready to be committed: its manifest, the ciphertext of each
/// file, the plaintext files themselves (for size claims).
pub struct VersionDraft {
    pub manifest: Manifest,
    /// `blobs/<sha256>` → ciphertext.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// A registered version of the world.
#[derive(Clone)]
pub struct Registered {
    pub commit: ObjectId,
    pub digest: String,
    pub tag_name: String,
    pub tag: ObjectId,
}

/// A small valid vault: init by the root key (the admin), a policy
/// commit adding alice, bob and carol, `nlp/bert@1.0.0` registered by
/// alice with its tag, promoted to staging (#1, with a ticket), approved
/// for production by bob, promoted to production (#2).
pub struct World {
    pub src: MemorySource,
    pub main: MemoryMain,
    pub roots: RootKeys,
    pub admin: TestKey,
    pub alice: TestKey,
    pub bob: TestKey,
    pub carol: TestKey,
    /// A key in no policy and not a root key.
    pub mallory: TestKey,
    pub policy: Policy,
    pub model: ModelName,
    pub version: Version,
    /// nlp/bert's data key.
    pub data_key: DataKey,
    /// The paths of each commit's tree.
    pub files: BTreeMap<ObjectId, Files>,
    pub init: ObjectId,
    pub policy_commit: ObjectId,
    pub bert: Registered,
    /// `nlp/bert#staging#1` (name, id).
    pub staging: (String, ObjectId),
    pub staging_spec: PromotionSpec,
    /// bob's approval of 1.0.0 for production (name, id).
    pub approval: (String, ObjectId),
    /// `nlp/bert#production#2` (name, id).
    pub production: (String, ObjectId),
    pub production_spec: PromotionSpec,
}

impl World {
    pub fn new() -> Self {
        let admin = TestKey::new("admin", 1);
        let alice = TestKey::new("alice", 2);
        let bob = TestKey::new("bob", 3);
        let carol = TestKey::new("carol", 4);
        let mallory = TestKey::new("mallory", 5);
        let mut src = MemorySource::default();
        // 1. init, as ops::admin::init writes it.
        let initial = Policy::initial("admin", admin.public_key());
        let mut files = Files::new();
        files.insert(
            POLICY_PATH.into(),
            (src.blob(initial.to_toml().as_bytes()), EntryKind::Blob),
        );
        files.insert(
            ".gitattributes".into(),
            (
                src.blob(b"models/**/blobs/* binary -delta\n.mvault/keys/** binary -delta\n"),
                EntryKind::Blob,
            ),
        );
        let tree = src.tree_of(&files);
        let message = init_message(&admin);
        let init = src.put(
            ObjectKind::Commit,
            commit_bytes(
                tree,
                &[],
                &admin.at(T0),
                &admin.at(T0),
                &message,
                Some(&admin),
            ),
        );
        let roots = RootKeys::from_keys([admin.public_key()]);
        let policy_text = policy_text(&admin, &alice, &bob, &carol);
        let policy = Policy::parse(&policy_text).expect("the world's policy parses");
        let mut w = World {
            main: MemoryMain {
                commits: BTreeSet::from([init]),
                tip: init,
                order: vec![init],
                policy_dates: Vec::new(),
            },
            src,
            roots,
            admin,
            alice,
            bob,
            carol,
            mallory,
            policy,
            model: ModelName::parse("nlp/bert").expect("valid"),
            version: Version::parse("1.0.0").expect("valid"),
            data_key: DataKey::generate(&rfc3339(T0 + 200)),
            files: BTreeMap::from([(init, files)]),
            init,
            policy_commit: init,
            bert: Registered {
                commit: init,
                digest: String::new(),
                tag_name: String::new(),
                tag: init,
            },
            staging: (String::new(), init),
            staging_spec: placeholder_spec(init),
            approval: (String::new(), init),
            production: (String::new(), init),
            production_spec: placeholder_spec(init),
        };
        // 2. The policy that adds the users.
        let mut files = w.files[&init].clone();
        files.insert(
            POLICY_PATH.into(),
            (w.src.blob(policy_text.as_bytes()), EntryKind::Blob),
        );
        let (admin, alice, bob) = (w.admin.clone(), w.alice.clone(), w.bob.clone());
        let pc = w.commit_files(
            &admin,
            init,
            &files,
            "policy: add-user alice, bob, carol\n\nMvault-Action: policy\nMvault-Policy-Change: add-user alice\n",
            T0 + 100,
        );
        w.advance_main(pc);
        w.policy_commit = pc;
        // 3. alice registers nlp/bert@1.0.0, creating its key ring.
        let draft = w.version_draft(&alice, "1.0.0", T0 + 200);
        let (files, digest) = w.version_files(pc, &draft, &alice, true);
        let msg = register_message(
            "nlp/bert",
            "1.0.0",
            &digest,
            Some(&w.data_key.recipient().to_string()),
        );
        let commit = w.commit_files(&alice, pc, &files, &msg, T0 + 200);
        w.advance_main(commit);
        let tag_name = "nlp/bert@v1.0.0".to_owned();
        let tag = w.tag(
            &alice,
            commit,
            &tag_name,
            &format!("register nlp/bert@1.0.0\n\nMvault-Manifest-Sha256: {digest}\n"),
            T0 + 200,
        );
        w.bert = Registered {
            commit,
            digest: digest.clone(),
            tag_name,
            tag,
        };
        // 4. alice promotes to staging with a ticket.
        let spec = w.promotion(1, Stage::Development, Stage::Staging, None);
        let spec = PromotionSpec {
            ticket: Some("JIRA-1".into()),
            ..spec
        };
        let id = w.promotion_tag(&alice, &spec, T0 + 300);
        w.staging = (spec.name(), id);
        w.staging_spec = spec;
        // 5. bob approves for production; 6. alice promotes to production.
        let (aname, aid) = w.approve(&bob, Stage::Production, T0 + 400);
        w.approval = (aname.clone(), aid);
        let spec = PromotionSpec {
            approvals: vec![(aname, aid.to_string())],
            ..w.promotion(2, Stage::Staging, Stage::Production, Some(id))
        };
        let id = w.promotion_tag(&alice, &spec, T0 + 500);
        w.production = (spec.name(), id);
        w.production_spec = spec;
        w
    }

    /// A context judging at push time (server clock), no pusher.
    pub fn server(&self) -> Context<'_> {
        Context {
            roots: &self.roots,
            clock: Clock::Server {
                now: NOW,
                skew: SKEW,
            },
            pusher: None,
            main: &self.main,
        }
    }

    /// A context replaying history.
    pub fn replay(&self) -> Context<'_> {
        Context {
            roots: &self.roots,
            clock: Clock::Replay {
                now: NOW,
                skew: SKEW,
            },
            pusher: None,
            main: &self.main,
        }
    }

    /// Put `commit` on main as its new tip.
    pub fn advance_main(&mut self, commit: ObjectId) {
        self.main.commits.insert(commit);
        self.main.tip = commit;
        self.main.order.push(commit);
        let c = crate::rules::source::commit(&self.src, commit).expect("a commit of the world");
        let t = crate::model::trailers::trailers(&c.message);
        if crate::model::trailers::trailer(&t, "Mvault-Action") == Some("policy") {
            self.main
                .policy_dates
                .push((self.main.order.len() - 1, c.committer.time));
        }
    }

    /// A commit of `files` on `parent`, signed by `who`, with `who` as
    /// author and committer at `time`.
    pub fn commit_files(
        &mut self,
        who: &TestKey,
        parent: ObjectId,
        files: &Files,
        message: &str,
        time: i64,
    ) -> ObjectId {
        let tree = self.src.tree_of(files);
        let id = self.src.put(
            ObjectKind::Commit,
            commit_bytes(
                tree,
                &[parent],
                &who.at(time),
                &who.at(time),
                message,
                Some(who),
            ),
        );
        self.files.insert(id, files.clone());
        id
    }

    /// A commit of tree `tree` with these parents, signed by `who` at `time`.
    pub fn commit_tree(
        &mut self,
        who: &TestKey,
        parents: &[ObjectId],
        tree: ObjectId,
        message: &str,
        time: i64,
    ) -> ObjectId {
        self.src.put(
            ObjectKind::Commit,
            commit_bytes(
                tree,
                parents,
                &who.at(time),
                &who.at(time),
                message,
                Some(who),
            ),
        )
    }

    /// A signed annotated tag by `who` at `time`, stored but not a ref.
    pub fn tag(
        &mut self,
        who: &TestKey,
        target: ObjectId,
        name: &str,
        message: &str,
        time: i64,
    ) -> ObjectId {
        let id = self.src.put(
            ObjectKind::Tag,
            tag_bytes(target, name, &who.at(time), message, Some(who)),
        );
        self.src.set_ref(&format!("refs/tags/{name}"), id);
        id
    }

    /// A manifest of nlp/bert@`version` by `who`, created at `created`,
    /// with one file encrypted to the world's data key.
    pub fn version_draft(&self, who: &TestKey, version: &str, created: i64) -> VersionDraft {
        let plaintext = format!("weights of {version}").into_bytes();
        let cipher = age_blob(&self.data_key, &plaintext);
        let entry = FileEntry {
            path: "model.bin".into(),
            size: plaintext.len() as u64,
            sha256: Sha256Digest::of(&plaintext),
            blob_size: cipher.len() as u64,
        };
        let manifest = Manifest {
            model: self.model.clone(),
            version: Version::parse(version).expect("valid"),
            parent: None,
            author: who.name.clone(),
            author_key: who.fingerprint(),
            created: rfc3339(created),
            framework: None,
            data_key: self.data_key.recipient().to_string(),
            metadata: BTreeMap::new(),
            metrics: BTreeMap::new(),
            provenance: BTreeMap::new(),
            files: vec![entry.clone()],
        };
        VersionDraft {
            manifest,
            blobs: BTreeMap::from([(entry.blob(), cipher)]),
        }
    }

    /// The files of `parent` plus the draft's version directory (manifest
    /// signed by `signer`), and the key ring when `new_ring`; the manifest
    /// digest.
    pub fn version_files(
        &mut self,
        parent: ObjectId,
        draft: &VersionDraft,
        signer: &TestKey,
        new_ring: bool,
    ) -> (Files, String) {
        let m = &draft.manifest;
        let text = m.to_canonical();
        let sig = signer
            .sign(crypto::MANIFEST_NAMESPACE, text.as_bytes())
            .expect("signs");
        let dir = names::version_dir(&m.model, &m.version);
        let mut files = self.files[&parent].clone();
        let blob = |src: &mut MemorySource, b: &[u8]| (src.blob(b), EntryKind::Blob);
        files.insert(
            format!("{dir}/manifest.toml"),
            blob(&mut self.src, text.as_bytes()),
        );
        files.insert(
            format!("{dir}/manifest.sig"),
            blob(&mut self.src, sig.as_bytes()),
        );
        for (path, bytes) in &draft.blobs {
            files.insert(format!("{dir}/{path}"), blob(&mut self.src, bytes));
        }
        if new_ring {
            let sealed = self.ring_for(&self.policy);
            files.insert(self.model.keyring_path(), blob(&mut self.src, &sealed));
        }
        (files, Sha256Digest::of(text.as_bytes()).to_hex())
    }

    /// nlp/bert's key ring sealed to `policy`'s readers now.
    pub fn ring_for(&self, policy: &Policy) -> Vec<u8> {
        let at = time::OffsetDateTime::from_unix_timestamp(NOW).expect("valid");
        let readers: Vec<PublicKey> = policy
            .readers(&self.model, at)
            .into_iter()
            .map(|(_, k)| k.clone())
            .collect();
        self.ring_to(&readers)
    }

    /// nlp/bert's key ring sealed to `readers`.
    pub fn ring_to(&self, readers: &[PublicKey]) -> Vec<u8> {
        KeyRing {
            generations: vec![self.data_key.clone()],
        }
        .seal(self.model.as_str(), readers)
        .expect("seals")
    }

    /// A promotion of nlp/bert@1.0.0 as mvault would write it next.
    pub fn promotion(
        &self,
        counter: u64,
        from: Stage,
        to: Stage,
        previous: Option<ObjectId>,
    ) -> PromotionSpec {
        PromotionSpec {
            action: PromotionAction::Promote,
            model: self.model.to_string(),
            version: self.version.to_string(),
            digest: self.bert.digest.clone(),
            from,
            to,
            counter,
            previous,
            record: self.bert.commit,
            approvals: Vec::new(),
            ticket: None,
            reason: None,
        }
    }

    /// The promotion tag of `spec`, signed by `who` at `time`, on nlp/bert@1.0.0.
    pub fn promotion_tag(&mut self, who: &TestKey, spec: &PromotionSpec, time: i64) -> ObjectId {
        let target = self.bert.commit;
        self.tag(who, target, &spec.name(), &spec.message(), time)
    }

    /// `who`'s approval of nlp/bert@1.0.0 for `stage`, against the
    /// registering commit; (name, id), the ref set.
    pub fn approve(&mut self, who: &TestKey, stage: Stage, time: i64) -> (String, ObjectId) {
        let name = approval_name(stage, &who.name, &self.model, &self.version);
        let msg = approval_message(
            "nlp/bert",
            "1.0.0",
            stage,
            &who.name,
            &self.bert.digest,
            self.bert.commit,
        );
        let target = self.bert.commit;
        let id = self.tag(who, target, &name, &msg, time);
        (name, id)
    }

    /// The model's stage story made of these promotion tags, in order.
    pub fn history(&self, tags: &[(String, ObjectId)]) -> ModelStages {
        let mut h = ModelStages::default();
        for (name, id) in tags {
            let p = parse_promotion(name, *id, &self.src.bytes(*id)).expect("a promotion");
            h.max_counter = h.max_counter.max(p.counter);
            h.promotions.push(p);
        }
        h
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// The message of an init commit recording `root` as admin and root key.
pub fn init_message(root: &TestKey) -> String {
    format!(
        "init vault\n\nMvault-Action: init\nMvault-Admin: {} {fp}\n{ROOT_KEY_TRAILER}: {fp}\n",
        root.name,
        fp = root.fingerprint()
    )
}

fn placeholder_spec(id: ObjectId) -> PromotionSpec {
    PromotionSpec {
        action: PromotionAction::Promote,
        model: String::new(),
        version: String::new(),
        digest: String::new(),
        from: Stage::Development,
        to: Stage::Staging,
        counter: 0,
        previous: None,
        record: id,
        approvals: Vec::new(),
        ticket: None,
        reason: None,
    }
}
