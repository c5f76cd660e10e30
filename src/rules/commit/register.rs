//! A registering commit: exactly one new version directory (and the
//! model's new key ring), a valid canonical manifest by the signer, and
//! blobs that are the ciphertext the manifest promises.
//!
//! Checks, in order:
//! 7. the signer and the pusher may register the model (roles, expiry);
//! 8. the change is confined to one new version directory: nothing
//!    published is touched, no model hides inside a version;
//! 9. the manifest is valid, canonical, for this version, authored and
//!    signed by the commit's signer (author and `author_key`), and not
//!    dated before the parent commit nor from the future;
//! 10. the version directory holds the record only (manifest and
//!    signature); the payload tree it names is judged with its ref;
//! 11. the key ring, judged at the commit's own date (the readers at the
//!     time of the write): a new ring is wrapped to exactly the policy's
//!     readers; an existing ring that still holds someone who is no longer
//!     a reader (expired since) must be replaced in this commit by one
//!     wrapped to exactly the readers (a rotation: the first write after an
//!     expiry cuts the former reader off going forward), and a ring whose
//!     holders are all readers may not be replaced.
//! 12. the model stays within its `max_versions`: the versions in the
//!     parent's tree that the model's promotion tags (as of the parent)
//!     do not place in archived, plus this one.

use std::collections::BTreeMap;

use super::{Action, CommitUnderJudgement, CommitVerdict};
use crate::crypto;
use crate::model::manifest::{Manifest, Sha256Digest};
use crate::model::names;
use crate::model::policy::Ability;
use crate::model::trailers::trailer;
use crate::rules::context::rfc3339;
use crate::rules::source;
use crate::rules::{escape, ring, Accepted, Refusal, Rule};
use crate::store::objects::{EntryKind, ObjectId};

const HINT: &str = "register versions with mvault add; a version directory is written once";

pub(super) fn judge_register(j: &CommitUnderJudgement<'_>) -> Result<CommitVerdict, Refusal> {
    let bad = |rule: Rule, detail: String| j.refuse(rule, detail, HINT);
    let internal = |e: crate::store::StoreError| Refusal::internal(j.subject, e);
    let (model, version) = j.model_and_version(HINT)?;
    let at = j.at();
    // 7. Roles: the signer and the pusher may register this model.
    let Some(user) = j.signer.user.as_deref() else {
        return Err(bad(
            Rule::Role,
            "root keys change the policy; versions are registered by users".into(),
        ));
    };
    let role = |who: &str, what: &str, rule: Rule| {
        j.policy
            .check(who, &model, Ability::Register, at)
            .map_err(|d| {
                Refusal::new(
                    rule,
                    j.subject,
                    format!("{what} {d}"),
                    format!(
                        "ask an ml_admin to grant {} on {model}, or have someone who holds it push",
                        d.need
                    ),
                )
            })
    };
    role(user, "signer", Rule::Role)?;
    if let Some(pusher) = j.ctx.pusher {
        role(pusher, "pusher", Rule::PusherRole)?;
    }
    // 8. One new version directory and the model's new key ring, nothing else.
    let dir = names::version_dir(&model, &version);
    let ring_path = model.keyring_path();
    let mut new_ring = None;
    let mut files: BTreeMap<String, (ObjectId, EntryKind)> = BTreeMap::new();
    for c in j.changes {
        // A replaced ring is a rotation, judged in step 11.
        if c.path == ring_path && c.old.is_some() {
            if let Some(newe) = c.new.filter(|(_, k)| *k == EntryKind::Blob) {
                new_ring = Some(newe.0);
                continue;
            }
        }
        if c.old.is_some() {
            return Err(bad(
                Rule::ExistingContentChanged,
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
                Rule::FileOutsideVersion,
                format!("{} is outside {dir}", escape(&c.path)),
            ));
        }
    }
    let parent_tree = j.parent.tree;
    if source::entry(j.src, parent_tree, &dir)
        .map_err(internal)?
        .is_some()
    {
        return Err(bad(Rule::VersionExists, format!("{dir} already exists")));
    }
    // No directory above the new version is itself a version: a model
    // nested inside a published version would change that version's tree.
    let mut above = String::from("models");
    for seg in model.as_str().split('/') {
        above = format!("{above}/{seg}");
        if source::entry(j.src, parent_tree, &format!("{above}/manifest.toml"))
            .map_err(internal)?
            .is_some()
        {
            return Err(bad(
                Rule::NameCollision,
                format!("{above} is a version directory; no model can live inside it"),
            ));
        }
    }
    // 9. The manifest.
    let manifest_entry = files
        .get("manifest.toml")
        .copied()
        .ok_or_else(|| bad(Rule::BadManifest, format!("{dir}/manifest.toml is missing")))?;
    let sig_entry = files
        .get("manifest.sig")
        .copied()
        .ok_or_else(|| bad(Rule::BadManifest, format!("{dir}/manifest.sig is missing")))?;
    for (name, (_, kind)) in &files {
        if *kind != EntryKind::Blob {
            return Err(bad(
                Rule::BadFileMode,
                format!(
                    "{dir}/{} is a {kind:?}; only regular files are stored",
                    escape(name)
                ),
            ));
        }
    }
    let (_, mbytes) = j.src.object(manifest_entry.0).map_err(internal)?;
    let text = String::from_utf8(mbytes)
        .map_err(|_| bad(Rule::BadManifest, "manifest.toml is not UTF-8".into()))?;
    let m = Manifest::parse(&text)
        .map_err(|e| bad(Rule::BadManifest, format!("{dir}/manifest.toml: {e}")))?;
    if m.model != model || m.version != version {
        return Err(bad(
            Rule::BadManifest,
            format!(
                "manifest names {}@{}, directory is {model}@{version}",
                m.model, m.version
            ),
        ));
    }
    let signer_fp = crypto::fingerprint(&j.signer.key);
    if m.author != user || m.author_key != signer_fp {
        return Err(bad(
            Rule::Misattributed,
            format!(
                "manifest author is {} ({}), commit signer is {user} ({signer_fp})",
                escape(&m.author),
                escape(&m.author_key)
            ),
        ));
    }
    if let Some(p) = &m.parent {
        let parent_manifest = format!("{}/manifest.toml", names::version_dir(&model, p));
        if source::entry(j.src, parent_tree, &parent_manifest)
            .map_err(internal)?
            .is_none()
        {
            return Err(bad(
                Rule::BadManifest,
                format!("parent version {model}@{p} does not exist"),
            ));
        }
    }
    let created =
        time::OffsetDateTime::parse(&m.created, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                bad(
                    Rule::BadManifest,
                    format!("created {:?}: {e}", escape(&m.created)),
                )
            })?
            .unix_timestamp();
    if created < j.parent.committer.time {
        return Err(bad(
            Rule::ManifestDatedBeforeParent,
            format!(
                "the manifest says it was created {}, before the parent commit ({})",
                escape(&m.created),
                rfc3339(j.parent.committer.time)
            ),
        ));
    }
    j.ctx
        .clock
        .check_not_future(j.subject, &format!("{dir}/manifest.toml"), created)?;
    let digest = Sha256Digest::of(text.as_bytes());
    if trailer(j.trailers, "Mvault-Manifest-Sha256") != Some(digest.to_hex().as_str()) {
        return Err(bad(
            Rule::BadTrailers,
            format!("Mvault-Manifest-Sha256 does not match manifest.toml ({digest})"),
        ));
    }
    let (_, sig) = j.src.object(sig_entry.0).map_err(internal)?;
    let mkey = crypto::verify_signature(&sig, crypto::MANIFEST_NAMESPACE, text.as_bytes())
        .map_err(|e| {
            bad(
                Rule::BadManifestSignature,
                format!("{dir}/manifest.sig: {e}"),
            )
        })?;
    if mkey.key_data() != j.signer.key.key_data() {
        return Err(bad(
            Rule::BadManifestSignature,
            format!(
                "manifest signed by {}, commit by {signer_fp}",
                crypto::fingerprint(&mkey)
            ),
        ));
    }
    // 10. The record only: the payload lives under its own ref (judged
    // with the push, see `rules::payload::judge_payload`).
    for name in files.keys() {
        if name != "manifest.toml" && name != "manifest.sig" {
            return Err(bad(
                Rule::UnexpectedFile,
                format!(
                    "{dir}/{} is not part of the record; a version's payload lives under {}",
                    escape(name),
                    names::payload_ref(&model, &version)
                ),
            ));
        }
    }
    let payload: ObjectId = m.payload.parse().map_err(|_| {
        bad(
            Rule::BadManifest,
            format!("payload {:?} is not a tree id", m.payload),
        )
    })?;
    // 11. Key ring, at the write's own date: the commit's date, which
    // rule 15 keeps from going back before the parent and rule 16 from
    // running ahead of the server's clock. Day-granular expiry then reads
    // the same in the client that wrote the ring, the hook and a replay.
    let written = time::OffsetDateTime::from_unix_timestamp(j.commit.committer.time)
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
    let on = written.date();
    let old_ring = source::read_path(j.src, parent_tree, &ring_path).map_err(internal)?;
    let ring_refusal = |e: String| bad(Rule::KeyRingRecipients, format!("{ring_path}: {e}"));
    match (old_ring, new_ring) {
        (None, Some(ring_id)) => {
            let (_, sealed) = j.src.object(ring_id).map_err(internal)?;
            ring::check_ring(&sealed, j.policy, &model, written).map_err(ring_refusal)?;
        }
        (None, None) => {
            return Err(bad(
                Rule::MissingKeyRing,
                format!("{ring_path} does not exist"),
            ));
        }
        (Some(old), Some(ring_id)) => {
            let former =
                ring::former_readers(&old, j.policy, &model, written).map_err(ring_refusal)?;
            if former.is_empty() {
                return Err(bad(
                    Rule::ExistingContentChanged,
                    format!(
                        "{ring_path} is replaced, but every key it is wrapped to is still a reader on {on}; a version rotates the data key only to cut off a former reader"
                    ),
                ));
            }
            let (_, sealed) = j.src.object(ring_id).map_err(internal)?;
            ring::check_ring(&sealed, j.policy, &model, written).map_err(ring_refusal)?;
        }
        (Some(old), None) => {
            let former =
                ring::former_readers(&old, j.policy, &model, written).map_err(ring_refusal)?;
            if !former.is_empty() {
                return Err(j.refuse(
                    Rule::KeyRingRecipients,
                    format!(
                        "{ring_path} is still wrapped to {}, no longer reader(s) on {on}; the first version after a reader's expiry rotates the data key",
                        escape(&former.join(", "))
                    ),
                    "build the version again with mvault add: it rotates the data key",
                ));
            }
        }
    }
    // 12. The version cap, read only for a model that has one: the
    // model's directory in the parent tree and its promotion tags.
    if let Some(cap) = j.policy.settings_for(&model).max_versions {
        let versions = source::versions_in(j.src, parent_tree, &model).map_err(internal)?;
        let stages = j
            .ctx
            .main
            .stages_at(&model, j.commit.parents[0])
            .map_err(internal)?;
        let counted = stages.counted_versions(versions.iter().map(String::as_str));
        if counted >= cap as usize {
            return Err(j.refuse(
                Rule::TooManyVersions,
                format!(
                    "{model} has {counted} version(s) not archived and max_versions = {cap}; {model}@{version} would make {}",
                    counted + 1
                ),
                &format!("archive a version of {model} first (mvault promote {model}@VERSION --to archived, from deprecated), or ask an ml_admin to raise max_versions"),
            ));
        }
    }
    Ok(CommitVerdict {
        accepted: Accepted {
            subject: j.subject.to_owned(),
            what: format!("register {model}@{version} by {user} ({})", j.id),
        },
        action: Action::Register {
            model: model.to_string(),
            version: version.to_string(),
            payload,
            manifest: Box::new(m),
        },
        signer: Some(user.to_owned()),
    })
}
