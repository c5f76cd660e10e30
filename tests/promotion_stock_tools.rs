//! Promotions read by stock tools (issue "Promotion", acceptance 4): every
//! promotion and approval tag verifies with `git verify-tag` against the
//! `allowed_signers` file `mvault signers` prints, and GTO (Git Tag Ops,
//! from PyPI), run in a clone, shows the same models, latest versions and
//! stage heads as `mvault status --json` — the tag names follow GTO's
//! conventions precisely so that it can.
//!
//! GTO is required, never skipped: `.ci/run` installs it with pip.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::promotion_world::*;

/// A history with every kind of tag: nlp/bert 1.0.0 and 1.1.0 through
/// production (approved by bob, then by bob and dave), 1.2.0 in staging,
/// a rollback to 1.0.0 (1.1.0 deprecated); nlp/gpt 0.1.0 in staging and
/// 0.2.0 registered only; nlp/tiny registered only.
fn history() -> Release {
    let r = Release::in_production();
    r.register("1.1.0", 2);
    r.promote(&r.carol, "1.1.0", "staging").success();
    r.approve(&r.bob, "1.1.0", "production").success();
    r.approve(&r.dave, "1.1.0", "production").success();
    r.promote(&r.carol, "1.1.0", "production").success();
    r.register("1.2.0", 3);
    r.promote(&r.carol, "1.2.0", "staging").success();
    r.let_engineers_roll_back();
    r.mv(
        &r.carol,
        &[
            "rollback",
            MODEL,
            "--to",
            "1.0.0",
            "--reason",
            "regression in 1.1.0",
        ],
    )
    .success();
    for (model, version, seed) in [
        ("nlp/gpt", "0.1.0", 4),
        ("nlp/gpt", "0.2.0", 5),
        ("nlp/tiny", "0.0.1", 6),
    ] {
        let dir = r.model(seed);
        let dir = dir.to_str().expect("utf-8 path");
        r.mv(
            &r.alice,
            &["add", dir, "--model", model, "--version", version],
        )
        .success();
    }
    r.mv(&r.carol, &["promote", "nlp/gpt@0.1.0", "--to", "staging"])
        .success();
    r
}

/// Every promotion and approval tag on the server verifies with stock
/// `git verify-tag`, signed by the person mvault says.
#[test]
fn stock_git_verifies_every_promotion_and_approval_tag() {
    let r = history();
    let clone = r.git_clone(&r.bare, "verifier");
    let signers = r.signers_file(&clone, &r.bob);
    let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let names = r.git_ok(&clone, &["tag", "-l"]);
    let (mut promotions, mut approvals) = (0, 0);
    for name in names.lines() {
        let signer = if name.starts_with("mvault-approval/") {
            approvals += 1;
            // mvault-approval/<stage>/<user>/<model>/<version>
            name.split('/').nth(2).expect("approval names its user")
        } else if name.contains('#') {
            promotions += 1;
            "carol"
        } else {
            continue;
        };
        let run = r
            .git(&clone, &["-c", &config, "verify-tag", name])
            .success();
        assert!(
            run.stderr()
                .contains(&format!("Good \"git\" signature for {signer}")),
            "{name} is not signed by {signer}: {}",
            run.stderr()
        );
    }
    assert_eq!((promotions, approvals), (8, 3), "tags:\n{names}");
}

/// `gto show --json` in a fresh stock clone: the same models, latest
/// versions and, for each stage, the version most recently assigned to
/// it, as `mvault status --json`.
#[test]
fn gto_shows_what_mvault_status_shows() {
    let r = history();
    let clone = r.git_clone(&r.bare, "registry");
    // GTO first: mvault may set options in the clone it runs in.
    let gto = gto_show(&r, &clone);
    let mvault = mvault_status(&r, &clone);
    assert_eq!(
        gto, mvault,
        "gto show (left) and mvault status (right) differ"
    );
    assert_eq!(mvault.len(), 3, "{mvault:?}");
}

/// GTO reads the clone people work in too: alice's, where `mvault add`
/// wrote the versions (and its repository settings, docs/formats.md).
#[test]
fn gto_reads_the_clone_versions_were_added_in() {
    let r = history();
    let clone = r.dir(&r.alice);
    r.status(&r.alice);
    let gto = gto_show(&r, &clone);
    assert_eq!(gto, mvault_status(&r, &clone));
}

/// What a registry shows for one model: latest version and stage → version.
pub type Registry = BTreeMap<String, (String, BTreeMap<String, String>)>;

/// `gto show --json` in `dir`, as `Registry` (GTO's leading `v` removed).
pub fn gto_show(r: &Release, dir: &Path) -> Registry {
    let mut probe = r.command("gto");
    probe.arg("--version");
    match probe.output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`gto` is not on PATH: install gto (python3 -m pip install gto); .ci/run does this on CI"
        ),
        Err(e) => panic!("cannot run gto: {e}"),
        Ok(_) => {}
    }
    let mut cmd = r.command("gto");
    cmd.args(["show", "--json"]).current_dir(dir);
    let run = r.run(cmd).success();
    let json: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("gto show --json is not JSON ({e}):\n{}", run.stdout()));
    let strip = |v: &Value| {
        let s = v
            .as_str()
            .unwrap_or_else(|| panic!("gto show --json: {v} is not a version:\n{json:#}"));
        s.strip_prefix('v').unwrap_or(s).to_owned()
    };
    json.as_object()
        .unwrap_or_else(|| panic!("gto show --json is not an object: {json}"))
        .iter()
        .map(|(name, a)| {
            let stages = a["stage"]
                .as_object()
                // GTO lists every stage of the registry, `null` where the
                // model has no version in it.
                .map(|m| {
                    m.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(s, v)| (s.clone(), strip(v)))
                        .collect()
                })
                .unwrap_or_default();
            (name.clone(), (strip(&a["version"]), stages))
        })
        .collect()
}

/// `mvault status --json` in `dir`, as `Registry`: for each stage, the
/// version of the newest promotion into it (`heads[].last_promotion`),
/// which is what GTO shows. What the stage serves (`stages`, what
/// `model#stage` names) is that same version, or none when the version has
/// moved on since (docs/tags.md, "GTO"); that is checked here too.
pub fn mvault_status(r: &Release, dir: &Path) -> Registry {
    let run = r.mvault(dir, &r.bob, &["status", "--json"]).success();
    run.stdout()
        .lines()
        .map(|line| {
            let m: Value = serde_json::from_str(line).expect("status --json lines are JSON");
            let heads = m["heads"].as_array().expect("heads is an array");
            let mut last = BTreeMap::new();
            for h in heads {
                let stage = h["stage"].as_str().expect("stage").to_owned();
                let serving = &m["stages"][&stage];
                match h["last_promotion"]["version"].as_str() {
                    Some(v) => {
                        assert!(
                            serving.is_null() || serving == v,
                            "{stage} serves {serving} but its newest promotion is of {v}: {m}"
                        );
                        last.insert(stage, v.to_owned());
                    }
                    None => assert!(
                        serving.is_null(),
                        "{stage} serves {serving} unpromoted: {m}"
                    ),
                }
            }
            (
                m["model"].as_str().expect("model").to_owned(),
                (m["latest"].as_str().expect("latest").to_owned(), last),
            )
        })
        .collect()
}

/// `gto show --json` and `mvault status --json` agree in `dir`.
#[track_caller]
pub fn assert_gto_agrees(r: &Release, dir: &Path) {
    // GTO first: mvault may set options in the clone it runs in.
    let gto = gto_show(r, dir);
    let mvault = mvault_status(r, dir);
    assert_eq!(
        gto, mvault,
        "gto show (left) and mvault status (right) differ"
    );
}
