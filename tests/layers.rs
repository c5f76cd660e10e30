//! The layers of the code (DESIGN.md, "Layout of the code"; drawn in
//! docs/architecture.md): a module imports only modules below it, and only
//! `store` names gix. This test reads the sources and fails on the first
//! import that reaches up, naming the file, the line and both layers.

use std::fs;
use std::path::{Path, PathBuf};

/// Top to bottom. `cli` is the binary's; the rest are the library's.
const LAYERS: &[&str] = &[
    "cli", "ops", "verify", "server", "audit", "vault", "rules", "model", "crypto", "store",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer a source file belongs to (`None` for lib.rs, main.rs and the
/// test-only property module, which may see everything).
fn layer_of(src: &Path, file: &Path) -> Option<&'static str> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    LAYERS.iter().copied().find(|l| *l == name)
}

/// Every `crate::X` or `mvault::X` a line names.
fn named_layers(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["crate::", "mvault::"] {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn no_layer_imports_a_higher_one_and_only_store_names_gix() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let Some(layer) = layer_of(&src, file) else {
            continue;
        };
        let own = rank(layer).expect("a known layer");
        let text = fs::read_to_string(file).expect("read source");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for named in named_layers(code) {
                if let Some(r) = rank(&named) {
                    if r < own {
                        problems.push(format!(
                            "{}:{}: {layer} imports {named}, a higher layer",
                            file.display(),
                            i + 1
                        ));
                    }
                }
            }
            if layer != "store" && (code.contains("gix::") || code.contains("use gix")) {
                problems.push(format!(
                    "{}:{}: {layer} names gix; only store does",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    assert_eq!(named_layers("use crate::ops::register;"), vec!["ops"]);
    assert_eq!(named_layers("x = mvault::rules::Rule::ALL"), vec!["rules"]);
    assert!(named_layers("let my_crate::ops = 1;").is_empty());
    assert!(rank("ops") < rank("rules"));
}
