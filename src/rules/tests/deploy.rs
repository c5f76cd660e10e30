//! Deploy commits (`rules::commit::deploy`): one record
//! `deployments/<env>/<model>/_deployment.toml` added or replaced, signed by
//! a holder of the environment's deploy role, for a version in the stage
//! the environment requires, naming the version's manifest, the signer and
//! the commit's own date.

use super::{accepted, refused, register_version};
use crate::model::deployment::{deploy_message, DeploymentRecord};
use crate::model::manifest::Sha256Digest;
use crate::model::names::{ModelName, Stage, Version};
use crate::model::policy::{EnvironmentName, POLICY_PATH};
use crate::rules::commit::{judge_commit, Action, CommitVerdict};
use crate::rules::context::Context;
use crate::rules::fixtures::{git_sig, policy_text, rfc3339, Files, TestKey, World, T0};
use crate::rules::{Refusal, Rule};
use crate::store::objects::{encode_signed_commit, EntryKind, ObjectId, ObjectKind};

/// When the deploy commits of these tests are made.
const AT: i64 = T0 + 800;
const RECORD: &str = "deployments/prod-eu/nlp/bert/_deployment.toml";

/// The environments the world's policy gains before each test.
const ENVIRONMENTS: &str = r#"
[[environments]]
name = "prod-eu"
stage = "production"
models = "nlp/**"

[[environments]]
name = "vision-prod"
stage = "production"
models = "vision/**"

[[environments]]
name = "qa"
stage = "staging"
models = "**"
deploy_role = "approver"
"#;

fn judge(w: &World, id: ObjectId) -> Result<CommitVerdict, Refusal> {
    judge_commit(&w.src, &w.server(), "refs/heads/main", id)
}

/// The world, with an admin's policy commit that adds the environments.
fn world() -> World {
    let mut w = World::new();
    let text = format!(
        "{}{ENVIRONMENTS}",
        policy_text(&w.admin, &w.alice, &w.bob, &w.carol)
    );
    let mut files = w.files[&w.main.tip].clone();
    files.insert(
        POLICY_PATH.into(),
        (w.src.blob(text.as_bytes()), EntryKind::Blob),
    );
    let (admin, tip) = (w.admin.clone(), w.main.tip);
    let pc = w.commit_files(
        &admin,
        tip,
        &files,
        "policy: env add prod-eu\n\nMvault-Action: policy\nMvault-Policy-Change: env add prod-eu\n",
        AT - 100,
    );
    accepted(judge(&w, pc));
    w.advance_main(pc);
    w
}

/// The record `ops::deploy` writes for nlp/bert@1.0.0 to `env` by `by`.
fn record(w: &World, env: &str, by: &str) -> DeploymentRecord {
    DeploymentRecord {
        environment: EnvironmentName::parse(env).unwrap(),
        model: w.model.clone(),
        version: w.version.clone(),
        stage: Stage::Production,
        manifest_sha256: w.bert.digest.clone(),
        deployed_by: by.to_owned(),
        time: rfc3339(AT),
        reason: Some("CHG-1".into()),
    }
}

/// main's tip files with `text` at `path`.
fn with_file(w: &mut World, path: &str, text: &[u8]) -> Files {
    let mut files = w.files[&w.main.tip].clone();
    files.insert(path.to_owned(), (w.src.blob(text), EntryKind::Blob));
    files
}

/// A deploy commit of `r` at its own path, by `who`, with `message`.
fn deploy_with(w: &mut World, who: &TestKey, r: &DeploymentRecord, message: &str) -> ObjectId {
    let files = with_file(w, &r.path(), r.to_canonical().as_bytes());
    let tip = w.main.tip;
    w.commit_files(who, tip, &files, message, AT)
}

/// A deployment of nlp/bert@1.0.0 to `env` by `who`, its record bent by `bend`.
fn deploy_bent(
    w: &mut World,
    who: &TestKey,
    env: &str,
    bend: impl FnOnce(&mut DeploymentRecord),
) -> ObjectId {
    let mut r = record(w, env, &who.name);
    bend(&mut r);
    let message = deploy_message(&r);
    deploy_with(w, who, &r, &message)
}

#[test]
fn a_deployment_by_the_deploy_role_of_a_version_in_the_stage_is_accepted() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
    let v = accepted(judge(&w, id));
    assert_eq!(
        v.action,
        Action::Deploy {
            model: "nlp/bert".into(),
            version: "1.0.0".into(),
            environment: "prod-eu".into(),
        }
    );
    assert!(v
        .accepted
        .what
        .contains("deploy nlp/bert@1.0.0 to prod-eu by alice"));
    accepted(judge_commit(&w.src, &w.replay(), "main", id));
    let ctx = Context {
        pusher: Some("alice"),
        ..w.server()
    };
    accepted(judge_commit(&w.src, &ctx, "main", id));
    // The admin may deploy anywhere; without a reason too.
    let admin = w.admin.clone();
    let id = deploy_bent(&mut w, &admin, "prod-eu", |r| r.reason = None);
    accepted(judge(&w, id));
}

#[test]
fn a_new_deployment_replaces_the_record_of_the_last() {
    let mut w = world();
    let alice = w.alice.clone();
    let first = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
    accepted(judge(&w, first));
    w.advance_main(first);
    // Another version, in production too, replaces it.
    let v2 = register_version(&mut w, &alice, "1.1.0", AT + 10);
    let two = Version::parse("1.1.0").unwrap();
    let model = w.model.clone();
    w.main.set_stage(&model, &two, Stage::Production);
    let r = DeploymentRecord {
        version: two,
        manifest_sha256: v2.digest.clone(),
        time: rfc3339(AT + 20),
        ..record(&w, "prod-eu", "alice")
    };
    let files = with_file(&mut w, RECORD, r.to_canonical().as_bytes());
    let tip = w.main.tip;
    let id = w.commit_files(&alice, tip, &files, &deploy_message(&r), AT + 20);
    accepted(judge(&w, id));
}

#[test]
fn a_deployment_to_an_environment_the_policy_does_not_define_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = deploy_bent(&mut w, &alice, "prod-us", |_| {});
    let e = refused(judge(&w, id), Rule::UnknownEnvironment);
    assert!(e.line().contains("prod-us"), "{}", e.line());
    assert!(e.hint.contains("did you mean prod-eu"), "{}", e.hint);
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::UnknownEnvironment,
    );
    // The world before the environments were added knows none at all.
    let mut w = World::new();
    let id = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
    refused(judge(&w, id), Rule::UnknownEnvironment);
}

#[test]
fn a_deployment_of_a_model_the_environment_may_not_serve_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = deploy_bent(&mut w, &alice, "vision-prod", |_| {});
    let e = refused(judge(&w, id), Rule::EnvironmentNotAllowed);
    assert!(
        e.line().contains("serves models vision/**, not nlp/bert"),
        "{}",
        e.line()
    );
}

#[test]
fn a_version_not_in_the_environments_stage_is_refused() {
    let mut w = world();
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    // qa takes staging versions; 1.0.0 is in production.
    let id = deploy_bent(&mut w, &bob, "qa", |r| r.stage = Stage::Staging);
    let e = refused(judge(&w, id), Rule::NotInEnvironmentStage);
    assert!(
        e.line()
            .contains("nlp/bert@1.0.0 is in production; qa takes versions in staging"),
        "{}",
        e.line()
    );
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::NotInEnvironmentStage,
    );
    let (m, v) = (w.model.clone(), w.version.clone());
    for stage in [
        Stage::Development,
        Stage::Staging,
        Stage::Deprecated,
        Stage::Archived,
    ] {
        w.main.set_stage(&m, &v, stage);
        let id = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
        refused(judge(&w, id), Rule::NotInEnvironmentStage);
    }
    // In staging, bob (approver, qa's deploy role) may send it to qa.
    w.main.set_stage(&m, &v, Stage::Staging);
    let id = deploy_bent(&mut w, &bob, "qa", |r| r.stage = Stage::Staging);
    accepted(judge(&w, id));
    // A record whose stage is not the version's is bad, even when the
    // environment's stage matches.
    w.main.set_stage(&m, &v, Stage::Production);
    let id = deploy_bent(&mut w, &alice, "prod-eu", |r| r.stage = Stage::Staging);
    refused(judge(&w, id), Rule::BadDeployment);
}

#[test]
fn a_deployer_without_the_environments_role_is_refused() {
    let mut w = world();
    let (alice, bob, carol, mallory) = (
        w.alice.clone(),
        w.bob.clone(),
        w.carol.clone(),
        w.mallory.clone(),
    );
    // bob approves nlp/*, but prod-eu is deployed by ml_engineer.
    let id = deploy_bent(&mut w, &bob, "prod-eu", |_| {});
    let e = refused(judge(&w, id), Rule::Role);
    assert!(
        e.line().contains(
            "bob has role approver on nlp/* on nlp/bert; deploy needs ml_engineer (to prod-eu)"
        ),
        "{}",
        e.line()
    );
    assert!(
        e.hint
            .contains("mvault policy grant bob --role ml_engineer"),
        "{}",
        e.hint
    );
    refused(judge_commit(&w.src, &w.replay(), "main", id), Rule::Role);
    // qa is deployed by approvers: alice may not.
    let (m, v) = (w.model.clone(), w.version.clone());
    w.main.set_stage(&m, &v, Stage::Staging);
    let id = deploy_bent(&mut w, &alice, "qa", |r| r.stage = Stage::Staging);
    refused(judge(&w, id), Rule::Role);
    w.main.set_stage(&m, &v, Stage::Production);
    // Expired and unknown keys stop before any role is asked.
    let id = deploy_bent(&mut w, &carol, "prod-eu", |_| {});
    refused(judge(&w, id), Rule::ExpiredKey);
    let id = deploy_bent(&mut w, &mallory, "prod-eu", |_| {});
    refused(judge(&w, id), Rule::UnknownSigner);
    // alice's deployment, pushed by bob.
    let id = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
    let ctx = Context {
        pusher: Some("bob"),
        ..w.server()
    };
    refused(judge_commit(&w.src, &ctx, "main", id), Rule::PusherRole);
}

#[test]
fn a_deployment_with_a_bad_signature_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let r = record(&w, "prod-eu", "alice");
    let files = with_file(&mut w, RECORD, r.to_canonical().as_bytes());
    let tree = w.src.tree_of(&files);
    let tip = w.main.tip;
    let (a, c) = (alice.at(AT), alice.at(AT));
    let message = deploy_message(&r);
    // A signature over another commit (another environment, say).
    let other =
        crate::store::objects::encode_commit_payload(tree, &[tip], &a, &c, "deploy elsewhere\n");
    let forged = encode_signed_commit(tree, &[tip], &a, &c, &message, &git_sig(&alice, &other));
    let id = w.src.put(ObjectKind::Commit, forged);
    refused(judge(&w, id), Rule::BadCommitSignature);
    refused(
        judge_commit(&w.src, &w.replay(), "main", id),
        Rule::BadCommitSignature,
    );
    // No signature at all.
    let unsigned = crate::rules::fixtures::commit_bytes(tree, &[tip], &a, &c, &message, None);
    let id = w.src.put(ObjectKind::Commit, unsigned);
    refused(judge(&w, id), Rule::UnsignedCommit);
}

#[test]
fn a_record_that_does_not_match_its_commit_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    // Backdated, or dated later than its commit.
    for t in [AT - 1, AT + 1, T0] {
        let id = deploy_bent(&mut w, &alice, "prod-eu", |r| r.time = rfc3339(t));
        refused(judge(&w, id), Rule::BadDeployment);
    }
    // Another manifest than the version's (in the record and the trailer).
    let id = deploy_bent(&mut w, &alice, "prod-eu", |r| {
        r.manifest_sha256 = Sha256Digest::of(b"another manifest").to_hex()
    });
    refused(judge(&w, id), Rule::BadTrailers);
    // The record binds another manifest than the trailer, which is right.
    let good = record(&w, "prod-eu", "alice");
    let bent = DeploymentRecord {
        manifest_sha256: Sha256Digest::of(b"x").to_hex(),
        ..good.clone()
    };
    let id = deploy_with(&mut w, &alice, &bent, &deploy_message(&good));
    refused(judge(&w, id), Rule::BadDeployment);
    // Another deployer named.
    let id = deploy_bent(&mut w, &alice, "prod-eu", |r| {
        r.deployed_by = "admin".into()
    });
    refused(judge(&w, id), Rule::Misattributed);
    // Not canonical.
    let text = good.to_canonical();
    for bytes in [
        format!("{text}\n"),
        format!("# by hand\n{text}"),
        format!("{text}extra = 1\n"),
    ] {
        let files = with_file(&mut w, RECORD, bytes.as_bytes());
        let tip = w.main.tip;
        let id = w.commit_files(&alice, tip, &files, &deploy_message(&good), AT);
        refused(judge(&w, id), Rule::BadDeployment);
    }
    // The record names another environment than the trailers.
    let other = DeploymentRecord {
        environment: EnvironmentName::parse("qa").unwrap(),
        ..good.clone()
    };
    let files = with_file(&mut w, RECORD, other.to_canonical().as_bytes());
    let tip = w.main.tip;
    let id = w.commit_files(&alice, tip, &files, &deploy_message(&good), AT);
    refused(judge(&w, id), Rule::BadDeployment);
}

#[test]
fn a_record_for_a_version_that_does_not_exist_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let id = deploy_bent(&mut w, &alice, "prod-eu", |r| {
        r.version = Version::parse("9.9.9").unwrap()
    });
    let e = refused(judge(&w, id), Rule::BadDeployment);
    assert!(
        e.line().contains("nlp/bert@9.9.9 is not in the vault"),
        "{}",
        e.line()
    );
    let id = deploy_bent(&mut w, &alice, "prod-eu", |r| {
        r.model = ModelName::parse("nlp/ghost").unwrap()
    });
    refused(judge(&w, id), Rule::BadDeployment);
}

#[test]
fn a_record_filed_under_another_models_path_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    // The trailers and record say nlp/bert; the file is nlp/gpt2's.
    let r = record(&w, "prod-eu", "alice");
    let files = with_file(
        &mut w,
        "deployments/prod-eu/nlp/gpt2/_deployment.toml",
        r.to_canonical().as_bytes(),
    );
    let tip = w.main.tip;
    let id = w.commit_files(&alice, tip, &files, &deploy_message(&r), AT);
    let e = refused(judge(&w, id), Rule::BadDeployment);
    assert!(
        e.line().contains("is the record of nlp/gpt2 in prod-eu"),
        "{}",
        e.line()
    );
    // Or under another environment.
    let files = with_file(
        &mut w,
        "deployments/qa/nlp/bert/_deployment.toml",
        r.to_canonical().as_bytes(),
    );
    let id = w.commit_files(&alice, tip, &files, &deploy_message(&r), AT);
    refused(judge(&w, id), Rule::BadDeployment);
}

#[test]
fn a_record_mixed_with_anything_else_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let r = record(&w, "prod-eu", "alice");
    let message = deploy_message(&r);
    // With a version's files: a record mixed with a registration.
    let draft = w.version_draft(&alice, "1.1.0", AT);
    let tip = w.main.tip;
    let (mut files, _) = w.version_files(tip, &draft, &alice, false);
    files.insert(
        RECORD.into(),
        (w.src.blob(r.to_canonical().as_bytes()), EntryKind::Blob),
    );
    let id = w.commit_files(&alice, tip, &files, &message, AT);
    refused(judge(&w, id), Rule::MixedActions);
    // With a policy change.
    let mut files = with_file(&mut w, RECORD, r.to_canonical().as_bytes());
    files.insert(
        POLICY_PATH.into(),
        (w.src.blob(b"schema = 1\n"), EntryKind::Blob),
    );
    let id = w.commit_files(&alice, tip, &files, &message, AT);
    refused(judge(&w, id), Rule::MixedActions);
    // Two deployments in one commit.
    let mut files = with_file(&mut w, RECORD, r.to_canonical().as_bytes());
    files.insert(
        "deployments/prod-eu/nlp/gpt2/_deployment.toml".into(),
        (w.src.blob(r.to_canonical().as_bytes()), EntryKind::Blob),
    );
    let id = w.commit_files(&alice, tip, &files, &message, AT);
    refused(judge(&w, id), Rule::BadDeployment);
}

#[test]
fn a_deployment_record_is_never_removed() {
    let mut w = world();
    let alice = w.alice.clone();
    let first = deploy_bent(&mut w, &alice, "prod-eu", |_| {});
    w.advance_main(first);
    let r = record(&w, "prod-eu", "alice");
    let mut files = w.files[&first].clone();
    files.remove(RECORD);
    let id = w.commit_files(&alice, first, &files, &deploy_message(&r), AT + 5);
    let e = refused(judge(&w, id), Rule::BadDeployment);
    assert!(e.line().contains("never removed"), "{}", e.line());
}

#[test]
fn a_deploy_commit_without_its_trailers_is_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let r = record(&w, "prod-eu", "alice");
    let message = deploy_message(&r);
    for (bent, rule) in [
        (
            message.replace("Mvault-Environment: prod-eu\n", ""),
            Rule::BadTrailers,
        ),
        (
            message.replace(
                "Mvault-Environment: prod-eu\n",
                "Mvault-Environment: prod-eu\nMvault-Environment: qa\n",
            ),
            Rule::BadTrailers,
        ),
        (
            message.replace("Mvault-Environment: prod-eu", "Mvault-Environment: Prod/EU"),
            Rule::BadName,
        ),
        (
            message.replace("Mvault-Version: 1.0.0", "Mvault-Version: v1"),
            Rule::BadName,
        ),
        (
            message.replace("Mvault-Manifest-Sha256", "Mvault-Manifest"),
            Rule::BadTrailers,
        ),
    ] {
        let id = deploy_with(&mut w, &alice, &r, &bent);
        refused(judge(&w, id), rule);
    }
}

/// Review of issue 10: records at paths that only look like the record's
/// (case, a look-alike hyphen, a nested or sibling file, a model prefix)
/// and a record of megabytes are each refused, the huge one by its size
/// before it is read.
#[test]
fn records_at_look_alike_paths_or_of_huge_size_are_refused() {
    let mut w = world();
    let alice = w.alice.clone();
    let r = record(&w, "prod-eu", "alice");
    let message = deploy_message(&r);
    let text = r.to_canonical();
    for (path, rule) in [
        (
            "Deployments/prod-eu/nlp/bert/_deployment.toml",
            Rule::MixedActions,
        ),
        (
            "deployments/Prod-EU/nlp/bert/_deployment.toml",
            Rule::MixedActions,
        ),
        // U+2010 HYPHEN, not '-'.
        (
            "deployments/prod\u{2010}eu/nlp/bert/_deployment.toml",
            Rule::MixedActions,
        ),
        (
            "deployments/prod-eu/nlp/bert/_Deployment.toml",
            Rule::MixedActions,
        ),
        (
            "deployments/prod-eu/nlp/bert/_deployment.toml.bak",
            Rule::MixedActions,
        ),
        (
            "deployments/prod-eu/nlp/_deployment.toml",
            Rule::BadDeployment,
        ),
        (
            "deployments/prod-eu/nlp/bert/x/_deployment.toml",
            Rule::BadDeployment,
        ),
    ] {
        let files = with_file(&mut w, path, text.as_bytes());
        let tip = w.main.tip;
        let id = w.commit_files(&alice, tip, &files, &message, AT);
        let e = refused(judge(&w, id), rule);
        assert!(e.line().contains("commit"), "{path}: {}", e.line());
        refused(judge_commit(&w.src, &w.replay(), "main", id), rule);
    }
    // A sibling file next to the true record.
    let mut files = with_file(&mut w, RECORD, text.as_bytes());
    files.insert(
        "deployments/prod-eu/nlp/bert/notes.txt".into(),
        (w.src.blob(b"hi"), EntryKind::Blob),
    );
    let tip = w.main.tip;
    let id = w.commit_files(&alice, tip, &files, &message, AT);
    refused(judge(&w, id), Rule::MixedActions);
    // Megabytes of padding after the record.
    let huge = format!("{text}{}", "#".repeat(1 << 20));
    let files = with_file(&mut w, RECORD, huge.as_bytes());
    let id = w.commit_files(&alice, tip, &files, &message, AT);
    let e = refused(judge(&w, id), Rule::BadDeployment);
    assert!(
        e.line().contains("a record is at most 16384"),
        "{}",
        e.line()
    );
}
