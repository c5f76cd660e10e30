//! Git objects read into plain values, and written back.
//!
//! The rules judge commits, tags and trees without knowing gix: this module
//! turns raw object bytes (from a repository, or from an in-memory source in
//! tests) into [`CommitObject`], [`TagObject`] and [`TreeItem`], and encodes
//! them again for tests that build objects without a repository. Text fields
//! are kept as bytes where git keeps bytes; signatures are split off the way
//! git splits them for `verify-commit` and `verify-tag`.

use gix::bstr::ByteSlice;
use gix::objs::WriteTo;

pub use gix::objs::tree::EntryKind;
pub use gix::ObjectId;

use super::StoreError;

/// The kind of a git object.
pub type ObjectKind = gix::object::Kind;

/// The all-zero id git uses for "no object" in ref updates.
pub fn null_id() -> ObjectId {
    ObjectId::null(gix::hash::Kind::Sha1)
}

/// Parse a 40-digit hex object id.
pub fn parse_id(hex: &str) -> Option<ObjectId> {
    if hex.len() != 40 {
        return None;
    }
    ObjectId::from_hex(hex.as_bytes()).ok()
}

/// The id git gives `data` stored as an object of `kind`.
pub fn object_id(kind: ObjectKind, data: &[u8]) -> ObjectId {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, data).expect("SHA-1 hashing succeeds")
}

/// A name, an email and a time, as in a commit's author or a tag's tagger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    /// Unix seconds.
    pub time: i64,
}

/// A commit, parsed.
#[derive(Debug, Clone)]
pub struct CommitObject {
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: Person,
    pub committer: Person,
    /// The message, lossily decoded (trailers are ASCII).
    pub message: String,
    /// The armored SSH signature and the bytes it signs, when signed.
    pub signature: Option<(Vec<u8>, Vec<u8>)>,
}

/// An annotated tag, parsed.
#[derive(Debug, Clone)]
pub struct TagObject {
    pub target: ObjectId,
    pub target_kind: ObjectKind,
    /// The name the tag object gives itself.
    pub name: Vec<u8>,
    pub tagger: Option<Person>,
    /// The message without the signature, lossily decoded.
    pub message: String,
    /// The armored SSH signature and the bytes it signs, when signed.
    pub signature: Option<(Vec<u8>, Vec<u8>)>,
}

/// One entry of a tree, as stored: raw name bytes, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeItem {
    pub name: Vec<u8>,
    pub id: ObjectId,
    pub kind: EntryKind,
}

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Git(format!("malformed {what}: {e}"))
}

fn person(s: gix::actor::SignatureRef<'_>) -> Person {
    Person {
        name: s.name.to_str_lossy().into_owned(),
        email: s.email.to_str_lossy().into_owned(),
        time: s.time().map(|t| t.seconds).unwrap_or(i64::MIN),
    }
}

/// Parse a commit object's bytes.
pub fn parse_commit(data: &[u8]) -> Result<CommitObject, StoreError> {
    let c = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
        .map_err(|e| bad("commit", e))?;
    let tree = c.tree();
    let parents = c.parents().collect();
    let author = person(c.author().map_err(|e| bad("commit author", e))?);
    let committer = person(c.committer().map_err(|e| bad("commit committer", e))?);
    let message = c.message.to_str_lossy().into_owned();
    let signature = gix::objs::CommitRefIter::signature(data, gix::hash::Kind::Sha1)
        .map_err(|e| bad("commit signature", e))?
        .map(|(sig, signed)| {
            let payload: gix::bstr::BString = signed.into();
            (sig.to_vec(), payload.to_vec())
        });
    Ok(CommitObject {
        tree,
        parents,
        author,
        committer,
        message,
        signature,
    })
}

/// The bytes a tag signature covers and the armored signature, split the
/// way git splits them: at the first line that opens an SSH signature.
pub fn split_tag_signature(data: &[u8]) -> Option<(&[u8], &[u8])> {
    const MARK: &[u8] = b"-----BEGIN SSH SIGNATURE-----";
    let mut at = 0;
    while at < data.len() {
        if data[at..].starts_with(MARK) {
            return Some((&data[..at], &data[at..]));
        }
        at = data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| at + p + 1)?;
    }
    None
}

/// Parse an annotated tag object's bytes.
pub fn parse_tag(data: &[u8]) -> Result<TagObject, StoreError> {
    let t =
        gix::objs::TagRef::from_bytes(data, gix::hash::Kind::Sha1).map_err(|e| bad("tag", e))?;
    let tagger = t.tagger().map_err(|e| bad("tagger", e))?.map(person);
    let signature = split_tag_signature(data).map(|(p, s)| (s.to_vec(), p.to_vec()));
    let message = match split_tag_signature(t.message) {
        Some((m, _)) => m.to_str_lossy().into_owned(),
        None => t.message.to_str_lossy().into_owned(),
    };
    Ok(TagObject {
        target: t.target(),
        target_kind: t.target_kind,
        name: t.name.to_vec(),
        tagger,
        message,
        signature,
    })
}

/// Parse a tree object's bytes, keeping every entry as stored.
pub fn parse_tree(data: &[u8]) -> Result<Vec<TreeItem>, StoreError> {
    let mut out = Vec::new();
    for e in gix::objs::TreeRefIter::from_bytes(data, gix::hash::Kind::Sha1) {
        let e = e.map_err(|e| bad("tree", e))?;
        out.push(TreeItem {
            name: e.filename.to_vec(),
            id: e.oid.to_owned(),
            kind: e.mode.kind(),
        });
    }
    Ok(out)
}

/// Encode a tree; entries are written in the order given (tests build
/// malformed trees on purpose), names as raw bytes.
pub fn encode_tree(items: &[TreeItem]) -> Vec<u8> {
    let tree = gix::objs::Tree {
        entries: items
            .iter()
            .map(|i| gix::objs::tree::Entry {
                mode: i.kind.into(),
                filename: i.name.clone().into(),
                oid: i.id,
            })
            .collect(),
    };
    let mut out = Vec::new();
    tree.write_to(&mut out).expect("writing to a Vec succeeds");
    out
}

fn signature_of(p: &Person) -> gix::actor::Signature {
    gix::actor::Signature {
        name: p.name.as_str().into(),
        email: p.email.as_str().into(),
        time: gix::date::Time::new(p.time, 0),
    }
}

/// The bytes of an unsigned commit: what a signature over it covers.
pub fn encode_commit_payload(
    tree: ObjectId,
    parents: &[ObjectId],
    author: &Person,
    committer: &Person,
    message: &str,
) -> Vec<u8> {
    let commit = gix::objs::Commit {
        tree,
        parents: parents.iter().copied().collect(),
        author: signature_of(author),
        committer: signature_of(committer),
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    let mut out = Vec::new();
    commit
        .write_to(&mut out)
        .expect("writing to a Vec succeeds");
    out
}

/// The bytes of a commit carrying `signature` (armored) in `gpgsig`.
pub fn encode_signed_commit(
    tree: ObjectId,
    parents: &[ObjectId],
    author: &Person,
    committer: &Person,
    message: &str,
    signature: &str,
) -> Vec<u8> {
    let commit = gix::objs::Commit {
        tree,
        parents: parents.iter().copied().collect(),
        author: signature_of(author),
        committer: signature_of(committer),
        encoding: None,
        message: message.into(),
        extra_headers: vec![("gpgsig".into(), signature.trim_end_matches('\n').into())],
    };
    let mut out = Vec::new();
    commit
        .write_to(&mut out)
        .expect("writing to a Vec succeeds");
    out
}

/// The bytes of an unsigned annotated tag of a commit: what a tag
/// signature covers (the signature is appended to them).
pub fn encode_tag_payload(target: ObjectId, name: &str, tagger: &Person, message: &str) -> Vec<u8> {
    let mut message = message.to_owned();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let tag = gix::objs::Tag {
        target,
        target_kind: ObjectKind::Commit,
        name: name.into(),
        tagger: Some(signature_of(tagger)),
        message: message.into(),
        signature: None,
    };
    let mut out = Vec::new();
    tag.write_to(&mut out).expect("writing to a Vec succeeds");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, time: i64) -> Person {
        Person {
            name: name.into(),
            email: format!("{name}@mvault"),
            time,
        }
    }

    #[test]
    fn commits_round_trip_with_their_signature() {
        let tree = object_id(ObjectKind::Tree, &[]);
        let bytes = encode_signed_commit(
            tree,
            &[],
            &who("alice", 10),
            &who("alice", 11),
            "m\n\nMvault-Action: init\n",
            "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
        );
        let c = parse_commit(&bytes).unwrap();
        assert_eq!(c.tree, tree);
        assert_eq!(c.author, who("alice", 10));
        assert_eq!(c.committer.time, 11);
        let (sig, payload) = c.signature.unwrap();
        assert!(sig.starts_with(b"-----BEGIN SSH SIGNATURE-----"));
        assert_eq!(
            payload,
            encode_commit_payload(
                tree,
                &[],
                &who("alice", 10),
                &who("alice", 11),
                "m\n\nMvault-Action: init\n"
            )
        );
    }

    #[test]
    fn tags_split_at_their_signature() {
        let target = object_id(ObjectKind::Commit, b"x");
        let mut bytes = encode_tag_payload(target, "a@v1.0.0", &who("bob", 5), "msg");
        let payload_len = bytes.len();
        bytes.extend_from_slice(
            b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
        );
        let t = parse_tag(&bytes).unwrap();
        assert_eq!(t.target, target);
        assert_eq!(t.name, b"a@v1.0.0");
        assert_eq!(t.message.trim_end(), "msg");
        let (_, payload) = t.signature.unwrap();
        assert_eq!(payload.len(), payload_len);
    }

    #[test]
    fn trees_keep_duplicate_entries() {
        let blob = object_id(ObjectKind::Blob, b"x");
        let items = vec![
            TreeItem {
                name: b"a".to_vec(),
                id: blob,
                kind: EntryKind::Blob,
            },
            TreeItem {
                name: b"a".to_vec(),
                id: blob,
                kind: EntryKind::Blob,
            },
        ];
        assert_eq!(parse_tree(&encode_tree(&items)).unwrap(), items);
    }
}
