//! Requirements files: `pip freeze` output (`name==version` lines) and
//! `pip-compile --generate-hashes` output (the same, with `--hash=sha256:`
//! options on `\` continuation lines). Every package must be pinned with
//! `==`; an environment marker (`; sys_platform == "win32"`) is checked
//! and kept with its pin, for `verify --deps` to evaluate.

use super::{checked_pin, Pin};

/// Options that change where pip looks, not what it installs.
const IGNORED_OPTIONS: &[&str] = &[
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-index",
    "--pre",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
];

/// The pins of a requirements file, or the line and problem.
pub(super) fn parse(text: &str) -> Result<Vec<Pin>, (Option<usize>, String)> {
    let mut pins = Vec::new();
    for (line, logical) in logical_lines(text) {
        let at = |p: String| (Some(line), p);
        let tokens: Vec<&str> = logical.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        if first.starts_with('-') {
            let option = first.split_once('=').map_or(*first, |(o, _)| o);
            if IGNORED_OPTIONS.contains(&option) {
                continue;
            }
            let why = match option {
                "-e" | "--editable" => {
                    "an editable install has no version to pin; pin the package with == instead"
                }
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    "includes another file; pass the compiled file (pip-compile or pip freeze output)"
                }
                _ => "an option mvault does not read here",
            };
            return Err(at(format!("{option}: {why}")));
        }
        let mut spec = String::new();
        let mut hashes = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            if let Some(h) = t.strip_prefix("--hash=") {
                hashes.push(h);
            } else if t == "--hash" {
                i += 1;
                match tokens.get(i) {
                    Some(h) => hashes.push(h),
                    None => return Err(at("--hash without a value".into())),
                }
            } else if t.starts_with("--") {
                return Err(at(format!(
                    "{t}: an option mvault does not read on a requirement line"
                )));
            } else {
                if !spec.is_empty() {
                    spec.push(' ');
                }
                spec.push_str(t);
            }
            i += 1;
        }
        let (requirement, marker) = spec.split_once(';').unwrap_or((&spec, ""));
        let mut pin = requirement_pin(requirement.trim()).map_err(at)?;
        pin.marker = super::checked_marker(marker).map_err(at)?;
        for h in hashes {
            pin.sha256.insert(super::sha256_of_hash(h).map_err(at)?);
        }
        pins.push(pin);
    }
    Ok(pins)
}

/// `name[extras]==version`, with spaces allowed around `==`.
fn requirement_pin(requirement: &str) -> Result<Pin, String> {
    if requirement.contains(" @ ") || requirement.contains('@') {
        return Err(format!(
            "{requirement:?}: a direct reference (name @ URL) has no version to pin; install from an index or pin with =="
        ));
    }
    let Some((name, version)) = requirement
        .split_once("===")
        .or_else(|| requirement.split_once("=="))
    else {
        return Err(format!(
            "{requirement:?}: not pinned; every package needs name==version (pip freeze or pip-compile output)"
        ));
    };
    let name = name.trim();
    let name = match name.split_once('[') {
        Some((n, extras)) if extras.ends_with(']') => n.trim(),
        Some(_) => return Err(format!("{requirement:?}: unclosed extras [")),
        None => name,
    };
    let version = version.trim();
    if version.contains([',', '<', '>', '!', '~', '=', '*', ' ']) {
        return Err(format!(
            "{requirement:?}: not pinned to one version; every package needs name==version"
        ));
    }
    checked_pin(name, version)
}

/// Logical lines with the number of the line each starts on: comments cut
/// (`#` at the start or after whitespace), `\` continuations joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        let without_comment = match raw.find('#') {
            Some(0) => "",
            Some(p) if raw[..p].ends_with(char::is_whitespace) => &raw[..p],
            _ => raw,
        };
        let (body, continues) = match without_comment.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (without_comment, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body);
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current.take());
    out
}
