//! `Mvault-*` trailers: the typed facts a commit or tag message carries.
//! One parser for every reader (hook, audit, client), so a message means
//! the same thing everywhere.

/// The `Mvault-*` trailers of a message, in order: lines `Key: value`
/// whose key starts with `Mvault-` and holds no space.
pub fn trailers(message: &str) -> Vec<(String, String)> {
    message
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| k.starts_with("Mvault-") && !k.contains(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The single value of trailer `key`: `None` when absent or repeated.
pub fn trailer<'a>(t: &'a [(String, String)], key: &str) -> Option<&'a str> {
    let mut it = t.iter().filter(|(k, _)| k == key);
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(first.1.as_str())
}

/// Every value of trailer `key`, in order.
pub fn all<'a>(t: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    t.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_trailers_have_no_single_value() {
        let t = trailers("x\n\nMvault-A: 1\nMvault-A: 2\nMvault-B: 3\nNot-Mvault: 4\n");
        assert_eq!(trailer(&t, "Mvault-A"), None);
        assert_eq!(trailer(&t, "Mvault-B"), Some("3"));
        assert_eq!(all(&t, "Mvault-A"), vec!["1", "2"]);
        assert_eq!(trailer(&t, "Not-Mvault"), None);
    }
}
