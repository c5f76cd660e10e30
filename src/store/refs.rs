//! Compare-and-swap ref updates under one advisory lock per repository.
//! [`Store::update_refs`] writes loose refs, one after the other in an
//! order that leaves a killed mvault harmless (bookkeeping refs, then
//! tags, `main` last): its cost does not depend on how many refs the
//! repository has. [`Store::update_refs_together`] moves several refs in
//! one rewrite of `packed-refs`, all or none, at a cost that grows with
//! the refs: only for updates whose halves must never be seen apart.

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;

use super::{git_err, ObjectId, Store, StoreError};

/// How an update reaches the ref store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Landing {
    /// Loose refs, renamed one after the other in the order given.
    InOrder,
    /// One rename of `packed-refs`: all or none.
    Together,
}

impl Store {
    /// Update refs, each only if it still has its expected value (`None`:
    /// must not exist), as loose refs written one after the other: every
    /// deletion first (tags before other refs), then every other ref
    /// outside `refs/tags/` (payload, seq and scratch refs), then the tags,
    /// `main` last. A killed mvault leaves `main` where it was or
    /// everything moved; what it can leave behind is a payload ref or tag
    /// of a version main never got, or a seq ref of a promotion whose tag
    /// was not written, which the next attempt replaces (it expects them).
    /// The cost does not depend on how many refs the repository has.
    pub fn update_refs(&self, edits: &[RefUpdate]) -> Result<(), StoreError> {
        self.land(edits, Landing::InOrder)
    }

    /// Update refs all together or not at all, in one rewrite of
    /// `packed-refs` (its cost grows with the repository's refs): for
    /// updates whose parts must never be seen apart, the two promotions of
    /// a rollback.
    pub fn update_refs_together(&self, edits: &[RefUpdate]) -> Result<(), StoreError> {
        self.land(edits, Landing::Together)
    }

    fn land(&self, edits: &[RefUpdate], landing: Landing) -> Result<(), StoreError> {
        // One mvault writer at a time per repository (an advisory lock the
        // kernel drops when the process dies). Holding it, a ref's `.lock`
        // file can only be left by an mvault that was killed mid-update:
        // remove it, so a killed `add` can simply be run again.
        let guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.git_dir().join("mvault.lock"))?;
        guard.lock()?;
        let names = edits
            .iter()
            .map(|e| e.name.as_str())
            .chain(std::iter::once("packed-refs"));
        for name in names {
            let stale = self.git_dir().join(format!("{name}.lock"));
            if stale.is_file() {
                let _ = std::fs::remove_file(&stale);
            }
        }
        // Deletions first, tags before bookkeeping refs (the reverse of
        // their creation); then creations and moves, bookkeeping refs
        // before tags; main last.
        let rank = |e: &&RefUpdate| {
            let tag = e.name.starts_with("refs/tags/");
            match (e.name == super::MAIN_REF, e.new.is_some(), tag) {
                (true, _, _) => 4,
                (false, false, true) => 0,
                (false, false, false) => 1,
                (false, true, false) => 2,
                (false, true, true) => 3,
            }
        };
        let mut ordered: Vec<&RefUpdate> = edits.iter().collect();
        ordered.sort_by_key(rank);
        let ref_edits = ordered
            .iter()
            .map(|e| {
                let expected = match e.expected {
                    None => PreviousValue::MustNotExist,
                    Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
                };
                Ok(RefEdit {
                    change: match e.new {
                        Some(new) => Change::Update {
                            log: LogChange {
                                mode: RefLog::AndReference,
                                force_create_reflog: false,
                                message: format!("mvault: {}", e.reason).into(),
                            },
                            expected,
                            new: Target::Object(new),
                        },
                        None => Change::Delete {
                            expected,
                            log: RefLog::AndReference,
                        },
                    },
                    name: e.name.as_str().try_into().map_err(git_err)?,
                    deref: false,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        {
            // The reflog needs a committer: the repository's own identity
            // when it has one, else mvault's, so a bare environment works.
            let configured = self
                .repo
                .committer()
                .and_then(|c| c.ok())
                .map(|c| c.to_owned());
            let fallback = gix::actor::Signature {
                name: "mvault".into(),
                email: "mvault@localhost".into(),
                time: gix::date::Time::now_local_or_utc(),
            };
            let who = configured.and_then(|c| c.ok()).unwrap_or(fallback);
            let mut buf = gix::date::parse::TimeBuf::default();
            // In order: loose refs, deletions through packed-refs only for
            // refs it holds. Together: one rename of packed-refs (a rewrite
            // of every line: 140,000 writes at 20,000 refs).
            use gix::refs::file::transaction::PackedRefs;
            let mode = match landing {
                Landing::InOrder => PackedRefs::DeletionsOnly,
                Landing::Together => {
                    PackedRefs::DeletionsAndNonSymbolicUpdatesRemoveLooseSourceReference(Box::new(
                        &self.repo.objects,
                    ))
                }
            };
            self.repo
                .refs
                .transaction()
                .packed_refs(mode)
                .prepare(
                    ref_edits,
                    gix::lock::acquire::Fail::Immediately,
                    gix::lock::acquire::Fail::Immediately,
                )
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    t.commit(Some(who.to_ref(&mut buf)))
                        .map_err(|e| e.to_string())
                })
        }
        .map_err(|err| {
            let first = &edits[0];
            let msg = err.to_string();
            if msg.contains("must not exist")
                || msg.contains("expected")
                || msg.contains("did not match")
                || msg.contains("exist")
            {
                StoreError::RefRace {
                    name: first.name.clone(),
                    expected: first
                        .expected
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "absent".into()),
                }
            } else {
                git_err(msg)
            }
        })?;
        Ok(())
    }
}

/// One ref to move in [`Store::update_refs`] or [`Store::update_refs_together`].
#[derive(Debug, Clone)]
pub struct RefUpdate {
    pub name: String,
    /// `None`: the ref must not exist.
    pub expected: Option<ObjectId>,
    /// `None`: delete the ref.
    pub new: Option<ObjectId>,
    pub reason: String,
}
