//! `pip install mvault`: the wheel maturin builds from this repository
//! (pyproject.toml) installs into a fresh virtual environment with the
//! binary on its PATH and the typed module `mvault`; a model written with
//! safetensors and numpy is registered, promoted, pulled by stage and
//! compared through Python (tests/python/wheel_roundtrip.py).
//!
//! Needs python3 with venv, maturin on PATH, and the wheels of numpy and
//! safetensors in `target/python-wheels` (no network in the test): `.ci/run`
//! installs and downloads them; by hand:
//!     python3 -m pip install maturin
//!     python3 -m pip download -d target/python-wheels numpy safetensors

use std::path::{Path, PathBuf};

use crate::common::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo and rustup keep their state: the hermetic HOME of the test
/// environment has neither.
fn toolchain_env(cmd: &mut std::process::Command) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, default) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        match std::env::var_os(var) {
            Some(v) => {
                cmd.env(var, v);
            }
            None => {
                if let Some(h) = &home {
                    cmd.env(var, h.join(default));
                }
            }
        }
    }
    // A target directory of its own: maturin builds the binary without the
    // dev-dependencies' features, so in the tests' own directory it would
    // relink target/release/mvault while other tests run it.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    cmd.env("CARGO_TARGET_DIR", target.join("wheel"));
}

fn need(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{} is missing: {what} (.ci/run does this)",
        path.display()
    );
}

#[test]
fn the_wheel_installs_and_registers_promotes_and_pulls_a_safetensors_model_from_python() {
    let vault = Vault::with_remote();
    let wheels = repo_root().join("target/python-wheels");
    need(
        &wheels,
        "download numpy's and safetensors' wheels with `python3 -m pip download -d target/python-wheels numpy safetensors`",
    );

    // 1. The wheel, built by maturin from pyproject.toml (in
    //    target/wheel, kept between runs).
    let dist = vault.path("dist");
    let mut build = vault.command("maturin");
    build
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .arg("--out")
        .arg(&dist);
    toolchain_env(&mut build);
    let run = vault.run(build);
    assert!(
        run.status.success(),
        "maturin build failed (install it with `python3 -m pip install maturin`): {}\n{}",
        run.what,
        String::from_utf8_lossy(&run.stderr)
    );
    let wheel = std::fs::read_dir(&dist)
        .expect("maturin's output directory")
        .map(|e| e.expect("dir entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("maturin built a .whl");

    // 2. A fresh virtual environment, filled from local wheels only.
    let venv = vault.path("venv");
    let mut mk = vault.command("python3");
    mk.args(["-m", "venv"]).arg(&venv);
    vault.run(mk).success();
    let mut pip = vault.command(venv.join("bin/python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
    ])
    .arg(&wheels)
    .arg(&wheel)
    .args(["numpy", "safetensors"]);
    vault.run(pip).success();
    assert!(
        venv.join("bin/mvault").is_file(),
        "the wheel did not install the mvault program into the environment"
    );

    // 3. The round trip, through Python only.
    let work = vault.path("py");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut py = vault.command(venv.join("bin/python"));
    py.arg(repo_root().join("tests/python/wheel_roundtrip.py"))
        .arg(&vault.repo)
        .arg(&vault.alice.private)
        .arg(&work);
    let run = vault.run(py).success();
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("python wheel round trip: ok"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
}
