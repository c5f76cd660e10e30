//! A fine-tune that changes one shard of eight stores one shard: unchanged
//! files reuse the earlier version's git blob, locally and on the remote.

use std::path::Path;

use crate::common::*;

const SHARD: u64 = 4 * MIB;
const SHARDS: u64 = 8;

fn shard_name(i: u64) -> String {
    format!("model-{:05}-of-{SHARDS:05}.safetensors", i + 1)
}

fn objects_size(repo: &Path) -> u64 {
    let objects = if repo.join(".git").is_dir() {
        repo.join(".git/objects")
    } else {
        repo.join("objects")
    };
    dir_size(&objects)
}

#[test]
fn one_changed_shard_of_eight_grows_the_store_by_about_one_shard() {
    let vault = Vault::with_remote();
    let v1 = vault.path("v1");
    for i in 0..SHARDS {
        write_pseudo_random(&v1.join(shard_name(i)), SHARD, 100 + i);
    }
    write_file(&v1.join("config.json"), b"{\"layers\": 24}\n");
    vault.add(&v1, "nlp/llm", "1.0.0", &[]).success();

    let v2 = vault.path("v2");
    for i in 0..SHARDS {
        let seed = if i == 3 { 999 } else { 100 + i };
        write_pseudo_random(&v2.join(shard_name(i)), SHARD, seed);
    }
    write_file(&v2.join("config.json"), b"{\"layers\": 24}\n");

    let local_before = objects_size(&vault.repo);
    let remote_before = objects_size(vault.remote());
    vault
        .add(&v2, "nlp/llm", "1.1.0", &["--parent", "1.0.0"])
        .success();
    let local_growth = objects_size(&vault.repo) - local_before;
    let remote_growth = objects_size(vault.remote()) - remote_before;
    let limit = SHARD + SHARD / 2;
    assert!(
        local_growth < limit,
        "local object store grew by {local_growth} bytes for one changed {SHARD}-byte shard \
         (limit {limit})"
    );
    assert!(
        remote_growth < limit,
        "remote object store grew by {remote_growth} bytes for one changed {SHARD}-byte shard \
         (limit {limit})"
    );

    // Reuse is by git object id, so stock git sees it too: every part of
    // an unchanged shard is the object 1.0.0 stored.
    let m1 = vault.manifest(&vault.repo, "nlp/llm", "1.0.0");
    let m2 = vault.manifest(&vault.repo, "nlp/llm", "1.1.0");
    for i in 0..SHARDS {
        let name = shard_name(i);
        let f2 = m2
            .files
            .iter()
            .find(|f| f.path == name)
            .expect("shard in 1.1.0");
        let f1 = m1
            .files
            .iter()
            .find(|f| f.path == name)
            .expect("shard in 1.0.0");
        assert!(!f2.parts.is_empty());
        for p in &f2.parts {
            let v2_oid = vault.git_ok(
                &vault.repo,
                &["rev-parse", &part_rev("nlp/llm", "1.1.0", &p.sha256)],
            );
            let v1_oid = vault.git(
                &vault.repo,
                &[
                    "rev-parse",
                    "-q",
                    "--verify",
                    &part_rev("nlp/llm", "1.0.0", &p.sha256),
                ],
            );
            if i == 3 {
                assert!(
                    !f1.parts.iter().any(|q| q.sha256 == p.sha256),
                    "the changed shard kept a part"
                );
                v1_oid.failure();
            } else {
                assert_eq!(
                    v1_oid.success().stdout().trim(),
                    v2_oid,
                    "{name} was re-encrypted instead of reused"
                );
            }
        }
    }

    // And the new version still comes back whole.
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/llm@1.1.0", &out)
        .success();
    assert_same_tree(&v2, &out);
}

#[test]
fn identical_files_within_a_version_share_one_blob() {
    let vault = Vault::new();
    let model = vault.path("model");
    write_pseudo_random(&model.join("a.bin"), 2 * MIB, 1);
    write_pseudo_random(&model.join("copy/a.bin"), 2 * MIB, 1);
    vault.add(&model, "nlp/twins", "1.0.0", &[]).success();
    let m = vault.manifest(&vault.repo, "nlp/twins", "1.0.0");
    let parts: Vec<Vec<String>> = m
        .files
        .iter()
        .map(|f| f.parts.iter().map(|p| p.sha256.clone()).collect())
        .collect();
    assert_eq!(parts[0], parts[1], "the two copies have other parts");
    let blobs = vault.git_ok(
        &vault.repo,
        &["ls-tree", "--name-only", "refs/mvault/data/nlp/twins/1.0.0"],
    );
    let mut distinct = parts[0].clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(blobs.lines().count(), distinct.len(), "payload:\n{blobs}");
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/twins@1.0.0", &out)
        .success();
    assert_same_tree(&model, &out);
}

/// A safetensors-like file: an 8-byte header length, a JSON header naming
/// `tensors` tensors of `size` bytes each, then their data.
fn safetensors(path: &Path, tensors: u64, size: u64, changed: &[u64], extra_name: bool) {
    let mut header = String::from("{");
    let count = tensors + u64::from(extra_name);
    for t in 0..count {
        if t > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"layer.{t}.weight\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            size / 4,
            t * size,
            (t + 1) * size
        ));
    }
    header.push('}');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let dir = path.parent().expect("a directory");
    std::fs::create_dir_all(dir).unwrap();
    for t in 0..count {
        let seed = if changed.contains(&t) { 10_000 + t } else { t };
        let tensor = dir.join(format!(".tensor-{t}"));
        write_pseudo_random(&tensor, size, seed);
        bytes.extend(std::fs::read(&tensor).unwrap());
        std::fs::remove_file(&tensor).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Ciphertext bytes of the parts `version` added that `earlier` did not
/// have, from the two manifests.
fn new_part_bytes(vault: &Vault, earlier: &str, version: &str) -> u64 {
    let old = vault.manifest(&vault.repo, "nlp/ft", earlier);
    let new = vault.manifest(&vault.repo, "nlp/ft", version);
    let known: std::collections::BTreeSet<String> = old
        .files
        .iter()
        .flat_map(|f| f.parts.iter().map(|p| p.sha256.clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    new.files
        .iter()
        .flat_map(|f| f.parts.iter())
        .filter(|p| !known.contains(&p.sha256) && seen.insert(p.sha256.clone()))
        .map(|p| p.blob_size)
        .sum()
}

/// A fine-tune that rewrites three tensors in the middle of one large
/// safetensors file stores the changed region plus at most one part per
/// change boundary; one whose header grows (every tensor shifts) still
/// stores little more than the header's part, thanks to content-defined
/// cut points.
#[test]
fn a_fine_tune_of_a_few_tensors_stores_about_the_changed_region() {
    const TENSOR: u64 = 2 * MIB;
    const TENSORS: u64 = 24;
    const PART: u64 = MIB;
    let vault = Vault::new();
    let part_size = PART.to_string();
    let extra = ["--part-size", part_size.as_str()];
    let v1 = vault.path("ft-1/model.safetensors");
    safetensors(&v1, TENSORS, TENSOR, &[], false);
    vault
        .add(v1.parent().unwrap(), "nlp/ft", "1.0.0", &extra)
        .success();
    // Tensors 10, 11 and 13: two changed regions.
    let v2 = vault.path("ft-2/model.safetensors");
    safetensors(&v2, TENSORS, TENSOR, &[10, 11, 13], false);
    let mut args = extra.to_vec();
    args.extend(["--parent", "1.0.0"]);
    vault
        .add(v2.parent().unwrap(), "nlp/ft", "1.1.0", &args)
        .success();
    let changed = 3 * TENSOR;
    let grown = new_part_bytes(&vault, "1.0.0", "1.1.0");
    let boundaries = 4; // two regions, two edges each
    assert!(
        grown <= changed + boundaries * (PART + PART / 50),
        "1.1.0 stored {grown} new bytes for {changed} changed bytes"
    );
    // A header that grows shifts every tensor: still about one part.
    let v3 = vault.path("ft-3/model.safetensors");
    safetensors(&v3, TENSORS, TENSOR, &[], true);
    let mut args = extra.to_vec();
    args.extend(["--parent", "1.0.0"]);
    vault
        .add(v3.parent().unwrap(), "nlp/ft", "1.2.0", &args)
        .success();
    let grown = new_part_bytes(&vault, "1.0.0", "1.2.0");
    // The new tensor's own bytes, plus the parts around the header.
    assert!(
        grown <= TENSOR + 3 * (PART + PART / 50),
        "1.2.0 stored {grown} new bytes for a grown header and one new tensor"
    );
    let out = vault.path("out");
    vault
        .pull_in(&vault.repo, &vault.alice, "nlp/ft@1.2.0", &out)
        .success();
    assert_same_file(&v3, &out.join("model.safetensors"));
}
