//! The audit trail as events (issue "Audit", acceptance 1): a scripted
//! history — registrations with lineage, approvals, promotions through
//! staging to production, a rollback, a grant and a revoke that rotates the
//! data key — gives exactly the expected `mvault log`, as text and as JSON
//! lines (insta snapshots, with the random parts redacted), and every
//! filter keeps exactly the events it names.
//!
//! Every mvault command of the script runs one minute after the one before
//! (`MVAULT_NOW`), so events have distinct, ordered times and the time
//! filters have something to cut.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `NOW + minutes`, as unix seconds.
pub fn minute(m: u64) -> u64 {
    NOW + 60 * m
}

/// `minute(m)` as RFC 3339 (UTC).
pub fn minute_rfc3339(m: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(minute(m) as i64).expect("valid time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A vault (no remote) with people, and a clock that moves one minute per
/// mvault command.
///
/// - admin: ml_admin on `**` (the harness);
/// - alice: ml_engineer on `nlp/*` (the harness): registers and promotes;
/// - bob: approver on `nlp/*`;
/// - carol: granted viewer on `nlp/*`, then revoked.
pub struct History {
    pub v: Vault,
    pub bob: Key,
    pub carol: Key,
    clock: Cell<u64>,
}

impl std::ops::Deref for History {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.v
    }
}

impl History {
    /// The harness's vault, plus bob the approver.
    pub fn new() -> Self {
        let v = Vault::new();
        let bob = v.keygen("bob");
        let carol = v.keygen("carol");
        let h = History {
            v,
            bob,
            carol,
            clock: Cell::new(0),
        };
        let bob_pub = h.bob.public.to_str().expect("utf-8 path").to_owned();
        h.mv(
            &h.v.admin,
            &["policy", "add-user", "bob", "--key-file", &bob_pub],
        )
        .success();
        h.mv(
            &h.v.admin,
            &[
                "policy", "grant", "bob", "--role", "approver", "--models", "nlp/*",
            ],
        )
        .success();
        h
    }

    /// `mvault --key KEY -C repo ARGS…`, one minute after the last command.
    pub fn mv_command(&self, key: &Key, args: &[&str]) -> Command {
        let tick = self.clock.get() + 1;
        self.clock.set(tick);
        let mut cmd = self.v.mvault_command(&self.v.repo, key, args);
        cmd.env("MVAULT_NOW", minute(tick).to_string());
        cmd
    }

    pub fn mv(&self, key: &Key, args: &[&str]) -> Run {
        self.v.run(self.mv_command(key, args))
    }

    /// `mvault --key KEY -C DIR ARGS…` at the history's clock (after its
    /// last command): an audit runs after what it audits, and a date ahead
    /// of the auditor's clock is a break.
    pub fn mvault(&self, dir: &std::path::Path, key: &Key, args: &[&str]) -> Run {
        let mut cmd = self.v.mvault_command(dir, key, args);
        cmd.env("MVAULT_NOW", minute(self.clock.get()).to_string());
        self.v.run(cmd)
    }

    /// A small sample model, distinct per seed.
    pub fn model(&self, seed: u64) -> PathBuf {
        let dir = self.v.path(&format!("model-{seed}"));
        sample_model(&dir, 4096, seed);
        dir
    }

    /// `mvault add` of sample model `seed` as `key`.
    pub fn add(&self, key: &Key, model: &str, version: &str, seed: u64, extra: &[&str]) {
        let dir = self.model(seed);
        let dir = dir.to_str().expect("utf-8 path");
        let mut args = vec!["add", dir, "--model", model, "--version", version];
        args.extend_from_slice(extra);
        self.mv(key, &args).success();
    }

    pub fn promote(&self, key: &Key, reference: &str, to: &str, extra: &[&str]) {
        let mut args = vec!["promote", reference, "--to", to];
        args.extend_from_slice(extra);
        self.mv(key, &args).success();
    }

    pub fn approve(&self, key: &Key, reference: &str, stage: &str, extra: &[&str]) {
        let mut args = vec!["approve", reference, "--stage", stage];
        args.extend_from_slice(extra);
        self.mv(key, &args).success();
    }

    /// nlp/bert 1.0.0 → staging → (bob approves) production; 1.1.0 (parent
    /// 1.0.0) the same way. Minutes 3 to 10.
    pub fn two_releases(&self) {
        let alice = &self.v.alice;
        self.add(
            alice,
            "nlp/bert",
            "1.0.0",
            1,
            &["--framework", "pytorch", "--metric", "f1=0.91"],
        );
        self.promote(alice, "nlp/bert@1.0.0", "staging", &[]);
        self.approve(
            &self.bob,
            "nlp/bert@1.0.0",
            "production",
            &["--comment", "eval report OK"],
        );
        self.promote(
            alice,
            "nlp/bert@1.0.0",
            "production",
            &["--ticket", "CHG-1"],
        );
        self.add(
            alice,
            "nlp/bert",
            "1.1.0",
            2,
            &["--parent", "1.0.0", "--metric", "f1=0.93"],
        );
        self.promote(alice, "nlp/bert@1.1.0", "staging", &[]);
        self.approve(&self.bob, "nlp/bert@1.1.0", "production", &[]);
        self.promote(
            alice,
            "nlp/bert@1.1.0",
            "production",
            &["--ticket", "CHG-2"],
        );
    }

    /// The whole script of the acceptance test:
    ///
    /// | minute | who | what |
    /// | --- | --- | --- |
    /// | 0 | admin | init, add-user alice, grant alice ml_engineer nlp/* (the harness) |
    /// | 1–2 | admin | add-user bob, grant bob approver nlp/* |
    /// | 3–10 | alice, bob | `two_releases` |
    /// | 11 | admin | rollback nlp/bert to 1.0.0 (ml_admin: the default rollback_role) |
    /// | 12 | admin | register vision/resnet 0.1.0 |
    /// | 13–14 | admin | add-user carol, grant carol viewer nlp/* (re-wraps the key ring) |
    /// | 15 | admin | revoke carol viewer nlp/* (rotates the data key) |
    pub fn scripted() -> Self {
        let h = History::new();
        h.two_releases();
        // A rollback needs production's rollback_role, ml_admin by default
        // (issue 10): the admin rolls back.
        h.mv(
            &h.v.admin,
            &[
                "rollback",
                "nlp/bert",
                "--to",
                "1.0.0",
                "--reason",
                "latency regression",
            ],
        )
        .success();
        h.add(&h.v.admin, "vision/resnet", "0.1.0", 3, &[]);
        let carol_pub = h.carol.public.to_str().expect("utf-8 path").to_owned();
        h.mv(
            &h.v.admin,
            &["policy", "add-user", "carol", "--key-file", &carol_pub],
        )
        .success();
        h.mv(
            &h.v.admin,
            &[
                "policy", "grant", "carol", "--role", "viewer", "--models", "nlp/*",
            ],
        )
        .success();
        h.mv(
            &h.v.admin,
            &[
                "policy", "revoke", "carol", "--role", "viewer", "--models", "nlp/*",
            ],
        )
        .success()
        .mentions(&["rotated the data key of nlp/bert"]);
        h
    }

    /// `mvault log ARGS…` (read-only: does not move the clock).
    pub fn log(&self, args: &[&str]) -> Run {
        let mut all = vec!["log"];
        all.extend_from_slice(args);
        self.v.mvault(&self.v.repo, &self.v.admin, &all)
    }

    /// `mvault log --json ARGS…`, each line parsed.
    pub fn log_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.log(&all).success();
        run.stdout()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log --json line is not JSON: {e}: {l}"))
            })
            .collect()
    }

    pub fn repo(&self) -> &Path {
        &self.v.repo
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces what differs from run to run — object ids (40 hex), SHA-256
/// digests (64 hex) and SSH key fingerprints (`SHA256:` + base64) — with
/// placeholders numbered by first appearance, so that equal values stay
/// visibly equal in the snapshot.
pub fn redact(text: &str) -> String {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut label = |kind: &'static str, value: &str| -> String {
        let key = (kind.to_owned(), value.to_owned());
        let n = match seen.get(&key) {
            Some(n) => *n,
            None => {
                let c = counts.entry(kind).or_insert(0);
                *c += 1;
                seen.insert(key, *c);
                *c
            }
        };
        format!("[{kind}-{n}]")
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let is_word = |b: u8| b.is_ascii_alphanumeric();
    while i < bytes.len() {
        // Key fingerprints: SHA256:<43 base64 chars>.
        if text[i..].starts_with("SHA256:") {
            let start = i + "SHA256:".len();
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/')
                    .count();
            if end - start >= 40 {
                out.push_str(&label("key", &text[start..end]));
                i = end;
                continue;
            }
        }
        // Hex runs standing alone: 64 → digest, 40 → object id.
        if bytes[i].is_ascii_hexdigit() && (i == 0 || !is_word(bytes[i - 1])) {
            let end = i + bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                .count();
            let alone = end == bytes.len() || !is_word(bytes[end]);
            if alone && end - i == 64 {
                out.push_str(&label("sha256", &text[i..end]));
                i = end;
                continue;
            }
            if alone && end - i == 40 {
                out.push_str(&label("oid", &text[i..end]));
                i = end;
                continue;
            }
        }
        let ch = text[i..].chars().next().expect("char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The `(action, model@version or model, stage)` of each event, compactly.
fn summary(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            let what = match (e["model"].as_str(), e["version"].as_str()) {
                (Some(m), Some(v)) => format!("{m}@{v}"),
                (Some(m), None) => m.to_owned(),
                _ => String::new(),
            };
            let stage = e["stage"]
                .as_str()
                .map(|s| format!(" → {s}"))
                .unwrap_or_default();
            format!("{} {} {what}{stage}", s("action"), s("actor"))
                .trim_end()
                .to_owned()
        })
        .collect()
}

/// The whole expected event list of `History::scripted`, in order.
const EXPECTED: &[&str] = &[
    "init admin",
    "add-user admin",
    "grant admin nlp/*",
    "add-user admin",
    "grant admin nlp/*",
    "register alice nlp/bert@1.0.0",
    "promote alice nlp/bert@1.0.0 → staging",
    "approve bob nlp/bert@1.0.0 → production",
    "promote alice nlp/bert@1.0.0 → production",
    "register alice nlp/bert@1.1.0",
    "promote alice nlp/bert@1.1.0 → staging",
    "approve bob nlp/bert@1.1.0 → production",
    "promote alice nlp/bert@1.1.0 → production",
    "rollback admin nlp/bert@1.0.0 → production",
    "deprecate admin nlp/bert@1.1.0 → deprecated",
    "register admin vision/resnet@0.1.0",
    "add-user admin",
    "grant admin nlp/*",
    "key-rewrap admin nlp/bert",
    "revoke admin nlp/*",
    "key-rotation admin nlp/bert",
];

#[test]
fn audit_events_scripted_history_gives_exactly_the_expected_events() {
    let h = History::scripted();

    let events = h.log_json(&[]);
    assert_eq!(
        summary(&events),
        EXPECTED,
        "events of the scripted history:\n{}",
        summary(&events).join("\n")
    );

    // Fields the auditor relies on, checked against the stock tools.
    let commit_100 = h.git_ok(
        h.repo(),
        &["rev-parse", "refs/tags/nlp/bert@v1.0.0^{commit}"],
    );
    let manifest_100 = sha256_hex(&h.git_show_bytes(
        h.repo(),
        &format!("{commit_100}:models/nlp/bert/1.0.0/manifest.toml"),
    ));
    let reg = &events[5];
    assert_eq!(reg["source"], commit_100.as_str(), "{reg}");
    assert_eq!(reg["object"], commit_100.as_str(), "{reg}");
    assert_eq!(reg["manifest_sha256"], manifest_100.as_str(), "{reg}");
    assert_eq!(reg["time"], minute_rfc3339(3).as_str(), "{reg}");
    let alice_fp = h.fingerprint(&h.alice);
    assert_eq!(reg["key"], alice_fp.as_str(), "{reg}");
    let reg_11 = &events[9];
    assert_eq!(reg_11["detail"], "parent 1.0.0", "{reg_11}");

    let prod = &events[8];
    assert_eq!(prod["source"], "nlp/bert#production#2", "{prod}");
    assert_eq!(prod["from_stage"], "staging", "{prod}");
    assert_eq!(prod["ticket"], "CHG-1", "{prod}");
    assert_eq!(prod["manifest_sha256"], manifest_100.as_str(), "{prod}");
    assert_eq!(
        prod["object"],
        h.git_ok(h.repo(), &["rev-parse", "refs/tags/nlp/bert#production#2"])
            .as_str(),
        "{prod}"
    );
    let rollback = &events[13];
    assert_eq!(rollback["reason"], "latency regression", "{rollback}");
    let approve = &events[7];
    assert_eq!(
        approve["source"], "mvault-approval/production/bob/nlp/bert/1.0.0",
        "{approve}"
    );
    assert_eq!(approve["detail"], "eval report OK", "{approve}");
    // Times follow the script's clock, one minute per command.
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "events are in time order");
    assert_eq!(times.last().copied(), Some(minute_rfc3339(15).as_str()));

    insta::assert_snapshot!("log_json", redact(&h.log(&["--json"]).success().stdout()));
    // Trailing blanks (the padded actor column of an event with no model)
    // are trimmed, so that an editor cannot break the snapshot file.
    let text: Vec<String> = redact(&h.log(&[]).success().stdout())
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect();
    insta::assert_snapshot!("log_text", text.join("\n"));
}

#[test]
fn audit_events_filters_keep_exactly_what_they_name() {
    let h = History::scripted();
    let all = h.log_json(&[]);
    let keep = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        summary(&all.iter().filter(|e| pred(e)).cloned().collect::<Vec<_>>())
    };

    // --model GLOB: a model name, or a glob over names.
    let bert = summary(&h.log_json(&["--model", "nlp/bert"]));
    assert_eq!(bert, keep(&|e| e["model"] == "nlp/bert"));
    assert!(bert.iter().any(|e| e.starts_with("rollback")), "{bert:?}");
    assert!(bert.iter().all(|e| e.contains("nlp/bert")), "{bert:?}");
    let vision = summary(&h.log_json(&["--model", "vision/*"]));
    assert_eq!(vision, ["register admin vision/resnet@0.1.0"]);
    let none = h.log_json(&["--model", "audio/*"]);
    assert!(none.is_empty(), "{none:?}");
    // `*` does not cross a '/'; `**` does.
    assert!(h.log_json(&["--model", "*"]).is_empty());
    assert_eq!(
        h.log_json(&["--model", "**"]).len(),
        all.iter().filter(|e| e["model"].is_string()).count()
    );

    // --version.
    let v110 = summary(&h.log_json(&["--model", "nlp/bert", "--version", "1.1.0"]));
    assert_eq!(
        v110,
        [
            "register alice nlp/bert@1.1.0",
            "promote alice nlp/bert@1.1.0 → staging",
            "approve bob nlp/bert@1.1.0 → production",
            "promote alice nlp/bert@1.1.0 → production",
            "deprecate admin nlp/bert@1.1.0 → deprecated",
        ]
    );

    // --actor.
    let bob = summary(&h.log_json(&["--actor", "bob"]));
    assert_eq!(
        bob,
        [
            "approve bob nlp/bert@1.0.0 → production",
            "approve bob nlp/bert@1.1.0 → production",
        ]
    );
    assert_eq!(
        summary(&h.log_json(&["--actor", "alice"])),
        keep(&|e| e["actor"] == "alice")
    );
    assert!(h.log_json(&["--actor", "mallory"]).is_empty());

    // --action, repeatable.
    assert_eq!(
        summary(&h.log_json(&["--action", "promote"])),
        keep(&|e| e["action"] == "promote")
    );
    assert_eq!(
        summary(&h.log_json(&["--action", "rollback", "--action", "key-rotation"])),
        [
            "rollback admin nlp/bert@1.0.0 → production",
            "key-rotation admin nlp/bert",
        ]
    );
    assert_eq!(
        summary(&h.log_json(&["--action", "grant", "--actor", "admin"])),
        [
            "grant admin nlp/*",
            "grant admin nlp/*",
            "grant admin nlp/*"
        ]
    );

    // --since / --until: inclusive, in any of the accepted forms.
    let between = |lo: u64, hi: u64| {
        keep(&|e| {
            let t = e["time"].as_str().unwrap();
            t >= minute_rfc3339(lo).as_str() && t <= minute_rfc3339(hi).as_str()
        })
    };
    let since = summary(&h.log_json(&["--since", &minute_rfc3339(11)]));
    assert_eq!(since, between(11, 99));
    assert_eq!(
        since.first().map(String::as_str),
        Some("rollback admin nlp/bert@1.0.0 → production")
    );
    let until = summary(&h.log_json(&["--until", &minute(2).to_string()]));
    assert_eq!(until, between(0, 2));
    assert_eq!(until.len(), 5, "{until:?}");
    let window =
        summary(&h.log_json(&["--since", &minute_rfc3339(4), "--until", &minute_rfc3339(6)]));
    assert_eq!(
        window,
        [
            "promote alice nlp/bert@1.0.0 → staging",
            "approve bob nlp/bert@1.0.0 → production",
            "promote alice nlp/bert@1.0.0 → production",
        ]
    );
    // A date is midnight UTC: the whole script is on NOW's day.
    assert_eq!(h.log_json(&["--since", "2026-11-22"]).len(), all.len());
    assert!(h.log_json(&["--since", "2026-11-23"]).is_empty());
    h.log(&["--since", "yesterday"]).mvault_error();

    // --limit N: the last N of what the other filters keep.
    let last3 = summary(&h.log_json(&["--limit", "3"]));
    assert_eq!(last3, summary(&all[all.len() - 3..]));
    let last_promo = summary(&h.log_json(&["--action", "promote", "--limit", "1"]));
    assert_eq!(last_promo, ["promote alice nlp/bert@1.1.0 → production"]);
    assert!(h.log_json(&["--limit", "0"]).is_empty());

    // Text and JSON list the same events.
    let text = h.log(&["--model", "nlp/bert"]).success().stdout();
    assert_eq!(text.lines().count(), bert.len(), "{text}");
}
