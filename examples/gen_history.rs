//! Builds a real, signed mvault history quickly, for `bench/audit.sh`: the
//! library's own `admin::init`, `register::add` and `release::promote`
//! (no push), in one process, so no per-command start-up is paid.
//!
//! ```text
//! cargo run --release --example gen_history -- DIR ADMIN_KEY VERSIONS [MODELS] [PROMOTE_EVERY]
//! ```
//!
//! DIR is created (it must not exist) with ADMIN_KEY (an unencrypted
//! OpenSSH ed25519 private key; its `.pub` is read next to it) as the admin.
//! VERSIONS versions of tiny models are registered, spread over MODELS
//! models (`bench/m<i>`, default 10); every PROMOTE_EVERY-th version
//! (default 1, 0 = never) is promoted to staging. Each version is a signed
//! commit, a signed manifest and a signed registration tag; each promotion a
//! signed tag. Times start at `$MVAULT_NOW` (or now) and advance one second
//! per event. Every 100 versions, and at the end, refs are packed and loose
//! objects repacked with stock git (`git pack-refs --all`, `git repack -d`),
//! as in any long-lived repository. Prints one summary line.

use std::path::PathBuf;
use std::time::Instant;

use mvault::crypto::{Signer, SshIdentity};
use mvault::model::names::{ModelName, Stage, Version, VersionRef};
use mvault::ops::register::AddRequest;
use mvault::vault::Vault;

fn main() {
    if let Err(e) = run() {
        eprintln!("gen_history: {e}");
        std::process::exit(1);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> Result<T, String> {
    match args.get(i) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("argument {i} ({s:?}) is not valid")),
        None => default.ok_or_else(|| {
            "usage: gen_history DIR ADMIN_KEY VERSIONS [MODELS] [PROMOTE_EVERY]".to_owned()
        }),
    }
}

/// `git pack-refs --all` and `git repack -d` in the vault.
fn maintain(dir: &std::path::Path) -> Result<(), String> {
    for args in [&["pack-refs", "--all"][..], &["repack", "-d", "-q"][..]] {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .status()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !status.success() {
            return Err(format!("git {} failed", args.join(" ")));
        }
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir: PathBuf = arg(&args, 1, None)?;
    let key: PathBuf = arg(&args, 2, None)?;
    let versions: usize = arg(&args, 3, None)?;
    let models: usize = arg(&args, 4, Some(10))?;
    let promote_every: usize = arg(&args, 5, Some(1))?;
    if models == 0 {
        return Err("MODELS must be at least 1".into());
    }

    let identity = SshIdentity::open(&key, None).map_err(|e| e.to_string())?;
    let start = mvault::vault::now();
    let mut clock = 0i64;
    let mut tick = || {
        clock += 1;
        start + time::Duration::seconds(clock)
    };
    let public = identity.public_key().clone();
    mvault::ops::admin::init(&dir, "admin", &public, &identity, tick())
        .map_err(|e| e.to_string())?;
    let vault = Vault::open(&dir).map_err(|e| e.to_string())?;

    let scratch = tempfile::Builder::new()
        .prefix("gen-history-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let began = Instant::now();
    let mut promoted = 0usize;
    for i in 0..versions {
        let model =
            ModelName::parse(&format!("bench/m{}", i % models)).map_err(|e| e.to_string())?;
        let version = Version::parse(&format!("1.0.{}", i / models)).map_err(|e| e.to_string())?;
        let file = scratch.path().join("weights.bin");
        std::fs::write(&file, format!("tiny model {i}\n")).map_err(|e| e.to_string())?;
        mvault::ops::register::add(
            &vault,
            AddRequest {
                path: file,
                model: model.clone(),
                version: version.clone(),
                parent: None,
                framework: None,
                metadata: Default::default(),
                metrics: Default::default(),
                provenance: Default::default(),
                card: Default::default(),
                message: None,
                identity: &identity,
                push: false,
                now: tick(),
                part_size: None,
                progress: &mvault::ops::progress::Silent,
            },
        )
        .map_err(|e| format!("add {model}@{version}: {e}"))?;
        if promote_every > 0 && i % promote_every == 0 {
            mvault::ops::release::promote(
                &vault,
                &VersionRef::Exact(model.clone(), version.clone()),
                Stage::Staging,
                None,
                None,
                &identity,
                tick(),
                false,
            )
            .map_err(|e| format!("promote {model}@{version}: {e}"))?;
            promoted += 1;
        }
        // Keep the repository in the shape a long-lived one has: refs
        // packed, objects in packs. Loose refs and objects make every
        // later command (and so the generation) slower and slower.
        if (i + 1) % 100 == 0 {
            maintain(&dir)?;
        }
    }
    maintain(&dir)?;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "gen_history: {} versions of {} models, {} promotions, in {:.1} s ({:.1} ms per version) into {}",
        versions,
        models.min(versions.max(1)),
        promoted,
        secs,
        if versions > 0 { secs * 1000.0 / versions as f64 } else { 0.0 },
        dir.display()
    );
    Ok(())
}
