//! The path rules: what a file of a version may be called. `add` checks
//! them on the way in, the manifest parser and the hook on every record,
//! and `pull` before it writes, because a path lands in a reader's
//! directory and possibly in a git work tree.

use std::collections::BTreeMap;

/// The maximum length of a file path in a manifest.
pub const MAX_PATH_LEN: usize = 4096;

/// The path rule, quoted in refusals.
pub const PATH_RULE: &str = "a relative '/'-separated UTF-8 path without empty, '.' or '..' components, backslashes or control characters, at most 4096 bytes; no component that git or a file system treats as '.git' (any letter case, 8.3 short names like GIT~1, trailing dots or spaces, ':' streams, HFS+ ignorable code points)";

/// Check one relative file path; `Err` holds the reason.
///
/// A path lands in a reader's directory, and possibly in a git work tree, so
/// beyond the plain rules each component is refused when git or a file
/// system would read it as something else (see [`check_component`]).
pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("path too long");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\\') {
        return Err("backslash in path");
    }
    if path.chars().any(|c| c.is_control()) {
        return Err("control character in path");
    }
    path.split('/').try_for_each(check_component)
}

/// The code points HFS+ ignores when it compares names (git's
/// `is_hfs_dotgit` list): `.gi\u{200c}t` is `.git` on a Mac.
pub fn is_hfs_ignorable(c: char) -> bool {
    matches!(c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// One path component, against the rules that stop a version from writing
/// into a reader's `.git` (CVE-2014-9390 and CVE-2019-1353 style names):
/// 1. empty, `.` and `..` (a walk out of the directory);
/// 2. `:` anywhere (NTFS alternate data streams, `.git::$INDEX_ALLOCATION`);
/// 3. a trailing dot or space (NTFS drops them: `.git.` is `.git`);
/// 4. `.git` in any letter case once HFS+ ignorable code points are dropped;
/// 5. `git~N`, the 8.3 short name NTFS gives `.git`.
fn check_component(comp: &str) -> Result<(), &'static str> {
    // 1.
    match comp {
        "" => return Err("empty path component"),
        "." | ".." => return Err("'.' or '..' component"),
        _ => {}
    }
    // 2.
    if comp.contains(':') {
        return Err(
            "':' in a component (an NTFS alternate data stream, as in .git::$INDEX_ALLOCATION)",
        );
    }
    // 3.
    if comp.ends_with('.') || comp.ends_with(' ') {
        return Err("a component ends with a dot or a space (NTFS drops them, so .git. is .git)");
    }
    // 4. and 5.
    if is_dotgit_name(comp) {
        return Err("a '.git' component (in any letter case, as an 8.3 short name like GIT~1, or with HFS+ ignorable code points) would write into a git repository's metadata");
    }
    Ok(())
}

/// Check one path component (a tree entry name) against the names git
/// or a file system treats specially; `Err` holds the reason.
pub fn validate_component(name: &str) -> Result<(), &'static str> {
    check_component(name)
}

/// Whether some file system would open `comp` as `.git`: HFS+ ignorable
/// code points dropped, an NTFS stream suffix (`:…`) and trailing dots and
/// spaces cut, then `.git` or its 8.3 short name `git~N`, in any case.
pub fn is_dotgit_name(comp: &str) -> bool {
    let visible: String = comp.chars().filter(|c| !is_hfs_ignorable(*c)).collect();
    let base = visible.split(':').next().unwrap_or_default();
    let base = base.trim_end_matches(['.', ' ']);
    base.eq_ignore_ascii_case(".git") || is_dotgit_short_name(base)
}

/// `git~N` in any letter case: what NTFS may call `.git` in 8.3 form.
fn is_dotgit_short_name(comp: &str) -> bool {
    let lower = comp.to_ascii_lowercase();
    lower
        .strip_prefix("git~")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The form under which two names are the same file on a case-insensitive
/// or normalising file system (APFS, HFS+, NTFS): NFC, case folded, NFC again.
pub fn fold_name(path: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = path.nfc().collect();
    nfc.to_lowercase().nfc().collect()
}

/// Check that no two paths collide when case is folded or Unicode is
/// normalised (they would overwrite each other on a case-insensitive or
/// normalising file system), nor is a path a directory prefix of another
/// (again under folding).
pub fn check_path_set<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let mut folded: BTreeMap<String, &str> = BTreeMap::new();
    for p in paths {
        if let Some(prev) = folded.insert(fold_name(p), p) {
            let how = if prev.to_lowercase() == p.to_lowercase() {
                "differ only in case"
            } else {
                "are the same name under Unicode normalisation (NFC/NFD) and case folding"
            };
            return Err(format!("{prev:?} and {p:?} {how}"));
        }
    }
    // Every directory a path runs through must not also be a file. Looking
    // each one up, rather than comparing neighbours in sorted order, also
    // catches `a` and `a/b` with `a.bin` sorted between them.
    for f in folded.keys() {
        for (slash, _) in f.match_indices('/') {
            if let Some(file) = folded.get(&f[..slash]) {
                return Err(format!("{file:?} is both a file and a directory"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        for bad in ["", "/abs", "a/../b", "a\\b", "a//b", "./a", "a\u{7}b"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        validate_path("weights/shard-00001.safetensors").unwrap();
        assert!(check_path_set(["A.bin", "a.bin"]).is_err());
        assert!(check_path_set(["A/x", "a"]).is_err());
        assert!(check_path_set(["a", "a/b"]).is_err());
        check_path_set(["a", "ab", "a.b/c"]).unwrap();
    }

    #[test]
    fn names_git_or_a_file_system_reads_as_dot_git_are_refused() {
        for bad in [
            ".git/config",
            "sub/.GIT/hooks/post-checkout",
            ".Git",
            "git~1/config",
            "GIT~2",
            ".git./config",
            ".git /config",
            "a.",
            "a ",
            ".git::$INDEX_ALLOCATION/config",
            "weights.bin:stream",
            ".gi\u{200c}t/config",
            "\u{feff}.git",
            ".g\u{202e}it",
            ".\u{206a}GIT",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        for dotgit in [".GIT", ".git.", ".git ::$DATA", "Git~1", ".gi\u{200d}t"] {
            assert!(is_dotgit_name(dotgit), "{dotgit:?}");
        }
        for good in [
            ".gitmodules",
            ".gitignore",
            "git",
            "git~x",
            ".github/x",
            "a.b",
            "my.git.bin",
        ] {
            validate_path(good).unwrap();
        }
    }

    #[test]
    fn names_equal_under_normalisation_collide() {
        let nfc = "caf\u{e9}.bin";
        let nfd = "cafe\u{301}.bin";
        assert!(check_path_set([nfc, nfd]).is_err());
        assert!(check_path_set(["CAF\u{c9}.bin", nfd]).is_err());
        check_path_set([nfc, "cafe.bin"]).unwrap();
    }

    #[test]
    fn path_set_catches_a_file_that_is_a_directory_with_a_sibling_sorted_between() {
        // '.' and '-' sort before '/', so `a` and `a/b` were not neighbours.
        assert!(check_path_set(["a", "a-x", "a/b"]).is_err());
        assert!(check_path_set(["model", "model.json", "model/weights.bin"]).is_err());
        assert!(check_path_set(["x/a", "x/a.b", "x/a/c"]).is_err());
        // Case folded, as on a case-insensitive file system.
        assert!(check_path_set(["A", "a/b"]).is_err());
        check_path_set(["a.b", "a-x", "ab/c"]).unwrap();
    }
}
