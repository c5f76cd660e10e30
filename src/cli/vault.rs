//! The commands on a vault and its versions: `init`, `add`, `pull`,
//! `verify`, `list`, `show` and `signers`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::crypto;
use mvault::model::names::{ModelName, Version, VersionRef};
use mvault::model::text::escape;
use mvault::ops::admin;
use mvault::ops::progress::Progress;
use mvault::ops::register::{self, AddRequest};
use mvault::ops::retrieve::{self, DirProblem};
use mvault::vault::{Vault, VaultError};

use super::{json_line, load_identity, open_vault, CliError, CliResult, Command};

/// Run one of the vault and version commands; [`super::dispatch`] sends only those here.
pub(super) fn run(
    cmd: Command,
    key_path: &Option<PathBuf>,
    dir: &Path,
    now: time::OffsetDateTime,
    progress: &dyn Progress,
    out: &mut dyn Write,
) -> CliResult {
    match cmd {
        Command::Init {
            path,
            admin_key,
            admin_name,
            json,
        } => {
            let path = if path.is_relative() {
                dir.join(path)
            } else {
                path
            };
            let text = std::fs::read_to_string(&admin_key)
                .map_err(|e| CliError::user(format!("cannot read {}: {e}", admin_key.display())))?;
            let key =
                crypto::parse_public_key(&text).map_err(|e| CliError::from(VaultError::from(e)))?;
            let signer = load_identity(key_path, dir)?;
            let o = admin::init(&path, &admin_name, &key, &signer, now)?;
            if json {
                return json_line(out, &o);
            }
            writeln!(
                out,
                "initialised vault {} with admin {} ({})",
                o.path, o.admin, o.fingerprint
            )?;
            writeln!(out, "commit {}", o.commit)?;
        }
        Command::Add {
            path,
            model,
            version,
            parent,
            framework,
            meta,
            metric,
            provenance,
            message,
            no_push,
            part_size,
            json,
        } => {
            let part_size = part_size
                .map(|s| {
                    register::parse_size(&s).ok_or_else(|| {
                        CliError::user(format!(
                            "--part-size {s:?}: a size in bytes, or with K, M or G (16M)"
                        ))
                    })
                })
                .transpose()?;
            let model = ModelName::parse(&model)?;
            let version = Version::parse(&version)?;
            let parent = parent.as_deref().map(Version::parse).transpose()?;
            let metadata = key_values(&meta, "meta")?;
            let mut metrics = BTreeMap::new();
            for (k, v) in key_values(&metric, "metric")? {
                let n: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| {
                        CliError::user(format!("--metric {k}={v}: a metric is a finite number"))
                    })?;
                metrics.insert(k, n);
            }
            let provenance = key_values(&provenance, "provenance")?;
            let vault = open_vault(dir)?;
            let identity = load_identity(key_path, dir)?;
            let path = if path.is_relative() {
                dir.join(path)
            } else {
                path
            };
            let o = register::add(
                &vault,
                AddRequest {
                    path,
                    model,
                    version,
                    parent,
                    framework,
                    metadata,
                    metrics,
                    provenance,
                    message,
                    identity: &identity,
                    push: !no_push,
                    now,
                    part_size,
                    progress,
                },
            )?;
            if json {
                json_line(out, &o)?;
            } else {
                writeln!(
                    out,
                    "registered {}@{}: {} file(s), {} bytes, {} reused from earlier versions",
                    o.model, o.version, o.files, o.bytes, o.reused
                )?;
                writeln!(out, "manifest sha256 {}", o.manifest_sha256)?;
                writeln!(out, "commit {} tag {}", o.commit, o.tag)?;
                if o.new_key_ring {
                    writeln!(out, "created the key ring of {}", o.model)?;
                }
                match &o.pushed {
                    Some(p) if p.rebuilds > 0 => writeln!(
                        out,
                        "pushed to {} (rebuilt {} time(s) on a newer main)",
                        p.remote, p.rebuilds
                    )?,
                    Some(p) => writeln!(out, "pushed to {}", p.remote)?,
                    None => writeln!(out, "not pushed (no remote, or --no-push)")?,
                }
            }
        }
        Command::Pull {
            reference,
            output,
            from,
            cache,
            env,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let output = if output.is_relative() {
                dir.join(output)
            } else {
                output
            };
            let identity = load_identity(key_path, dir)?;
            let v = match from {
                Some(url) => {
                    let cache = cache.map(|c| if c.is_relative() { dir.join(c) } else { c });
                    retrieve::pull_from(
                        &url,
                        cache.as_deref(),
                        &r,
                        env.as_deref(),
                        &output,
                        &identity,
                        progress,
                    )?
                }
                None => {
                    let vault = open_vault(dir)?;
                    if let Some(warning) = retrieve::refresh_for(&vault, &r)? {
                        eprintln!("mvault: warning: {warning}");
                    }
                    retrieve::pull(&vault, &r, env.as_deref(), &output, &identity, progress)?
                }
            };
            if json {
                json_line(out, &v)?;
            } else {
                writeln!(
                    out,
                    "pulled {}@{} into {}: {} file(s), {} bytes, signed by {}, every digest verified",
                    v.model,
                    v.version,
                    output.display(),
                    v.files,
                    v.bytes,
                    v.author
                )?;
            }
        }
        Command::Purge {
            reference,
            reason,
            no_push,
            json,
        } => {
            let VersionRef::Exact(model, version) = VersionRef::parse(&reference)? else {
                return Err(CliError::user(format!(
                    "{reference}: name one version, as MODEL@VERSION"
                )));
            };
            let vault = open_vault(dir)?;
            let identity = load_identity(key_path, dir)?;
            let o = mvault::ops::purge::purge(
                &vault, &model, &version, &reason, &identity, now, !no_push,
            )?;
            if json {
                json_line(out, &o)?;
            } else {
                writeln!(
                    out,
                    "purged {}@{}: commit {}, {} deleted",
                    o.model, o.version, o.commit, o.payload_ref
                )?;
                match &o.pushed {
                    Some(r) => writeln!(
                        out,
                        "pushed to {r}; the server drops the ciphertext at its next git gc"
                    )?,
                    None => writeln!(out, "not pushed (no remote, or --no-push)")?,
                }
            }
        }
        Command::Verify {
            reference,
            check_dir,
            json,
        } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(dir)?;
            match check_dir {
                Some(d) => {
                    let d = if d.is_relative() { dir.join(d) } else { d };
                    let (v, problems) = retrieve::verify_dir(&vault, &r, &d)?;
                    if json {
                        json_line(
                            out,
                            &serde_json::json!({"verified": v, "problems": problems}),
                        )?;
                    } else {
                        for p in &problems {
                            match p {
                                DirProblem::Missing { path } => {
                                    writeln!(out, "missing     {}", escape(path))?
                                }
                                DirProblem::Changed {
                                    path,
                                    check,
                                    expected,
                                    found,
                                } => writeln!(
                                    out,
                                    "changed     {} ({check}: expected {expected}, found {})",
                                    escape(path),
                                    escape(found)
                                )?,
                                DirProblem::Unexpected { path } => {
                                    writeln!(out, "unexpected  {}", escape(path))?
                                }
                            }
                        }
                        if problems.is_empty() {
                            writeln!(
                                out,
                                "{} matches {}@{}: {} file(s)",
                                d.display(),
                                v.model,
                                v.version,
                                v.files
                            )?;
                        }
                    }
                    if !problems.is_empty() {
                        return Err(VaultError::DirMismatch {
                            dir: d.display().to_string(),
                            model: v.model,
                            version: v.version,
                            count: problems.len(),
                        }
                        .into());
                    }
                }
                None => {
                    let identity = load_identity(key_path, dir)?;
                    let v = retrieve::verify(&vault, &r, &identity, progress)?;
                    if json {
                        json_line(out, &v)?;
                    } else {
                        writeln!(
                            out,
                            "verified {}@{}: manifest and commit signatures, {} blob(s) decrypted, {} bytes, every digest matches",
                            v.model, v.version, v.files, v.bytes
                        )?;
                    }
                }
            }
        }
        Command::List { json } => {
            let vault = open_vault(dir)?;
            for s in vault.list()? {
                if json {
                    json_line(out, &s)?;
                } else {
                    writeln!(
                        out,
                        "{}@{}\t{} file(s)\t{} bytes\t{}\t{}",
                        s.model,
                        s.version,
                        s.files,
                        s.size,
                        escape(&s.author),
                        escape(&s.created)
                    )?;
                }
            }
        }
        Command::Show { reference, json } => {
            let r = VersionRef::parse(&reference)?;
            let vault = open_vault(dir)?;
            let (m, v) = mvault::ops::resolve::resolve(&vault, &r)?;
            let rec = vault.record(&m, &v)?;
            vault.verify_manifest_signature(&rec)?;
            let s = Vault::summary(&rec);
            if json {
                let files: Vec<_> = rec
                    .manifest
                    .files
                    .iter()
                    .map(|f| serde_json::json!({"path": f.path, "size": f.size, "sha256": f.sha256.to_hex()}))
                    .collect();
                json_line(
                    out,
                    &serde_json::json!({
                        "summary": s,
                        "metadata": rec.manifest.metadata,
                        "metrics": rec.manifest.metrics,
                        "provenance": rec.manifest.provenance,
                        "data_key": rec.manifest.data_key,
                        "files": files,
                    }),
                )?;
            } else {
                writeln!(out, "{}@{}", s.model, s.version)?;
                if let Some(p) = &s.parent {
                    writeln!(out, "parent      {}@{p}", s.model)?;
                }
                writeln!(
                    out,
                    "author      {} ({})",
                    escape(&s.author),
                    escape(&rec.manifest.author_key)
                )?;
                writeln!(out, "created     {}", escape(&s.created))?;
                if let Some(f) = &s.framework {
                    writeln!(out, "framework   {}", escape(f))?;
                }
                writeln!(out, "manifest    sha256 {}", s.manifest_sha256)?;
                writeln!(out, "merkle root {}", s.merkle_root)?;
                writeln!(out, "data key    {}", rec.manifest.data_key)?;
                for (k, v) in &rec.manifest.metrics {
                    writeln!(out, "metric      {} = {v}", escape(k))?;
                }
                for (k, v) in &rec.manifest.metadata {
                    writeln!(out, "meta        {} = {}", escape(k), escape(v))?;
                }
                for (k, v) in &rec.manifest.provenance {
                    writeln!(out, "provenance  {} = {}", escape(k), escape(v))?;
                }
                writeln!(out, "files       {} ({} bytes)", s.files, s.size)?;
                for f in &rec.manifest.files {
                    writeln!(
                        out,
                        "  {}  {:>12}  {}",
                        f.sha256.to_hex(),
                        f.size,
                        escape(&f.path)
                    )?;
                }
            }
        }
        Command::Signers { json } => {
            let vault = open_vault(dir)?;
            let policy = vault.policy()?;
            if json {
                for s in policy.signers() {
                    json_line(out, &s)?;
                }
            } else {
                write!(out, "{}", policy.allowed_signers())?;
            }
        }
        other => unreachable!("not a vault command: {other:?}"),
    }
    Ok(())
}

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(CliError::user(format!(
                "--{what} {item:?}: expected KEY=VALUE"
            )));
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(CliError::user(format!(
                "--{what} {item:?}: a key is [A-Za-z0-9._-]+"
            )));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}
