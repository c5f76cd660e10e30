//! `uv.lock`: TOML, one `[[package]]` per resolved package with its
//! `sdist` and `wheels`, each with a `hash = "sha256:…"`. The project
//! itself (an `editable` or `virtual` source) is not an artifact and is
//! left out.
//!
//! uv writes environment markers on the dependency edges
//! (`dependencies = [{ name = "pywin32", marker = "sys_platform == 'win32'" }]`),
//! not on packages: a package's marker is where some path of edges from
//! the project reaches it, each path the `and` of its edges' markers, the
//! paths joined by `or`. A package reached without a marker, or by more
//! paths than are worth writing, is pinned everywhere (as before markers
//! were read: it is then compared on every platform).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use super::{checked_marker, checked_pin, sha256_of_hash, toml_error, Pin};

/// Past this many alternative paths or bytes, a package's marker is
/// given up for "everywhere".
const MAX_CLAUSES: usize = 8;
const MAX_CLAUSE_BYTES: usize = 512;

#[derive(Deserialize)]
struct Lock {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    package: Vec<Spanned<Package>>,
}

#[derive(Deserialize)]
struct Package {
    name: Spanned<String>,
    /// Absent for a virtual project.
    version: Option<Spanned<String>>,
    #[serde(default)]
    source: toml::Table,
    sdist: Option<Artifact>,
    #[serde(default)]
    wheels: Vec<Artifact>,
    #[serde(default)]
    dependencies: Vec<Dep>,
    #[serde(default, rename = "optional-dependencies")]
    optional: BTreeMap<String, Vec<Dep>>,
    #[serde(default, rename = "dev-dependencies")]
    dev: BTreeMap<String, Vec<Dep>>,
}

#[derive(Deserialize)]
struct Dep {
    name: String,
    version: Option<String>,
    marker: Option<String>,
}

/// Where a package is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    Everywhere,
    /// Where any of these (each a marker) holds.
    Where(BTreeSet<String>),
}

impl Reach {
    /// This reach, followed along an edge with `marker`.
    fn along(&self, marker: Option<&str>) -> Reach {
        match (self, marker.map(str::trim).filter(|m| !m.is_empty())) {
            (r, None) => r.clone(),
            (Reach::Everywhere, Some(m)) => Reach::Where([m.to_owned()].into()),
            (Reach::Where(cs), Some(m)) => {
                Reach::Where(cs.iter().map(|c| format!("({c}) and ({m})")).collect())
            }
        }
    }

    /// Both reaches; `true` when `self` grew.
    fn merge(&mut self, other: Reach) -> bool {
        let next = match (&*self, other) {
            (Reach::Everywhere, _) | (_, Reach::Everywhere) => Reach::Everywhere,
            (Reach::Where(a), Reach::Where(b)) => {
                let all: BTreeSet<String> = a.union(&b).cloned().collect();
                if all.len() > MAX_CLAUSES || all.iter().any(|c| c.len() > MAX_CLAUSE_BYTES) {
                    Reach::Everywhere
                } else {
                    Reach::Where(all)
                }
            }
        };
        let grew = next != *self;
        *self = next;
        grew
    }

    fn marker(&self) -> Option<String> {
        match self {
            Reach::Everywhere => None,
            Reach::Where(cs) if cs.len() == 1 => cs.iter().next().cloned(),
            Reach::Where(cs) => Some(
                cs.iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
        }
    }
}

/// Each package's reach from the project (the editable or virtual
/// packages), by index; `None` when the lock names no project (every
/// package is then pinned everywhere).
fn reaches(packages: &[&Package]) -> Option<Vec<Reach>> {
    let is_root =
        |p: &Package| p.source.contains_key("editable") || p.source.contains_key("virtual");
    let roots: Vec<usize> = (0..packages.len())
        .filter(|i| is_root(packages[*i]))
        .collect();
    if roots.is_empty() {
        return None;
    }
    let mut reach: Vec<Option<Reach>> = vec![None; packages.len()];
    let mut work = Vec::new();
    for r in roots {
        reach[r] = Some(Reach::Everywhere);
        work.push(r);
    }
    // Each package's reach only grows, and is bounded (MAX_CLAUSES, then
    // Everywhere): this ends.
    while let Some(i) = work.pop() {
        let Some(from) = reach[i].clone() else {
            continue;
        };
        let p = packages[i];
        let edges = p
            .dependencies
            .iter()
            .chain(p.optional.values().flatten())
            .chain(p.dev.values().flatten());
        for d in edges {
            let via = from.along(d.marker.as_deref());
            for (j, q) in packages.iter().enumerate() {
                let same_version = d.version.is_none()
                    || q.version.as_ref().map(|v| v.get_ref()) == d.version.as_ref();
                if *q.name.get_ref() != d.name || !same_version {
                    continue;
                }
                let grew = match &mut reach[j] {
                    Some(r) => r.merge(via.clone()),
                    slot @ None => {
                        *slot = Some(via.clone());
                        true
                    }
                };
                if grew {
                    work.push(j);
                }
            }
        }
    }
    // A package no path reaches (a lock edited by hand) is pinned
    // everywhere rather than left out.
    Some(
        reach
            .into_iter()
            .map(|r| r.unwrap_or(Reach::Everywhere))
            .collect(),
    )
}

#[derive(Deserialize)]
struct Artifact {
    hash: Option<Spanned<String>>,
}

pub(super) fn parse(text: &str) -> Result<Vec<Pin>, (Option<usize>, String)> {
    let lock: Lock = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let line = |s: std::ops::Range<usize>| Some(super::line_at(text, s.start));
    match &lock.version {
        Some(v) if *v.get_ref() == 1 => {}
        Some(v) => {
            return Err((
                line(v.span()),
                format!(
                    "uv.lock version {}: this mvault reads version 1",
                    v.get_ref()
                ),
            ))
        }
        None => return Err((Some(1), "uv.lock without a top-level version".into())),
    }
    let packages: Vec<&Package> = lock.package.iter().map(Spanned::get_ref).collect();
    let reach = reaches(&packages);
    for p in &packages {
        for d in p
            .dependencies
            .iter()
            .chain(p.optional.values().flatten())
            .chain(p.dev.values().flatten())
        {
            if let Some(m) = &d.marker {
                checked_marker(m).map_err(|e| (line(p.name.span()), e))?;
            }
        }
    }
    let mut pins = Vec::new();
    for (i, p) in lock.package.iter().enumerate() {
        let at = line(p.span());
        let p = p.get_ref();
        if p.source.contains_key("editable") || p.source.contains_key("virtual") {
            continue;
        }
        let Some(version) = &p.version else {
            return Err((at, format!("package {:?} has no version", p.name.get_ref())));
        };
        let mut pin = checked_pin(p.name.get_ref(), version.get_ref())
            .map_err(|e| (line(version.span()), e))?;
        pin.marker = reach.as_ref().and_then(|r| r[i].marker());
        for a in p.sdist.iter().chain(&p.wheels) {
            if let Some(h) = &a.hash {
                let d = sha256_of_hash(h.get_ref()).map_err(|e| (line(h.span()), e))?;
                pin.sha256.insert(d);
            }
        }
        pins.push(pin);
    }
    Ok(pins)
}
