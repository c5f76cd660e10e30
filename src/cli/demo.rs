//! `mvault demo`: a throwaway vault, a server, two people and a model, run
//! end to end with stock git in between, every step printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::context::Ctx;
use super::error::{CliError, CliResult};

/// Build a throwaway vault and run the whole loop, printing each step.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Where to build it (default: a new temporary directory).
    path: Option<PathBuf>,
}

fn step(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    writeln!(out, "\n== {text}")?;
    Ok(())
}

fn sh(
    out: &mut dyn Write,
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String, CliError> {
    sh_expect(out, dir, program, args, env, true)
}

/// Run a step, print it and what it printed; fail the demo when it does
/// not end as `success` says.
fn sh_expect(
    out: &mut dyn Write,
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    success: bool,
) -> Result<String, CliError> {
    let shown = if program.ends_with("mvault") {
        "mvault"
    } else {
        program
    };
    let prefix: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    writeln!(out, "$ {prefix}{shown} {}", args.join(" "))?;
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .output()
        .map_err(|e| CliError::user(format!("cannot run {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    for line in stdout.lines().chain(stderr.lines()) {
        writeln!(out, "  {line}")?;
    }
    if o.status.success() != success {
        return Err(CliError::user(format!(
            "demo step {}: {program} {}",
            if success { "failed" } else { "was not refused" },
            args.join(" ")
        )));
    }
    Ok(stdout)
}

fn keygen(dir: &Path, name: &str) -> Result<PathBuf, CliError> {
    let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| CliError::user(e.to_string()))?;
    let mut key = key;
    key.set_comment(format!("{name}@demo"));
    let path = dir.join(name);
    key.write_openssh_file(&path, ssh_key::LineEnding::LF)
        .map_err(|e| CliError::user(e.to_string()))?;
    key.public_key()
        .write_openssh_file(&dir.join(format!("{name}.pub")))
        .map_err(|e| CliError::user(e.to_string()))?;
    Ok(path)
}

/// Run the demo in `path` (default: a new temporary directory).
pub(super) fn run(args: Args, _ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let root = match args.path {
        Some(p) => {
            std::fs::create_dir_all(&p)?;
            p.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("mvault-demo-")
            .tempdir()?
            .keep(),
    };
    let exe = std::env::current_exe()?;
    let mv = exe
        .to_str()
        .ok_or_else(|| CliError::user("mvault's path is not UTF-8"))?
        .to_owned();
    let keys = root.join("keys");
    std::fs::create_dir_all(&keys)?;
    writeln!(out, "mvault demo in {}", root.display())?;

    step(
        out,
        "keys: an admin, an ML engineer (alice) and a reviewer (bob), each one ed25519 SSH key",
    )?;
    let admin = keygen(&keys, "admin")?;
    let alice = keygen(&keys, "alice")?;
    let bob = keygen(&keys, "bob")?;
    writeln!(out, "  {} and {}", admin.display(), alice.display())?;

    step(
        out,
        "the admin creates the vault; its first commit is signed and makes them admin",
    )?;
    let admin_dir = root.join("admin");
    let admin_s = admin.to_str().unwrap_or_default();
    let admin_pub = keys.join("admin.pub");
    sh(
        out,
        &root,
        &mv,
        &[
            "--key",
            admin_s,
            "init",
            "admin",
            "--admin-key",
            admin_pub.to_str().unwrap_or_default(),
        ],
        &[],
    )?;

    step(
        out,
        "a bare server repository, cloned from the admin's vault with stock git",
    )?;
    sh(
        out,
        &root,
        "git",
        &["clone", "-q", "--bare", "admin", "server.git"],
        &[],
    )?;
    sh(
        out,
        &root.join("server.git"),
        "git",
        &["config", "receive.unpackLimit", "1"],
        &[],
    )?;
    step(
        out,
        "the server admin installs the pre-receive hook and pins the admin's key as root",
    )?;
    sh(
        out,
        &root,
        &mv,
        &[
            "hook",
            "install",
            "server.git",
            "--root-key",
            admin_pub.to_str().unwrap_or_default(),
        ],
        &[],
    )?;
    sh(
        out,
        &admin_dir,
        "git",
        &["remote", "add", "origin", "../server.git"],
        &[],
    )?;
    sh(out, &admin_dir, "git", &["fetch", "-q", "origin"], &[])?;
    sh(
        out,
        &admin_dir,
        "git",
        &["branch", "-q", "--set-upstream-to=origin/main", "main"],
        &[],
    )?;

    step(
        out,
        "the admin adds alice and grants her ml_engineer on nlp/*",
    )?;
    let alice_pub = keys.join("alice.pub");
    sh(
        out,
        &admin_dir,
        &mv,
        &[
            "--key",
            admin_s,
            "policy",
            "add-user",
            "alice",
            "--key-file",
            alice_pub.to_str().unwrap_or_default(),
        ],
        &[("MVAULT_USER", "admin")],
    )?;
    sh(
        out,
        &admin_dir,
        &mv,
        &[
            "--key",
            admin_s,
            "policy",
            "grant",
            "alice",
            "--role",
            "ml_engineer",
            "--models",
            "nlp/*",
        ],
        &[("MVAULT_USER", "admin")],
    )?;
    let bob_pub = keys.join("bob.pub");
    let admin_env = [("MVAULT_USER", "admin")];
    sh(
        out,
        &admin_dir,
        &mv,
        &[
            "--key",
            admin_s,
            "policy",
            "add-user",
            "bob",
            "--key-file",
            bob_pub.to_str().unwrap_or_default(),
        ],
        &admin_env,
    )?;
    sh(
        out,
        &admin_dir,
        &mv,
        &[
            "--key", admin_s, "policy", "grant", "bob", "--role", "approver", "--models", "nlp/*",
        ],
        &admin_env,
    )?;

    step(
        out,
        "alice clones the vault with stock git (no blobs checked out) and registers nlp/bert@1.0.0",
    )?;
    sh(
        out,
        &root,
        "git",
        &["clone", "-q", "--no-checkout", "server.git", "alice"],
        &[],
    )?;
    let model = root.join("model");
    std::fs::create_dir_all(model.join("tokenizer"))?;
    std::fs::write(
        model.join("config.json"),
        b"{\"hidden\": 768, \"layers\": 12}\n",
    )?;
    std::fs::write(
        model.join("tokenizer/vocab.txt"),
        b"[PAD]\n[UNK]\nhello\nworld\n",
    )?;
    let weights: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    let alice_dir = root.join("alice");
    let alice_s = alice.to_str().unwrap_or_default();
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "add",
            "../model",
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
            "--framework",
            "pytorch",
            "--metric",
            "f1=0.91",
            "--provenance",
            "training_data=s3://corpus/2026-11",
            "-m",
            "first fine-tune",
        ],
        &[("MVAULT_USER", "alice")],
    )?;

    step(
        out,
        "alice has no role on vision/*: mvault refuses before writing anything",
    )?;
    sh_expect(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "add",
            "../model",
            "--model",
            "vision/resnet",
            "--version",
            "1.0.0",
        ],
        &[("MVAULT_USER", "alice")],
        false,
    )?;

    step(
        out,
        "what the server holds: a signed commit, a signed tag, a manifest, ciphertext",
    )?;
    sh(
        out,
        &root.join("server.git"),
        "git",
        &["log", "--format=%h %an %s", "main"],
        &[],
    )?;
    sh(
        out,
        &root.join("server.git"),
        "git",
        &["tag", "-l", "nlp/bert@*"],
        &[],
    )?;
    sh(
        out,
        &root.join("server.git"),
        "git",
        &["ls-tree", "-r", "--name-only", "main", "models/"],
        &[],
    )?;

    step(out, "stock tools check mvault's signatures")?;
    let signers = sh(out, &alice_dir, &mv, &["signers"], &[])?;
    let signers_file = root.join("allowed_signers");
    std::fs::write(&signers_file, signers)?;
    let cfg = format!("gpg.ssh.allowedSignersFile={}", signers_file.display());
    sh(
        out,
        &alice_dir,
        "git",
        &["-c", &cfg, "verify-commit", "origin/main"],
        &[],
    )?;
    sh(
        out,
        &alice_dir,
        "git",
        &["-c", &cfg, "verify-tag", "nlp/bert@v1.0.0"],
        &[],
    )?;

    step(
        out,
        "alice promotes 1.0.0 to staging; production needs an approval from someone else",
    )?;
    let alice_env = [("MVAULT_USER", "alice")];
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "promote",
            "nlp/bert@1.0.0",
            "--to",
            "staging",
        ],
        &alice_env,
    )?;
    sh_expect(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "promote",
            "nlp/bert@1.0.0",
            "--to",
            "production",
        ],
        &alice_env,
        false,
    )?;

    step(
        out,
        "bob, an approver, approves it for production from his own clone",
    )?;
    sh(
        out,
        &root,
        "git",
        &["clone", "-q", "--no-checkout", "server.git", "bob"],
        &[],
    )?;
    let bob_dir = root.join("bob");
    let bob_s = bob.to_str().unwrap_or_default();
    sh(
        out,
        &bob_dir,
        &mv,
        &[
            "--key",
            bob_s,
            "approve",
            "nlp/bert@1.0.0",
            "--stage",
            "production",
            "--comment",
            "eval report OK",
        ],
        &[("MVAULT_USER", "bob")],
    )?;

    step(out, "alice promotes to production: a signed GTO tag that names the approval and the previous promotion")?;
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "promote",
            "nlp/bert@1.0.0",
            "--to",
            "production",
            "--ticket",
            "CHG-1042",
        ],
        &alice_env,
    )?;
    sh(out, &alice_dir, &mv, &["status", "nlp/bert"], &[])?;
    sh(out, &alice_dir, "git", &["tag", "-l", "nlp/bert*"], &[])?;

    step(
        out,
        "the admin defines the environment prod-eu (production versions of nlp/**); alice records, signed on main, that prod-eu runs what production serves",
    )?;
    sh(out, &admin_dir, &mv, &["sync"], &[])?;
    sh(
        out,
        &admin_dir,
        &mv,
        &[
            "--key",
            admin_s,
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
        &admin_env,
    )?;
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "--key",
            alice_s,
            "deploy",
            "nlp/bert#production",
            "--env",
            "prod-eu",
            "--reason",
            "CHG-1042",
        ],
        &alice_env,
    )?;
    sh(out, &alice_dir, &mv, &["deployments"], &[])?;

    step(
        out,
        "a serving job pulls what is in production straight from the server, no clone: only that version's payload is fetched, decrypted, every digest verified before it lands",
    )?;
    let serve = root.join("serve");
    let server_url = root.join("server.git");
    let cache = root.join("serving-cache");
    sh(
        out,
        &root,
        &mv,
        &[
            "--key",
            alice_s,
            "pull",
            "--from",
            server_url.to_str().unwrap_or_default(),
            "--cache",
            cache.to_str().unwrap_or_default(),
            "nlp/bert#production",
            "--env",
            "prod-eu",
            "-o",
            serve.to_str().unwrap_or_default(),
        ],
        &[],
    )?;
    sh(
        out,
        &cache,
        "git",
        &["for-each-ref", "--format=%(refname)", "refs/mvault/data/"],
        &[],
    )?;
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "verify",
            "nlp/bert@1.0.0",
            "--dir",
            serve.to_str().unwrap_or_default(),
        ],
        &[],
    )?;
    sh(out, &alice_dir, &mv, &["show", "nlp/bert@1.0.0"], &[])?;

    step(out, "the auditor's view: events from commits and tags, a full replay of the record, the lineage")?;
    sh(out, &alice_dir, &mv, &["list"], &[])?;
    sh(out, &alice_dir, &mv, &["log"], &[])?;
    sh(out, &alice_dir, &mv, &["audit", "verify"], &[])?;
    sh(out, &alice_dir, &mv, &["lineage", "nlp/bert"], &[])?;
    let report = root.join("report.html");
    sh(
        out,
        &alice_dir,
        &mv,
        &[
            "report",
            "nlp/bert",
            "--format",
            "html",
            "-o",
            report.to_str().unwrap_or_default(),
        ],
        &[],
    )?;
    sh(
        out,
        &root,
        &mv,
        &["hook", "log", "verify", "server.git"],
        &[],
    )?;
    sh(
        out,
        &root.join("server.git"),
        &mv,
        &["log", "--server"],
        &[],
    )?;
    writeln!(out, "\ndemo complete: {}", root.display())?;
    Ok(())
}
