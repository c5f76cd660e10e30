//! Review: pushes the hook should refuse but (at the time of writing)
//! accepts. Each test asserts the correct behaviour (a refusal), so it
//! fails while the bypass exists. Hostile objects are built with stock git
//! plumbing (`cat-file`, `hash-object --literally`, `commit-tree -S`,
//! `tag -s`) and stock `age`.

use std::path::Path;

use crate::common::*;
use crate::hook_server::*;

const MAIN: &str = "refs/heads/main";

/// One raw tree entry: mode, name, object id (binary).
type RawEntry = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The entries of tree `rev` in `dir`, exactly as stored.
fn raw_tree(s: &Server, dir: &Path, rev: &str) -> Vec<RawEntry> {
    let bytes = s.git(dir, &["cat-file", "tree", rev]).success().stdout;
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let sp = i + bytes[i..].iter().position(|b| *b == b' ').expect("mode");
        let nul = sp + bytes[sp..].iter().position(|b| *b == 0).expect("name");
        out.push((
            bytes[i..sp].to_vec(),
            bytes[sp + 1..nul].to_vec(),
            bytes[nul + 1..nul + 21].to_vec(),
        ));
        i = nul + 21;
    }
    out
}

/// Writes the entries as a tree, verbatim (`--literally`: no fsck, no
/// sorting, duplicates kept), and returns its id.
fn write_raw_tree(s: &Server, dir: &Path, entries: &[RawEntry]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(mode);
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(id);
    }
    let cmd = s.git_command(
        dir,
        &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
    );
    s.run_with_input(cmd, &bytes)
        .success()
        .stdout()
        .trim()
        .to_owned()
}

fn hex_id(id: &[u8]) -> String {
    hex::encode(id)
}

fn bin_id(hex_str: &str) -> Vec<u8> {
    hex::decode(hex_str.trim()).expect("hex id")
}

/// Tree `rev` with the entry `path` (slash-separated, every parent a tree)
/// replaced by `edit` applied to the entries of the tree at `path`'s
/// parent; returns the new root tree id.
fn edit_tree_at(
    s: &Server,
    dir: &Path,
    tree: &str,
    path: &[&str],
    edit: &mut dyn FnMut(&mut Vec<RawEntry>),
) -> String {
    let mut entries = raw_tree(s, dir, tree);
    match path.split_first() {
        None => edit(&mut entries),
        Some((first, rest)) => {
            let e = entries
                .iter_mut()
                .find(|e| e.1 == first.as_bytes())
                .expect("path component exists");
            let sub = edit_tree_at(s, dir, &hex_id(&e.2), rest, edit);
            e.2 = bin_id(&sub);
        }
    }
    write_raw_tree(s, dir, &entries)
}

/// In the tree at `path`, puts a second entry named `name` pointing at
/// `evil` right before the genuine one, which stays.
fn shadow_entry(
    s: &Server,
    dir: &Path,
    root: &str,
    path: &[&str],
    name: &str,
    evil: &str,
) -> String {
    edit_tree_at(s, dir, root, path, &mut |entries| {
        let at = entries
            .iter()
            .position(|e| e.1 == name.as_bytes())
            .expect("entry to shadow");
        let mode = entries[at].0.clone();
        entries.insert(at, (mode, name.as_bytes().to_vec(), bin_id(evil)));
    })
}

/// Replaces HEAD of `clone` (on main) by a commit with HEAD's parent and
/// message and tree `tree`, signed by `key` with stock `commit-tree -S`.
fn recommit_head(s: &Server, clone: &Path, key: &Key, tree: &str) -> String {
    let message = s.git_ok(clone, &["log", "-1", "--format=%B", "HEAD"]);
    let msg_file = s.path("review-msg.txt");
    write_file(&msg_file, format!("{message}\n").as_bytes());
    let mut cmd = s.git_signing_command(
        clone,
        key,
        &[
            "commit-tree",
            "-S",
            "-p",
            "HEAD~1",
            "-F",
            path_str(&msg_file),
            tree,
        ],
    );
    as_key_owner(&mut cmd, key);
    let commit = s.run(cmd).success().stdout().trim().to_owned();
    s.git_ok(clone, &["update-ref", "refs/heads/main", &commit]);
    commit
}

/// Writes `bytes` as a blob in `dir`; returns its id.
fn blob(s: &Server, dir: &Path, bytes: &[u8]) -> String {
    let cmd = s.git_command(dir, &["hash-object", "-w", "--stdin"]);
    s.run_with_input(cmd, bytes)
        .success()
        .stdout()
        .trim()
        .to_owned()
}

/// Pushes and asserts the hook refused it (any rule) and no ref moved;
/// `consequence` describes what landed when it did not refuse.
#[track_caller]
fn assert_refused(
    s: &Server,
    dir: &Path,
    pusher: &str,
    args: &[&str],
    refname: &str,
    consequence: impl FnOnce() -> String,
) {
    let before = s.server_refs();
    let run = s.push(dir, Some(pusher), args);
    if run.status.success() {
        panic!(
            "BYPASS: the hook accepted the push of {refname} by {pusher}.\n{}\n--- push stderr ---\n{}",
            consequence(),
            run.stderr()
        );
    }
    let want = format!("mvault: refused {refname}:");
    assert!(
        run.stderr().contains(&want),
        "expected {want:?}; stderr:\n{}",
        run.stderr()
    );
    assert_eq!(s.server_refs(), before, "a ref moved although refused");
    // The rule the hook named, named again by pre-push and audit verify.
    let stderr = run.stderr();
    let rest = &stderr[stderr.find(&want).expect("checked above") + want.len()..];
    let rule = rest
        .trim_start()
        .split(": ")
        .next()
        .unwrap_or_default()
        .to_owned();
    s.same_rule_everywhere(dir, Some(pusher), args, &rule);
}

/// Candidate: a tree with two entries of the same name. The hook's tree
/// diff keeps the LAST of two same-named entries (BTreeMap collect), while
/// gix path lookups (`Store::entry`/`read_path`, hence `policy_at_commit`)
/// and git itself resolve a path to the FIRST. A registration of a new
/// version that also carries a shadow `.mvault` (with a policy making
/// mallory admin) placed before the genuine one diffs as "only the new
/// version", is accepted, and the policy in force from then on is the
/// shadow one.
#[test]
fn shadowed_policy_in_a_duplicate_tree_entry_is_refused() {
    let s = Server::with_version();
    // The hook's own check, with git's fsck (which refuses this too) off.
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let policy = String::from_utf8(s.git_show_bytes(&clone, "HEAD:.mvault/policy.toml"))
        .expect("utf-8 policy");
    let evil_policy = format!(
        "{}\n[users.mallory]\nkeys = [\"{}\"]\n",
        policy.replacen(
            "[[grants]]",
            "[[grants]]\nuser = \"mallory\"\nrole = \"ml_admin\"\nmodels = \"**\"\n\n[[grants]]",
            1
        ),
        s.mallory.public_line()
    );
    let evil_policy_blob = blob(&s, &clone, evil_policy.as_bytes());
    let mvault_tree = s.git_ok(&clone, &["rev-parse", "HEAD:.mvault"]);
    let evil_mvault = edit_tree_at(&s, &clone, &mvault_tree, &[], &mut |entries| {
        let e = entries
            .iter_mut()
            .find(|e| e.1 == b"policy.toml")
            .expect("policy.toml");
        e.2 = bin_id(&evil_policy_blob);
    });
    let root = s.git_ok(&clone, &["rev-parse", "HEAD^{tree}"]);
    let tree = shadow_entry(&s, &clone, &root, &[], ".mvault", &evil_mvault);
    recommit_head(&s, &clone, &s.alice, &tree);
    assert_refused(&s, &clone, "alice", &["origin", "main"], MAIN, || {
        let served = s.git(&s.bare, &["cat-file", "blob", "main:.mvault/policy.toml"]);
        // Follow-up: mallory, admin only in the shadow policy, drops the
        // genuine .mvault (a "policy change" to the shadow policy), signs
        // the commit with her own key and pushes it as herself.
        let base = s.git_ok(&s.bare, &["rev-parse", "main"]);
        s.git_ok(&clone, &["fetch", "-q", "origin"]);
        let mut entries = raw_tree(&s, &clone, &format!("{base}^{{tree}}"));
        let second = entries
            .iter()
            .rposition(|e| e.1 == b".mvault")
            .expect(".mvault");
        entries.remove(second);
        let tree = write_raw_tree(&s, &clone, &entries);
        let msg = s.path("mallory-msg.txt");
        write_file(&msg, policy_message("mallory").as_bytes());
        let mut cmd = s.git_signing_command(
            &clone,
            &s.mallory,
            &[
                "commit-tree",
                "-S",
                "-p",
                &base,
                "-F",
                path_str(&msg),
                &tree,
            ],
        );
        as_key_owner(&mut cmd, &s.mallory);
        let commit = s.run(cmd).success().stdout().trim().to_owned();
        let follow = s.push(
            &clone,
            Some("mallory"),
            &["origin", &format!("{commit}:refs/heads/main")],
        );
        format!(
            "the server's main:.mvault/policy.toml is now:\n{}\nmallory's own policy push then: {}\n{}",
            served.stdout(),
            if follow.status.success() { "ACCEPTED" } else { "refused" },
            follow.stderr()
        )
    });
}

/// Same root cause, used to rewrite a published version: a registration of
/// nlp/bert@2.0.0 whose `models/nlp/bert` tree holds a shadow `1.0.0`
/// (with an edited manifest) before the genuine one.
#[test]
fn shadowed_published_version_in_a_duplicate_tree_entry_is_refused() {
    let s = Server::with_version();
    // The hook's own check, with git's fsck (which refuses this too) off.
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let path = "models/nlp/bert/1.0.0";
    let mut manifest = s.git_show_bytes(&clone, &format!("HEAD:{path}/manifest.toml"));
    manifest.extend_from_slice(b"# rewritten after publication\n");
    let evil_manifest = blob(&s, &clone, &manifest);
    let v1 = s.git_ok(&clone, &["rev-parse", &format!("HEAD:{path}")]);
    let evil_v1 = edit_tree_at(&s, &clone, &v1, &[], &mut |entries| {
        let e = entries
            .iter_mut()
            .find(|e| e.1 == b"manifest.toml")
            .expect("manifest.toml");
        e.2 = bin_id(&evil_manifest);
    });
    let root = s.git_ok(&clone, &["rev-parse", "HEAD^{tree}"]);
    let tree = shadow_entry(
        &s,
        &clone,
        &root,
        &["models", "nlp", "bert"],
        "1.0.0",
        &evil_v1,
    );
    recommit_head(&s, &clone, &s.alice, &tree);
    assert_refused(&s, &clone, "alice", &["origin", "main"], MAIN, || {
        let served = s.git(
            &s.bare,
            &["cat-file", "blob", &format!("main:{path}/manifest.toml")],
        );
        format!(
            "the server's main:{path}/manifest.toml now ends with:\n{}",
            served.stdout().lines().last().unwrap_or_default()
        )
    });
}

/// Candidate: a model named `<model>/<version>/<x>` puts its version
/// directory inside a published version directory. The "name collision"
/// check only looks for `manifest.toml` directly in the new model's own
/// directory. carol, a developer on `nlp/bert/**` only (no role on
/// nlp/bert), adds files to nlp/bert@1.0.0's directory.
#[test]
fn model_nested_inside_a_published_version_is_refused() {
    let s = Server::with_version();
    let carol = s.keygen("carol");
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "add-user",
            "carol",
            "--key-file",
            &pub_arg(&carol),
        ],
    )
    .success();
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy",
            "grant",
            "carol",
            "--role",
            "developer",
            "--models",
            "nlp/bert/**",
        ],
    )
    .success();
    let clone = s.stock_clone("carol-clone");
    let before = s.git_ok(&s.bare, &["rev-parse", "main:models/nlp/bert/1.0.0"]);
    let model = s.model(5);
    s.mvault_as(
        &clone,
        &carol,
        None,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert/1.0.0/extra",
            "--version",
            "1.0.0",
            "--no-push",
        ],
    )
    .success();
    assert_refused(&s, &clone, "carol", &["origin", "main"], MAIN, || {
        let after = s.git_ok(&s.bare, &["rev-parse", "main:models/nlp/bert/1.0.0"]);
        let listing = s.git_ok(
            &s.bare,
            &[
                "ls-tree",
                "-r",
                "--name-only",
                "main",
                "models/nlp/bert/1.0.0",
            ],
        );
        format!("nlp/bert@1.0.0's directory was {before}, is now {after}:\n{listing}")
    });
}

/// Candidate: a registration tag on a commit that is not on main. The
/// "tag target" check compares only the version directory's tree id at the
/// target, its (first) parent, and main; an unsigned root commit holding
/// the same version directory next to arbitrary other content passes.
#[test]
fn registration_tag_on_a_commit_outside_main_is_refused() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    s.push(&clone, Some("alice"), &["origin", "main"]).success();
    let dir = "models/nlp/bert/2.0.0";
    let v2 = s.git_ok(&clone, &["rev-parse", &format!("HEAD:{dir}")]);
    s.git_ok(&clone, &["read-tree", "--empty"]);
    s.git_ok(&clone, &["read-tree", &format!("--prefix={dir}/"), &v2]);
    s.stage(
        &clone,
        ".mvault/policy.toml",
        b"schema = 1\n# not the vault's policy\n",
        "100644",
    );
    s.stage(
        &clone,
        "OFF-MAIN.txt",
        b"this commit is not on main\n",
        "100644",
    );
    let tree = s.git_ok(&clone, &["write-tree"]);
    let orphan = s.git_ok(&clone, &["commit-tree", "-m", "off main", &tree]);
    s.git_ok(&clone, &["read-tree", "HEAD"]);
    let digest = sha256_hex(&s.git_show_bytes(&clone, &format!("HEAD:{dir}/manifest.toml")));
    let message = format!(
        "register nlp/bert@2.0.0\n\nMvault-Action: register\nMvault-Model: nlp/bert\nMvault-Version: 2.0.0\nMvault-Manifest-Sha256: {digest}\n"
    );
    s.sign_tag(&clone, &s.alice, "nlp/bert@v2.0.0", &orphan, &message);
    let tag = "refs/tags/nlp/bert@v2.0.0";
    assert_refused(&s, &clone, "alice", &["origin", tag], tag, || {
        let target = s.git_ok(&s.bare, &["rev-parse", &format!("{tag}^{{commit}}")]);
        let on_main = s
            .git(&s.bare, &["merge-base", "--is-ancestor", &target, "main"])
            .status
            .success();
        format!("{tag} points at {target} (on main: {on_main}), an unsigned root commit")
    });
}

/// Candidate: the key ring check compares the SET of 4-byte stanza tags with
/// the readers' tags, and a tag is only a hint written by the encryptor.
/// alice registers a new model whose ring (real plaintext) is wrapped to
/// the readers and, in one more stanza, to mallory, whose stanza carries
/// alice's tag: the set of tags equals the readers'.
#[test]
fn key_ring_wrapped_to_a_non_reader_under_a_reader_tag_is_refused() {
    let s = Server::with_version();
    let clone = s.stock_clone("c");
    let model = s.model(6);
    s.mvault_as(
        &clone,
        &s.alice,
        None,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/gpt",
            "--version",
            "1.0.0",
            "--no-push",
        ],
    )
    .success();
    let ring_path = ".mvault/keys/nlp/gpt.age";
    let sealed = s.git_show_bytes(&clone, &format!("HEAD:{ring_path}"));
    let sealed_file = s.path("ring.age");
    write_file(&sealed_file, &sealed);
    // The ring's plaintext, opened by alice (a reader) with stock age.
    let mut dec = s.command("age");
    dec.args(["-d", "-i"])
        .arg(&s.alice.private)
        .arg(&sealed_file);
    let plain = s.run(dec).success().stdout;
    // Original stanza tags, to find the readers' and reuse alice's.
    let tag_of = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .take_while(|l| !l.starts_with("---"))
            .filter_map(|l| l.strip_prefix("-> ssh-ed25519 "))
            .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    };
    let reader_tags = tag_of(&sealed);
    // Re-seal to the same readers plus mallory, with stock age.
    let mut enc = s.command("age");
    enc.args(["-e"]);
    for k in [&s.admin, &s.alice, &s.bob, &s.mallory] {
        enc.arg("-R").arg(&k.public);
    }
    let resealed = s.run_with_input(enc, &plain).success().stdout;
    let tags = tag_of(&resealed);
    let mallory_tag = tags
        .iter()
        .find(|t| !reader_tags.contains(t))
        .expect("mallory's stanza")
        .clone();
    assert!(
        reader_tags.len() == tags.len() - 1,
        "readers {reader_tags:?}, resealed {tags:?}"
    );
    let spoofed = String::from_utf8_lossy(&resealed).replacen(
        &format!("-> ssh-ed25519 {mallory_tag} "),
        &format!("-> ssh-ed25519 {} ", reader_tags[0]),
        1,
    );
    // age's header is ASCII up to the payload; splice bytes, not text.
    let header_end = resealed
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("header end");
    let mut forged = spoofed.as_bytes()[..header_end].to_vec();
    forged.extend_from_slice(&resealed[header_end..]);
    assert_eq!(forged.len(), resealed.len());
    s.rewrite_head(&clone, Some(&s.alice), |c| {
        s.stage(c, ring_path, &forged, "100644");
    });
    assert_refused(&s, &clone, "alice", &["origin", "main"], MAIN, || {
        format!(
            "{ring_path} on the server carries a stanza wrapped to mallory's key under tag {}",
            reader_tags[0]
        )
    });
}

/// Candidate: a tree entry whose NAME contains '/'. The hook's diff joins
/// names with '/', so a top-level entry named `models/nlp/bert/2.0.0`
/// diffs exactly like the real version directory, while path lookups (and
/// git) do not find the version at `models/nlp/bert/2.0.0`. The commit is
/// accepted as "register nlp/bert@2.0.0", the tree holds no such version,
/// and main now has a path no git client can check out.
#[test]
fn tree_entry_named_with_slashes_is_refused() {
    let s = Server::with_version();
    // The hook's own check, with git's fsck (which refuses this too) off.
    hook_only(&s);
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let v2 = s.git_ok(&clone, &["rev-parse", "HEAD:models/nlp/bert/2.0.0"]);
    let parent_root = s.git_ok(&clone, &["rev-parse", "HEAD~1^{tree}"]);
    let mut entries = raw_tree(&s, &clone, &parent_root);
    entries.push((
        b"40000".to_vec(),
        b"models/nlp/bert/2.0.0".to_vec(),
        bin_id(&v2),
    ));
    let tree = write_raw_tree(&s, &clone, &entries);
    recommit_head(&s, &clone, &s.alice, &tree);
    assert_refused(&s, &clone, "alice", &["origin", "main"], MAIN, || {
        let real = s.git(
            &s.bare,
            &["rev-parse", "--verify", "-q", "main:models/nlp/bert/2.0.0"],
        );
        let top = s.git_ok(&s.bare, &["ls-tree", "main"]);
        format!(
            "main:models/nlp/bert/2.0.0 resolves: {}; the root tree of main is:\n{top}",
            real.status.success()
        )
    });
}

/// `hook install` turns on `receive.fsckObjects`, which refuses malformed
/// trees before the hook runs; these tests turn it off to show the hook's
/// own check holds without it.
fn hook_only(s: &Server) {
    s.git_ok(&s.bare, &["config", "receive.fsckObjects", "false"]);
}

/// With the settings `hook install` leaves, git's own fsck refuses a tree
/// with duplicate entries before the hook even runs; no ref moves.
#[test]
fn installed_server_refuses_duplicate_tree_entries_in_git_fsck() {
    let s = Server::with_version();
    let clone = s.prepared("c", &s.alice, "2.0.0");
    let root = s.git_ok(&clone, &["rev-parse", "HEAD^{tree}"]);
    let mvault_tree = s.git_ok(&clone, &["rev-parse", "HEAD:.mvault"]);
    let tree = shadow_entry(&s, &clone, &root, &[], ".mvault", &mvault_tree);
    recommit_head(&s, &clone, &s.alice, &tree);
    let before = s.git_ok(&s.bare, &["for-each-ref"]);
    let mut cmd = s.git_command(&clone, &["push", "origin", "main"]);
    cmd.env("MVAULT_USER", "alice");
    let run = s.run(cmd);
    assert!(
        !run.status.success(),
        "the push must be refused: {}",
        run.output()
    );
    assert!(
        run.stderr().contains("duplicateEntries"),
        "{}",
        run.output()
    );
    assert_eq!(s.git_ok(&s.bare, &["for-each-ref"]), before);
}
