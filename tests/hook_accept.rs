//! What the hook lets through: the everyday pushes of admins and
//! developers land on the server, main and tags together.

use crate::common::*;
use crate::hook_server::*;

/// An admin's policy change, pushed by mvault with stock git, lands.
#[test]
fn admin_policy_change_lands() {
    let s = Server::new();
    let carol = s.keygen("carol");
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "add-user",
            "carol",
            "--key-file",
            &pub_arg(&carol),
        ],
    )
    .success()
    .mentions(&["pushed to origin"]);
    assert_eq!(
        s.server_rev("refs/heads/main"),
        s.git_ok(&s.work, &["rev-parse", "main"])
    );
    let policy = s.git_show_bytes(&s.bare, "main:.mvault/policy.toml");
    assert!(contains_bytes(&policy, b"[users.carol]"));
    let log = s.decisions();
    assert!(log.last().is_some_and(
        |l| l.contains("\"decision\":\"accept\"") && l.contains("\"pusher\":\"admin\"")
    ));
}

/// A developer's registration lands: main moves to the registering commit
/// and the registration tag arrives with it.
#[test]
fn developer_registration_lands_with_its_tag() {
    let s = Server::with_version();
    let main = s.git_ok(&s.work, &["rev-parse", "main"]);
    assert_eq!(s.server_rev("refs/heads/main"), main);
    assert_eq!(
        s.server_rev("refs/tags/nlp/bert@v1.0.0"),
        s.git_ok(&s.work, &["rev-parse", "refs/tags/nlp/bert@v1.0.0"])
    );
    assert_eq!(s.server_rev("refs/tags/nlp/bert@v1.0.0^{commit}"), main);
    assert_eq!(
        s.git_ok(&s.bare, &["cat-file", "-t", "refs/tags/nlp/bert@v1.0.0"]),
        "tag"
    );
    s.git_ok(
        &s.bare,
        &["cat-file", "-e", "main:models/nlp/bert/1.0.0/manifest.toml"],
    );
}

/// A second version that shares weights with the first lands and reuses
/// the first version's blob object on the server.
#[test]
fn second_version_reusing_blobs_lands() {
    let s = Server::with_version();
    let v2 = s.path("model-v2");
    std::fs::create_dir_all(&v2).expect("mkdir");
    let v1 = s.model(1);
    for f in ["model.safetensors", "tokenizer/vocab.txt"] {
        write_file(&v2.join(f), &std::fs::read(v1.join(f)).expect("read"));
    }
    write_file(&v2.join("config.json"), b"{\"hidden\": 1024}\n");
    s.add(
        &s.work,
        &s.alice,
        Some("alice"),
        &v2,
        "1.1.0",
        &["--parent", "1.0.0"],
    )
    .success()
    .mentions(&["2 reused", "pushed to origin"]);
    assert_eq!(
        s.server_rev("refs/heads/main"),
        s.git_ok(&s.work, &["rev-parse", "main"])
    );
    s.server_rev("refs/tags/nlp/bert@v1.1.0");
    let m = s.manifest_at(&s.bare, "main", "1.1.0");
    let weights = m
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .expect("weights in manifest");
    let sha = &weights.parts[0].sha256;
    let blob = |version: &str| s.server_rev(&format!("refs/mvault/data/nlp/bert/{version}:{sha}"));
    assert_eq!(
        blob("1.0.0"),
        blob("1.1.0"),
        "the weights were stored twice"
    );
}

/// A registration made with `--no-push` lands when pushed with stock git
/// (main and the tag in one push).
#[test]
fn registration_pushed_with_stock_git_lands() {
    let s = Server::with_version();
    let clone = s.prepared("alice-clone", &s.alice, "2.0.0");
    s.push(
        &clone,
        Some("alice"),
        &["origin", "main", "refs/tags/nlp/bert@v2.0.0"],
    )
    .success()
    .mentions(&[
        "mvault: accepted refs/heads/main",
        "mvault: accepted refs/tags/nlp/bert@v2.0.0",
    ]);
    assert_eq!(
        s.server_rev("refs/heads/main"),
        s.git_ok(&clone, &["rev-parse", "main"])
    );
    assert_eq!(
        s.server_rev("refs/tags/nlp/bert@v2.0.0"),
        s.git_ok(&clone, &["rev-parse", "refs/tags/nlp/bert@v2.0.0"])
    );
}
