//! `add --deps FILE` and `verify REF --deps`: read a lock file into pins,
//! and compare an installed Python environment (and the wheels it was
//! installed from) with the pins a signed manifest records.
//!
//! The environment is asked, not guessed: the interpreter runs a short
//! script with `importlib.metadata` and prints JSON (name and version of
//! every installed distribution), in isolated mode (`-I`: no `PYTHON*`
//! variables, no user site) so that only the environment itself answers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::deps::marker::MarkerEnv;
use crate::model::deps::{self, normalise_name, same_version, LockFile, Pin};
use crate::model::manifest::Sha256Digest;
use crate::model::names::VersionRef;
use crate::vault::{Vault, VaultError};

/// Packages a virtual environment brings itself, left out of `--strict`'s
/// extras unless pinned: what `pip freeze` leaves out.
pub const TOOLING: &[&str] = &["pip", "setuptools", "wheel", "distribute"];

/// What the interpreter is asked.
/// A distribution whose metadata has no `Version` (or no metadata at
/// all) is reported with `null`, never a crash of the script.
const INSTALLED_SCRIPT: &str = r#"import json, os, platform, sys
from importlib import metadata
def fmt(info):
    v = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        v += info.releaselevel[0] + str(info.serial)
    return v
markers = {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
out = []
for d in metadata.distributions():
    try:
        md = d.metadata
        name = md["Name"] if md is not None else None
    except Exception:
        name = None
    try:
        version = d.version
    except Exception:
        version = None
    if name:
        out.append({"name": name, "version": version if isinstance(version, str) else None})
json.dump({"python": sys.version.split()[0], "packages": out, "markers": markers}, sys.stdout)
"#;

/// Read a lock or requirements file, refusing a huge or non-UTF-8 one.
pub fn read_lock(path: &Path) -> Result<LockFile, VaultError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| VaultError::Io {
        path: shown.clone(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(VaultError::Input {
            path: shown,
            reason: "--deps names a lock or requirements file, not a directory or device".into(),
        });
    }
    let too_big = || VaultError::Input {
        path: shown.clone(),
        reason: format!(
            "larger than {} MiB; a lock file is text",
            deps::MAX_FILE_BYTES >> 20
        ),
    };
    if meta.len() > deps::MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(deps::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > deps::MAX_FILE_BYTES {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        VaultError::Input {
            path: shown.clone(),
            reason: format!("line {line}: not UTF-8 text"),
        }
    })?;
    Ok(deps::parse_lock(&shown, &text)?)
}

/// One installed distribution, as the interpreter reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// PEP 503 normalised.
    pub name: String,
    /// `None`: the distribution's metadata names no version (a broken or
    /// hand-made install).
    pub version: Option<String>,
}

/// One wheel file of `--wheels DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WheelFile {
    pub file: String,
    /// PEP 503 normalised, from the file name.
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// One difference between the pins and what is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum DepProblem {
    /// A pinned package is not installed.
    Missing { name: String, pinned: Vec<String> },
    /// A pinned package is installed at a version the pins do not name.
    OtherVersion {
        name: String,
        pinned: Vec<String>,
        installed: String,
    },
    /// `--strict`: an installed package no pin names.
    Extra { name: String, installed: String },
    /// A package is installed without a version in its metadata, so it
    /// cannot be compared with its pins (`pinned`; empty for an unpinned
    /// one under `--strict`).
    NoVersion { name: String, pinned: Vec<String> },
    /// `--wheels`: a wheel whose SHA-256 is none of its pin's digests.
    WheelDigest {
        file: String,
        name: String,
        version: String,
        sha256: String,
    },
    /// `--wheels`: a wheel for a pinned package whose pin records no
    /// digest (pip freeze input), so it cannot be checked.
    NoDigestPinned {
        file: String,
        name: String,
        version: String,
    },
    /// `--wheels`: a wheel of a package or version no pin names.
    UnpinnedWheel {
        file: String,
        name: String,
        version: String,
    },
    /// `--wheels`: an installed, pinned package with no wheel in DIR.
    NoWheel { name: String, version: String },
}

/// A pin left out of the comparison: its environment marker does not
/// hold for the interpreter asked (a Windows-only package of a
/// cross-platform lock, checked on Linux).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPin {
    pub name: String,
    pub version: String,
    pub marker: String,
}

/// What an interpreter reports: its version, its distributions and the
/// values of its environment markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnvironment {
    pub python: String,
    pub packages: Vec<Installed>,
    pub markers: MarkerEnv,
}

/// How to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Strictness {
    /// Installed packages no pin names are differences.
    pub extras: bool,
}

/// The outcome of `verify REF --deps`.
#[derive(Debug, Clone, Serialize)]
pub struct DepsReport {
    pub model: String,
    pub version: String,
    pub python: String,
    pub interpreter: String,
    pub pinned: usize,
    pub installed: usize,
    /// Wheels checked, when `--wheels` was given.
    pub wheels: Option<usize>,
    pub problems: Vec<DepProblem>,
    /// Pins whose marker does not hold for this interpreter: not compared.
    pub skipped: Vec<SkippedPin>,
}

/// Ask `python` what is installed.
pub fn installed(python: &Path) -> Result<PythonEnvironment, VaultError> {
    let shown = python.display().to_string();
    let fail = |reason: String| VaultError::Python {
        python: shown.clone(),
        reason,
    };
    let out = std::process::Command::new(python)
        .args(["-I", "-c", INSTALLED_SCRIPT])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default().to_owned();
        return Err(fail(format!("it failed ({}): {last}", out.status)));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        python: String,
        packages: Vec<Raw>,
        #[serde(default)]
        markers: std::collections::BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        name: String,
        version: Option<String>,
    }
    let a: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("its answer is not the expected JSON: {e}")))?;
    let mut seen = BTreeSet::new();
    let mut list = Vec::new();
    for p in a.packages {
        // A distribution whose name is not a valid one is reported as is,
        // lower-cased, so that it still shows as an extra.
        let name = normalise_name(&p.name).unwrap_or_else(|| p.name.to_lowercase());
        // importlib.metadata lists a name twice when two path entries hold
        // it; the first is what `import` finds.
        if seen.insert(name.clone()) {
            list.push(Installed {
                name,
                version: p.version,
            });
        }
    }
    Ok(PythonEnvironment {
        python: a.python,
        packages: list,
        markers: MarkerEnv { values: a.markers },
    })
}

/// The `.whl` files of `dir`, with their names, versions and digests.
pub fn scan_wheels(dir: &Path) -> Result<Vec<WheelFile>, VaultError> {
    let io = |p: &Path, e: std::io::Error| VaultError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".whl") else {
            continue;
        };
        if !entry.file_type().map_err(|e| io(&path, e))?.is_file() {
            continue;
        }
        // {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl
        let fields: Vec<&str> = stem.split('-').collect();
        let (name, version) = match fields.as_slice() {
            [n, v, _, _, _] | [n, v, _, _, _, _] => (n.to_string(), v.to_string()),
            _ => {
                return Err(VaultError::Input {
                    path: path.display().to_string(),
                    reason: "not a wheel file name (name-version-python-abi-platform.whl)".into(),
                })
            }
        };
        let name = normalise_name(&name).ok_or_else(|| VaultError::Input {
            path: path.display().to_string(),
            reason: format!("{name:?} is not a package name"),
        })?;
        let mut hasher = Sha256::new();
        let mut f = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
        std::io::copy(&mut f, &mut hasher).map_err(|e| io(&path, e))?;
        out.push(WheelFile {
            file,
            name,
            version,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// Every difference between `pins` and an environment (and its wheels),
/// sorted by package.
/// The pins that apply where `env` holds, and those left out.
pub fn applicable(pins: &[Pin], env: &MarkerEnv) -> (Vec<Pin>, Vec<SkippedPin>) {
    let mut here = Vec::new();
    let mut skipped = Vec::new();
    for p in pins {
        match &p.marker {
            Some(m) if !deps::marker::holds(m, env) => skipped.push(SkippedPin {
                name: p.name.clone(),
                version: p.version.clone(),
                marker: m.clone(),
            }),
            _ => here.push(p.clone()),
        }
    }
    (here, skipped)
}

pub fn compare(
    pins: &[Pin],
    installed: &[Installed],
    wheels: Option<&[WheelFile]>,
    how: Strictness,
) -> Vec<DepProblem> {
    let mut by_name: BTreeMap<&str, Vec<&Pin>> = BTreeMap::new();
    for p in pins {
        by_name.entry(p.name.as_str()).or_default().push(p);
    }
    let here: BTreeMap<&str, &Installed> = installed.iter().map(|i| (i.name.as_str(), i)).collect();
    let versions = |ps: &[&Pin]| ps.iter().map(|p| p.version.clone()).collect::<Vec<_>>();
    let mut problems = Vec::new();
    for (name, ps) in &by_name {
        match here.get(name).map(|i| i.version.as_deref()) {
            None => problems.push(DepProblem::Missing {
                name: name.to_string(),
                pinned: versions(ps),
            }),
            Some(None) => problems.push(DepProblem::NoVersion {
                name: name.to_string(),
                pinned: versions(ps),
            }),
            Some(Some(v)) if !ps.iter().any(|p| same_version(&p.version, v)) => {
                problems.push(DepProblem::OtherVersion {
                    name: name.to_string(),
                    pinned: versions(ps),
                    installed: v.to_owned(),
                })
            }
            Some(Some(_)) => {}
        }
    }
    if how.extras {
        for i in installed {
            if !by_name.contains_key(i.name.as_str()) && !TOOLING.contains(&i.name.as_str()) {
                problems.push(match &i.version {
                    Some(v) => DepProblem::Extra {
                        name: i.name.clone(),
                        installed: v.clone(),
                    },
                    None => DepProblem::NoVersion {
                        name: i.name.clone(),
                        pinned: Vec::new(),
                    },
                });
            }
        }
    }
    if let Some(wheels) = wheels {
        for w in wheels {
            let pin = by_name
                .get(w.name.as_str())
                .and_then(|ps| ps.iter().find(|p| same_version(&p.version, &w.version)));
            let (file, name, version) = (w.file.clone(), w.name.clone(), w.version.clone());
            match pin {
                None => problems.push(DepProblem::UnpinnedWheel {
                    file,
                    name,
                    version,
                }),
                Some(p) if p.sha256.is_empty() => problems.push(DepProblem::NoDigestPinned {
                    file,
                    name,
                    version,
                }),
                Some(p) => {
                    let ok =
                        Sha256Digest::from_hex(&w.sha256).is_some_and(|d| p.sha256.contains(&d));
                    if !ok {
                        problems.push(DepProblem::WheelDigest {
                            file,
                            name,
                            version,
                            sha256: w.sha256.clone(),
                        });
                    }
                }
            }
        }
        for (name, ps) in &by_name {
            let Some(Some(installed)) = here.get(name).map(|i| i.version.as_deref()) else {
                continue;
            };
            let pinned_and_installed = ps.iter().any(|p| same_version(&p.version, installed));
            let has_wheel = wheels
                .iter()
                .any(|w| w.name == *name && same_version(&w.version, installed));
            if pinned_and_installed && !has_wheel {
                problems.push(DepProblem::NoWheel {
                    name: name.to_string(),
                    version: installed.to_owned(),
                });
            }
        }
    }
    problems.sort_by(|a, b| problem_key(a).cmp(&problem_key(b)));
    problems
}

fn problem_key(p: &DepProblem) -> (&str, &str) {
    use DepProblem::*;
    match p {
        Missing { name, .. }
        | OtherVersion { name, .. }
        | Extra { name, .. }
        | NoVersion { name, .. } => (name, ""),
        WheelDigest { name, file, .. }
        | NoDigestPinned { name, file, .. }
        | UnpinnedWheel { name, file, .. } => (name, file),
        NoWheel { name, .. } => (name, ""),
    }
}

/// The interpreter `verify --deps` asks when none is given: the active
/// virtual environment's, else `python3` on PATH.
pub fn default_python() -> PathBuf {
    match std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v).join("bin/python"),
        None => PathBuf::from("python3"),
    }
}

/// `mvault verify REF --deps`: the signed pins of a version against the
/// environment of `python` (and the wheels in `wheels`).
pub fn verify_deps(
    vault: &Vault,
    r: &VersionRef,
    python: &Path,
    wheels: Option<&Path>,
    how: Strictness,
) -> Result<DepsReport, VaultError> {
    let (m, v) = crate::ops::resolve::resolve(vault, r)?;
    let rec = vault.record(&m, &v)?;
    vault.verify_manifest_signature(&rec)?;
    let pins = &rec.manifest.card.dependencies;
    if pins.is_empty() {
        return Err(VaultError::Input {
            path: format!("{m}@{v}"),
            reason: "the version pins no dependencies (it was added without --deps)".into(),
        });
    }
    let env = installed(python)?;
    let wheel_files = wheels.map(scan_wheels).transpose()?;
    let (here, skipped) = applicable(pins, &env.markers);
    let mut problems = compare(&here, &env.packages, wheel_files.as_deref(), how);
    // A pin that applies elsewhere is still a pin: not an extra, and its
    // wheel is not an unpinned one.
    let elsewhere: BTreeSet<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
    problems.retain(|p| match p {
        DepProblem::Extra { name, .. } | DepProblem::UnpinnedWheel { name, .. } => {
            !elsewhere.contains(name.as_str())
        }
        _ => true,
    });
    Ok(DepsReport {
        model: m.to_string(),
        version: v.to_string(),
        python: env.python,
        interpreter: python.display().to_string(),
        pinned: pins.len(),
        installed: env.packages.len(),
        wheels: wheel_files.as_ref().map(Vec::len),
        problems,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str, digests: &[&[u8]]) -> Pin {
        Pin {
            name: name.into(),
            version: version.into(),
            sha256: digests.iter().map(|d| Sha256Digest::of(d)).collect(),
            marker: None,
        }
    }
    fn inst(name: &str, version: &str) -> Installed {
        Installed {
            name: name.into(),
            version: Some(version.into()),
        }
    }
    fn wheel(name: &str, version: &str, content: &[u8]) -> WheelFile {
        WheelFile {
            file: format!("{name}-{version}-py3-none-any.whl"),
            name: name.into(),
            version: version.into(),
            sha256: Sha256Digest::of(content).to_hex(),
        }
    }

    #[test]
    fn a_matching_environment_has_no_problem() {
        let pins = [pin("a", "1.0", &[b"a"]), pin("b", "2.0", &[b"b"])];
        let here = [inst("a", "1.0.0"), inst("b", "2.0"), inst("pip", "24.0")];
        let wheels = [wheel("a", "1.0", b"a"), wheel("b", "2.0", b"b")];
        let strict = Strictness { extras: true };
        assert_eq!(compare(&pins, &here, Some(&wheels), strict), vec![]);
    }

    #[test]
    fn every_difference_is_named() {
        let pins = [
            pin("a", "1.0", &[b"a"]),
            pin("b", "2.0", &[b"b"]),
            pin("c", "3.0", &[]),
            pin("d", "4.0", &[b"d"]),
        ];
        let here = [
            inst("a", "1.1"),
            inst("c", "3.0"),
            inst("d", "4.0"),
            inst("x", "9"),
        ];
        let wheels = [
            wheel("c", "3.0", b"c"),
            wheel("d", "4.0", b"tampered"),
            wheel("z", "1.0", b"z"),
        ];
        let got = compare(&pins, &here, Some(&wheels), Strictness { extras: true });
        let names: Vec<String> = got
            .iter()
            .map(|p| {
                serde_json::to_value(p).unwrap()["problem"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "other_version",
                "missing",
                "no_digest_pinned",
                "wheel_digest",
                "extra",
                "unpinned_wheel"
            ],
            "{got:?}"
        );
        // Without --strict and --wheels, only the pins' own differences.
        let got = compare(&pins, &here, None, Strictness::default());
        assert_eq!(got.len(), 2, "{got:?}");
    }

    /// Review of issue 10: a package installed without a version in its
    /// metadata used to make the whole comparison fail ("its answer is not
    /// the expected JSON"); it is now named as a difference, pinned or
    /// (under --strict) not.
    #[test]
    fn a_package_installed_without_a_version_is_named() {
        let pins = [pin("a", "1.0", &[b"a"])];
        let here = [
            Installed {
                name: "a".into(),
                version: None,
            },
            Installed {
                name: "x".into(),
                version: None,
            },
        ];
        let wheels = [wheel("a", "1.0", b"a")];
        let got = compare(&pins, &here, Some(&wheels), Strictness { extras: true });
        assert_eq!(
            got,
            vec![
                DepProblem::NoVersion {
                    name: "a".into(),
                    pinned: vec!["1.0".into()],
                },
                DepProblem::NoVersion {
                    name: "x".into(),
                    pinned: vec![],
                },
            ]
        );
        let got = compare(&pins, &here, None, Strictness::default());
        assert_eq!(got.len(), 1, "{got:?}");
    }
}
