//! `--json` everywhere: every command that prints data accepts `--json`,
//! and what it prints is one JSON value per line that validates against
//! that command's schema in docs/json/v1.schema.json (`$defs/cmd_<name>`).
//! Each schema is used by this test, and each command that is not in the
//! short list of commands that print no data must offer `--json`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Commands that print no data of their own: protocol drivers run by git,
/// the demo (a narrated walk-through), generated shell completions and man
/// pages, and command groups.
const NO_DATA: &[&str] = &[
    "demo",
    "completions",
    "man",
    "policy",
    "policy rule",
    "policy rule env",
    "policy alias",
    "hook",
    "audit",
    "access",
    "hook pre-receive",
    "hook pre-push",
    "hook pack-objects",
    "hook post-receive",
    "hook server-key",
    "hook log",
];

/// Schemas of commands that need a setup this test does not make; the
/// test named beside each checks them with [`Schemas::check`].
const CHECKED_ELSEWHERE: &[&str] = &[
    // witness::witness_two_cosign_clients_count_them_and_a_rewritten_log_is_caught
    "cmd_witness",
];

pub(crate) struct Schemas {
    doc: Value,
    used: std::cell::RefCell<BTreeSet<String>>,
}

impl Schemas {
    pub(crate) fn load() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json/v1.schema.json");
        let text = std::fs::read_to_string(&path).expect("docs/json/v1.schema.json");
        Schemas {
            doc: serde_json::from_str(&text).expect("the schema file is JSON"),
            used: Default::default(),
        }
    }

    /// Every line of `stdout` is one value of `cmd_<name>`; at least one.
    #[track_caller]
    pub(crate) fn check(&self, name: &str, stdout: &str) -> Vec<Value> {
        let def = format!("cmd_{name}");
        assert!(
            self.doc["$defs"].get(&def).is_some(),
            "docs/json/v1.schema.json has no $defs/{def}"
        );
        self.used.borrow_mut().insert(def.clone());
        let mut root = self.doc.clone();
        root["$ref"] = Value::String(format!("#/$defs/{def}"));
        let validator = jsonschema::validator_for(&root).expect("the schema compiles");
        let values: Vec<Value> = stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{name}: a line is not JSON ({e}): {l}"))
            })
            .collect();
        assert!(!values.is_empty(), "{name} --json printed nothing");
        for v in &values {
            let errors: Vec<String> = validator
                .iter_errors(v)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{name} --json does not match $defs/{def}:\n{}\n{v}",
                errors.join("\n")
            );
        }
        values
    }
}

/// `mvault --key KEY -C DIR ARGS… --json` with the pusher `user` known to
/// the server, as sshd would set it; must succeed.
#[track_caller]
fn json(vault: &Vault, dir: &Path, key: &Key, user: &str, args: &[&str]) -> String {
    let mut cmd = vault.mvault_command(dir, key, args);
    cmd.arg("--json").env("MVAULT_USER", user);
    vault.run(cmd).success().stdout()
}

#[test]
fn every_command_that_prints_data_prints_json_that_matches_its_documented_schema() {
    let s = Schemas::load();
    let v = Vault::new();
    let repo = v.repo.clone();
    let (admin, alice) = (&v.admin, &v.alice);

    // A second vault, made with --json.
    let other = v.path("other");
    let mut init = v.command(env!("CARGO_BIN_EXE_mvault"));
    init.arg("--key")
        .arg(&admin.private)
        .arg("init")
        .arg(&other)
        .arg("--admin-key")
        .arg(&admin.public)
        .arg("--json");
    s.check("init", &v.run(init).success().stdout());

    // Policy changes, as JSON.
    let rev = v.keygen("rev");
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy",
                "add-user",
                "rev",
                "--key-file",
                path_str(&rev.public),
            ],
        ),
    );
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy", "grant", "rev", "--role", "approver", "--models", "**",
            ],
        ),
    );
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &["policy", "alias", "add", "rev", "rev@corp.example"],
        ),
    );

    // A hooked server that the vault pushes to, so that pushes are logged.
    let (server, _) = v.hooked_server("srv", &[]);
    v.git_ok(&repo, &["remote", "add", "origin", path_str(&server)]);
    v.git_ok(&repo, &["fetch", "-q", "origin"]);
    v.git_ok(&repo, &["branch", "-q", "-u", "origin/main", "main"]);
    let second = v.bare_remote("srv2");
    v.git_ok(&repo, &["push", "-q", path_str(&second), "main"]);
    let mut install = v.command(env!("CARGO_BIN_EXE_mvault"));
    install
        .args(["hook", "install"])
        .arg(&second)
        .arg("--root-key")
        .arg(&admin.public)
        .arg("--server-key")
        .arg(v.path("srv2.key"))
        .arg("--json");
    s.check("hook_install", &v.run(install).success().stdout());
    let mut heartbeat = v.command(env!("CARGO_BIN_EXE_mvault"));
    heartbeat
        .args(["hook", "heartbeat"])
        .arg(&second)
        .arg("--json");
    s.check("hook_heartbeat", &v.run(heartbeat).success().stdout());

    // Versions.
    let model = v.path("model");
    write_file(&model.join("config.json"), b"{\"hidden\": 8}\n");
    write_pseudo_random(&model.join("weights.bin"), 100_000, 1);
    let added = s.check(
        "add",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &[
                "add",
                path_str(&model),
                "--model",
                "nlp/bert",
                "--version",
                "1.0.0",
            ],
        ),
    );
    assert!(added[0]["pushed"].is_object(), "add pushed: {}", added[0]);
    write_pseudo_random(&model.join("weights.bin"), 100_000, 2);
    let schema = v.path("input.schema.json");
    write_file(
        &schema,
        br#"{"type":"object","properties":{"text":{"type":"string"}}}"#,
    );
    let reqs = v.path("requirements.txt");
    write_file(&reqs, b"mvault-test-absent==1.0\n");
    s.check(
        "add",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &[
                "add",
                path_str(&model),
                "--model",
                "nlp/bert",
                "--version",
                "1.1.0",
                "--parent",
                "1.0.0",
                "--model-type",
                "nlp",
                "--description",
                "A test model.",
                "--label",
                "prod",
                "--training-dataset",
                "s3://bucket/train",
                "--input-schema",
                path_str(&schema),
                "--deps",
                path_str(&reqs),
            ],
        ),
    );
    assert_eq!(
        s.check("list", &json(&v, &repo, alice, "alice", &["list"]))
            .len(),
        2
    );
    s.check(
        "list",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &["list", "--type", "nlp", "--label", "prod"],
        ),
    );
    s.check(
        "show",
        &json(&v, &repo, alice, "alice", &["show", "nlp/bert@1.0.0"]),
    );
    let shown = s.check(
        "show",
        &json(&v, &repo, alice, "alice", &["show", "nlp/bert@1.1.0"]),
    );
    assert_eq!(shown[0]["card"]["model_type"], "nlp", "{}", shown[0]);
    // verify --deps against the tests' python3, which lacks the pinned
    // package: exit 4, and the JSON names the difference.
    let python = require_program("python3", "python3");
    let mut deps = v.mvault_command(
        &repo,
        alice,
        &[
            "verify",
            "nlp/bert@1.1.0",
            "--deps",
            "--python",
            path_str(&python),
            "--json",
        ],
    );
    deps.env("MVAULT_USER", "alice");
    let run = v.run(deps);
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    let checked = s.check("verify_deps", &run.stdout());
    assert_eq!(checked[0]["problems"][0]["problem"], "missing");
    let out = v.path("out");
    s.check(
        "pull",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &["pull", "nlp/bert@1.0.0", "-o", path_str(&out)],
        ),
    );
    s.check(
        "verify",
        &json(&v, &repo, alice, "alice", &["verify", "nlp/bert@1.0.0"]),
    );
    s.check(
        "verify_dir",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &["verify", "nlp/bert@1.0.0", "--dir", path_str(&out)],
        ),
    );

    // Releases.
    for version in ["1.0.0", "1.1.0"] {
        let r = format!("nlp/bert@{version}");
        s.check(
            "promote",
            &json(
                &v,
                &repo,
                alice,
                "alice",
                &["promote", &r, "--to", "staging"],
            ),
        );
        s.check(
            "approve",
            &json(
                &v,
                &repo,
                &rev,
                "rev",
                &["approve", &r, "--stage", "production"],
            ),
        );
        s.check(
            "promote",
            &json(
                &v,
                &repo,
                alice,
                "alice",
                &["promote", &r, "--to", "production"],
            ),
        );
    }
    s.check(
        "rollback",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "rollback",
                "nlp/bert",
                "--to",
                "1.0.0",
                "--reason",
                "regression",
            ],
        ),
    );
    json(
        &v,
        &repo,
        admin,
        "admin",
        &["promote", "nlp/bert@1.1.0", "--to", "archived"],
    );
    // Lifecycle settings (policy rule), and what is due under them.
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy",
                "rule",
                "model",
                "set",
                "--models",
                "nlp/*",
                "--retention-days",
                "0",
                "--purge-role",
                "ml_engineer",
                "--max-versions",
                "10",
                "--allowed-environments",
                "prod-eu,staging",
            ],
        ),
    );
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy",
                "rule",
                "stage",
                "set",
                "--stage",
                "production",
                "--models",
                "**",
                "--rollback-role",
                "ml_admin",
            ],
        ),
    );
    let due = s.check(
        "retention",
        &json(&v, &repo, alice, "alice", &["retention"]),
    );
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["version"], "1.1.0", "{due:?}");
    s.check(
        "purge",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &["purge", "nlp/bert@1.1.0", "--reason", "retention"],
        ),
    );

    // Environments and deployments: 1.0.0 is back in production.
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy",
                "rule",
                "env",
                "add",
                "prod-eu",
                "--stage",
                "production",
                "--models",
                "nlp/**",
            ],
        ),
    );
    s.check(
        "deploy",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &[
                "deploy",
                "nlp/bert#production",
                "--env",
                "prod-eu",
                "--reason",
                "CHG-1",
            ],
        ),
    );
    let deployed = s.check(
        "deployments",
        &json(&v, &repo, alice, "alice", &["deployments"]),
    );
    assert_eq!(deployed[0]["current"][0]["version"], "1.0.0");

    // Views of the record.
    s.check("status", &json(&v, &repo, alice, "alice", &["status"]));
    s.check("sync", &json(&v, &repo, alice, "alice", &["sync"]));
    s.check(
        "lineage",
        &json(&v, &repo, alice, "alice", &["lineage", "nlp/bert"]),
    );
    let events = s.check("log", &json(&v, &repo, alice, "alice", &["log"]));
    assert!(events.len() >= 10, "{} events", events.len());
    s.check(
        "audit_verify",
        &json(&v, &repo, alice, "alice", &["audit", "verify"]),
    );
    s.check(
        "report",
        &json(&v, &repo, alice, "alice", &["report", "nlp/bert"]),
    );
    s.check("signers", &json(&v, &repo, alice, "alice", &["signers"]));
    s.check(
        "policy_show",
        &json(&v, &repo, alice, "alice", &["policy", "show"]),
    );
    let policy = v.path("policy.toml");
    write_file(
        &policy,
        v.git_ok(&repo, &["show", "main:.mvault/policy.toml"])
            .as_bytes(),
    );
    s.check(
        "policy_check",
        &json(
            &v,
            &repo,
            alice,
            "alice",
            &["policy", "check", path_str(&policy)],
        ),
    );
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy", "revoke", "rev", "--role", "approver", "--models", "**",
            ],
        ),
    );
    s.check(
        "policy_change",
        &json(&v, &repo, admin, "admin", &["policy", "remove-user", "rev"]),
    );

    // The server side.
    let decisions = s.check(
        "log_server",
        &json(&v, &server, admin, "admin", &["log", "--server"]),
    );
    assert!(decisions.len() >= 10, "{} decisions", decisions.len());
    let review = s.check(
        "access_review",
        &json(&v, &server, admin, "admin", &["access", "review"]),
    );
    assert_eq!(review[0]["server_log"], true, "{review:?}");
    let checks = s.check(
        "hook_check",
        &json(&v, &server, admin, "admin", &["hook", "check", "."]),
    );
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{checks:?}");
    let flushed = s.check(
        "hook_flush",
        &json(&v, &server, admin, "admin", &["hook", "flush", "."]),
    );
    assert_eq!(flushed[0]["queued"], 0, "{flushed:?}");
    s.check(
        "hook_log_verify",
        &json(&v, &server, admin, "admin", &["hook", "log", "verify"]),
    );
    s.check(
        "hook_log_rotate",
        &json(&v, &server, admin, "admin", &["hook", "log", "rotate"]),
    );
    s.check(
        "hook_install_pre_push",
        &json(&v, &repo, alice, "alice", &["hook", "install-pre-push"]),
    );

    // Last: a pinned server key asks every later fetch for a timestamp.
    let server_key = v.path("srv2.key.pub");
    s.check(
        "policy_change",
        &json(
            &v,
            &repo,
            admin,
            "admin",
            &[
                "policy",
                "server-key",
                "--key-file",
                path_str(&server_key),
                "--no-push",
            ],
        ),
    );

    // Every documented schema was exercised here.
    let documented: BTreeSet<String> = s.doc["$defs"]
        .as_object()
        .expect("$defs")
        .keys()
        .filter(|k| k.starts_with("cmd_") && !CHECKED_ELSEWHERE.contains(&k.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        *s.used.borrow(),
        documented,
        "documented schemas this test does not check, or the reverse"
    );
}

/// The subcommands `mvault … --help` lists (without `help`).
fn subcommands(v: &Vault, path: &[&str]) -> Vec<String> {
    let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(path).arg("--help");
    let help = v.run(cmd).success().stdout();
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if !name.is_empty() && name != "help" && line.starts_with(&format!("  {name}")) {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_command_but_the_few_that_print_no_data_accepts_json() {
    let v = Vault::new();
    let mut missing = Vec::new();
    let mut stack: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let subs = subcommands(&v, &args);
        for sub in &subs {
            let mut p = path.clone();
            p.push(sub.clone());
            stack.push(p);
        }
        if path.is_empty() {
            continue;
        }
        seen += 1;
        let name = path.join(" ");
        if NO_DATA.contains(&name.as_str()) {
            continue;
        }
        let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
        cmd.args(&args).arg("--help");
        if !v.run(cmd).success().stdout().contains("--json") {
            missing.push(name);
        }
    }
    assert!(seen > 20, "only {seen} commands found in --help");
    assert!(missing.is_empty(), "commands without --json: {missing:?}");
}
