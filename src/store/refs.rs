//! Compare-and-swap ref updates under one advisory lock per repository.
//! An update that moves `main` writes loose refs with `main` last (cost
//! independent of how many refs the repository has); any other update of
//! several refs moves them together in one rewrite of `packed-refs`.

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;

use super::{git_err, ObjectId, Store, StoreError};

impl Store {
    /// Update refs together, each only if it still has its expected value
    /// (`None`: must not exist).
    ///
    /// With `main` among them, every other ref is written first and `main`
    /// last, each as a loose ref: a killed mvault leaves `main` where it was
    /// (the others are then refs of a version or record main never got,
    /// which the next attempt replaces) or everything moved. Without `main`,
    /// all move or none does.
    pub fn update_refs(&self, edits: &[RefUpdate]) -> Result<(), StoreError> {
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
        let moves_main = edits.iter().any(|e| e.name == super::MAIN_REF);
        let ordered: Vec<&RefUpdate> = edits
            .iter()
            .filter(|e| e.name != super::MAIN_REF)
            .chain(edits.iter().filter(|e| e.name == super::MAIN_REF))
            .collect();
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
            // Without main: the refs land in a single rename of
            // packed-refs, so a killed mvault leaves all of them moved or
            // none. With main: loose refs, renamed in order, main last (a
            // rewrite of packed-refs costs as much as the repository has
            // refs, 140,000 writes at 20,000 refs); deletions still go
            // through packed-refs.
            use gix::refs::file::transaction::PackedRefs;
            let mode = if moves_main {
                PackedRefs::DeletionsOnly
            } else {
                PackedRefs::DeletionsAndNonSymbolicUpdatesRemoveLooseSourceReference(Box::new(
                    &self.repo.objects,
                ))
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

/// One ref to move in [`Store::update_refs`].
#[derive(Debug, Clone)]
pub struct RefUpdate {
    pub name: String,
    /// `None`: the ref must not exist.
    pub expected: Option<ObjectId>,
    /// `None`: delete the ref.
    pub new: Option<ObjectId>,
    pub reason: String,
}
