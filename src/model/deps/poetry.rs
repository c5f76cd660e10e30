//! `poetry.lock`: TOML, one `[[package]]` per package with
//! `files = [{file = "…", hash = "sha256:…"}]` (lock-version 2), or the
//! files listed by package name under `[metadata.files]` (lock-version 1).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{checked_pin, normalise_name, sha256_of_hash, toml_error, Pin};

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<Spanned<Package>>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    /// lock-version 1: package name -> files.
    #[serde(default)]
    files: BTreeMap<String, Vec<File>>,
}

#[derive(Deserialize)]
struct Package {
    name: Spanned<String>,
    version: Spanned<String>,
    #[serde(default)]
    files: Vec<File>,
    /// Where the package is installed: one marker, or one per group.
    markers: Option<Spanned<Markers>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Markers {
    One(String),
    ByGroup(BTreeMap<String, String>),
}

#[derive(Deserialize)]
struct File {
    hash: Spanned<String>,
}

pub(super) fn parse(text: &str) -> Result<Vec<Pin>, (Option<usize>, String)> {
    let lock: Lock = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let line = |s: std::ops::Range<usize>| Some(super::line_at(text, s.start));
    let mut old_files: BTreeMap<String, &Vec<File>> = BTreeMap::new();
    for (name, files) in &lock.metadata.files {
        let n = normalise_name(name).ok_or_else(|| {
            (
                None,
                format!("[metadata.files]: {name:?} is not a package name"),
            )
        })?;
        old_files.insert(n, files);
    }
    let mut pins = Vec::new();
    for p in &lock.package {
        let p = p.get_ref();
        let mut pin = checked_pin(p.name.get_ref(), p.version.get_ref())
            .map_err(|e| (line(p.name.span()), e))?;
        if let Some(m) = &p.markers {
            let text = match m.get_ref() {
                Markers::One(t) => t.clone(),
                Markers::ByGroup(g) if g.values().any(|t| t.trim().is_empty()) => String::new(),
                Markers::ByGroup(g) => g
                    .values()
                    .map(|t| format!("({t})"))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            pin.marker = super::checked_marker(&text).map_err(|e| (line(m.span()), e))?;
        }
        let old = old_files.get(&pin.name).copied().into_iter().flatten();
        for f in p.files.iter().chain(old) {
            let d = sha256_of_hash(f.hash.get_ref()).map_err(|e| (line(f.hash.span()), e))?;
            pin.sha256.insert(d);
        }
        pins.push(pin);
    }
    Ok(pins)
}
