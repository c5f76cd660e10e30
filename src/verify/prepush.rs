//! The pre-push driver: the server's judgement, run by the client before
//! anything is sent, against the server's `main` as this clone last
//! fetched it and the root keys the vault records in its first commit.

use time::OffsetDateTime;

use super::receive::{judge_push, PushContext};
use crate::model::updates::Update;
use crate::rules::commit::recorded_roots;
use crate::rules::{escape, source, Clock, RootKeys};
use crate::store::objects::parse_id;
use crate::store::{ObjectId, Store, MAIN_REF};

/// The root keys a vault records: the `Mvault-Root-Key` trailers of the
/// first commit of `tip`'s history.
pub fn vault_roots(store: &Store, tip: ObjectId) -> Result<RootKeys, String> {
    let first = store.root_commit(tip).map_err(|e| e.to_string())?;
    let c = source::commit(store, first).map_err(|e| e.to_string())?;
    Ok(RootKeys::from_fingerprints(recorded_roots(&c)))
}

/// Run the check on git's pre-push lines (`<local ref> <local sha>
/// <remote ref> <remote sha>`). Returns the lines to print and whether the
/// push may go ahead.
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
    let main_before = match updates.iter().find(|u| u.refname == MAIN_REF) {
        Some(u) => u.old_id(),
        None => store
            .ref_target(&format!("refs/remotes/{remote}/main"))
            .ok()
            .flatten(),
    };
    // The roots the vault records, from the history being pushed.
    let tip = updates
        .iter()
        .find(|u| u.refname == MAIN_REF)
        .and_then(|u| parse_id(&u.new))
        .or(main_before);
    let roots = match tip.map(|t| vault_roots(store, t)) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return (
                false,
                vec![format!(
                    "mvault: pre-push: cannot read the vault's root keys: {e}"
                )],
            )
        }
        None => RootKeys::default(),
    };
    let pc = PushContext {
        roots: &roots,
        // Keys expire by this machine's clock; whether a date runs ahead of
        // the server's clock is the server's to say (a client's clock
        // behind the server's is no reason to refuse an honest push).
        clock: Clock::Server {
            now: now.unix_timestamp(),
            skew: i64::MAX / 4,
        },
        pusher: pusher.as_deref(),
        main_before,
    };
    match judge_push(store, &pc, &updates) {
        Ok(acc) => (
            true,
            acc.iter()
                .map(|a| {
                    format!(
                        "mvault: pre-push ok {}: {}",
                        escape(&a.subject),
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
