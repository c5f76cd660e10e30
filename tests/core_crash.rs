//! `kill -9` at any moment leaves a consistent repository and output
//! directory: no ref names a partial version, a re-run succeeds, and a killed
//! pull leaves no partial file under a final name.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

/// Kill points: from `FIRST_KILL`, each run lives `KILL_GROWTH` times longer
/// than the one before, until one finishes by itself. Whatever the speed of
/// the machine, the kills land all along a run, early ones included.
const FIRST_KILL: Duration = Duration::from_millis(15);
const KILL_GROWTH: f64 = 1.7;
const MAX_RUNS: usize = 14;
/// Fewer interrupted runs than this prove too little.
const MIN_INTERRUPTED: usize = 4;

fn kill_delays() -> impl Iterator<Item = Duration> {
    (0..MAX_RUNS).map(|i| FIRST_KILL.mul_f64(KILL_GROWTH.powi(i as i32)))
}

fn large_model(dir: &Path, seed: u64) {
    write_file(&dir.join("config.json"), b"{\"layers\": 48}\n");
    write_pseudo_random(&dir.join("a-first.bin"), 3 * MIB, seed);
    write_pseudo_random(&dir.join("weights/big.bin"), 96 * MIB + 7, seed + 1);
    write_pseudo_random(&dir.join("z-last.bin"), 5 * MIB, seed + 2);
}

/// Starts `cmd` and SIGKILLs it after `delay`, unless it is already done.
/// Returns whether it finished by itself.
fn run_and_kill(mut cmd: std::process::Command, delay: Duration) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Child::kill sends SIGKILL on Unix: no cleanup code of mvault runs.
    let _ = child.kill();
    let status = child.wait().expect("wait");
    status.success()
}

/// Every ref names only complete versions: in the tree of each ref (peeled
/// to its commit), each version directory has its manifest, its signature
/// and every blob the manifest lists, and those objects exist.
#[track_caller]
fn assert_no_ref_names_a_partial_version(env: &TestEnv, repo: &Path) {
    let refs = env.git_ok(repo, &["for-each-ref", "--format=%(refname)"]);
    for reference in refs.lines() {
        // Payload refs name trees; they are checked with their version.
        if reference.starts_with("refs/mvault/data/") {
            continue;
        }
        let commit = env.git_ok(repo, &["rev-parse", &format!("{reference}^{{commit}}")]);
        let listing = env.git_ok(repo, &["ls-tree", "-r", "--name-only", &commit, "models/"]);
        let paths: BTreeSet<&str> = listing.lines().collect();
        let version_dirs: BTreeSet<String> = paths
            .iter()
            .map(|p| {
                let cut = p
                    .find("/blobs/")
                    .or_else(|| p.rfind("/manifest."))
                    .unwrap_or(p.len());
                p[..cut].to_owned()
            })
            .collect();
        for dir in &version_dirs {
            for part in ["manifest.toml", "manifest.sig"] {
                assert!(
                    paths.contains(format!("{dir}/{part}").as_str()),
                    "{reference} names {dir} without its {part}"
                );
            }
            let text = env.git_show_bytes(repo, &format!("{commit}:{dir}/manifest.toml"));
            let manifest = Manifest::parse(&String::from_utf8(text).unwrap());
            // The payload: the version's ref exists beside the record and
            // holds every part the manifest names, with its size.
            let version = dir.rsplit('/').next().expect("version");
            let model = dir
                .trim_start_matches("models/")
                .trim_end_matches(&format!("/{version}"));
            let payload_ref = format!("refs/mvault/data/{model}/{version}");
            assert_eq!(
                env.git_ok(repo, &["rev-parse", &payload_ref]),
                manifest.payload(),
                "{reference} names {dir}, whose payload ref is missing or elsewhere"
            );
            for file in &manifest.files {
                for part in &file.parts {
                    let rev = format!("{payload_ref}:{}", part.sha256);
                    let size = env.git_ok(repo, &["cat-file", "-s", &rev]);
                    assert_eq!(size, part.blob_size.to_string(), "{reference}: {rev}");
                }
            }
        }
        if let Some(tag) = reference.strip_prefix("refs/tags/") {
            if let Some((model, version)) = tag.split_once("@v") {
                assert!(
                    version_dirs.contains(&format!("models/{model}/{version}")),
                    "{reference} points at a commit without the version"
                );
            }
        }
    }
}

#[test]
fn add_killed_at_any_moment_leaves_no_partial_version_and_can_be_rerun() {
    let vault = Vault::new();
    // Each version gets new content: a file already stored under the model's
    // data key is reused, not encrypted again, and would make add instant.
    let model_for = |version: &str| -> std::path::PathBuf {
        let dir = vault.path(&format!("model-{version}"));
        if !dir.exists() {
            let digest = sha256_hex(version.as_bytes());
            large_model(&dir, u64::from_str_radix(&digest[..16], 16).unwrap());
        }
        dir
    };
    let add_command = |version: &str| {
        vault.mvault_command(
            &vault.repo,
            &vault.alice,
            &[
                "add",
                model_for(version).to_str().unwrap(),
                "--model",
                "nlp/crash",
                "--version",
                version,
            ],
        )
    };
    let mut interrupted = 0;
    for (i, delay) in kill_delays().enumerate() {
        let version = format!("1.0.{i}");
        let tag = format!("refs/tags/nlp/crash@v{version}");
        let finished = run_and_kill(add_command(&version), delay);
        interrupted += usize::from(!finished);

        assert_no_ref_names_a_partial_version(&vault, &vault.repo);
        vault
            .git(&vault.repo, &["fsck", "--no-progress", "--no-dangling"])
            .success();
        let on_main = vault
            .git(
                &vault.repo,
                &[
                    "cat-file",
                    "-e",
                    &format!("main:models/nlp/crash/{version}/manifest.toml"),
                ],
            )
            .status
            .success();
        let tagged = vault
            .git(&vault.repo, &["rev-parse", "-q", "--verify", &tag])
            .status
            .success();
        assert_eq!(
            on_main, tagged,
            "after kill at {delay:?}: version on main = {on_main}, tag = {tagged}; \
             a registration must leave both or neither"
        );
        if finished {
            assert!(on_main, "add exited 0 but {version} is not on main");
        }
        if !on_main {
            // Whatever the kill left behind (locks, temp files) must not
            // stand in the way.
            vault.run(add_command(&version)).success();
        }
        vault
            .mvault(
                &vault.repo,
                &vault.alice,
                &["verify", &format!("nlp/crash@{version}")],
            )
            .success();
        if i > 0 {
            std::fs::remove_dir_all(model_for(&version)).expect("remove model dir");
        }
        if finished {
            break;
        }
    }
    assert!(
        interrupted >= MIN_INTERRUPTED,
        "only {interrupted} runs were killed before they finished"
    );

    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/crash@1.0.0", &out)
        .success();
    assert_same_tree(&model_for("1.0.0"), &out);
}

#[test]
fn pull_killed_midway_leaves_no_partial_file_under_a_final_name() {
    let vault = Vault::new();
    let model = vault.path("model");
    large_model(&model, 41);
    vault.add(&model, "nlp/crash", "1.0.0", &[]).success();
    let want = digests(&model);

    let pull_command = |out: &Path| {
        vault.mvault_command(
            &vault.repo,
            &vault.alice,
            &["pull", "nlp/crash@1.0.0", "-o", out.to_str().unwrap()],
        )
    };
    let mut interrupted = 0;
    for (i, delay) in kill_delays().enumerate() {
        let out = vault.path(&format!("out-{i}"));
        let finished = run_and_kill(pull_command(&out), delay);
        interrupted += usize::from(!finished);
        for rel in list_files(&out) {
            if let Some(digest) = want.get(&rel) {
                assert_eq!(
                    &sha256_file(&out.join(&rel)),
                    digest,
                    "pull killed after {delay:?} left a partial {rel}"
                );
            }
        }
        if finished {
            assert_same_tree(&model, &out);
            break;
        }
        std::fs::remove_dir_all(&out).ok();
    }
    assert!(
        interrupted >= MIN_INTERRUPTED,
        "only {interrupted} pulls were killed before they finished"
    );

    // And a new pull after all that succeeds.
    let out = vault.path("out-again");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/crash@1.0.0", &out)
        .success();
    assert_same_tree(&model, &out);
}
