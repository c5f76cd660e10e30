//! `uv.lock`: TOML, one `[[package]]` per resolved package with its
//! `sdist` and `wheels`, each with a `hash = "sha256:…"`. The project
//! itself (an `editable` or `virtual` source) is not an artifact and is
//! left out.

use serde::Deserialize;
use toml::Spanned;

use super::{checked_pin, sha256_of_hash, toml_error, Pin};

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
    let mut pins = Vec::new();
    for p in &lock.package {
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
