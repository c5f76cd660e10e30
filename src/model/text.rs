//! Untrusted text made safe to show: every human-readable output (the
//! hook's lines, `show`, `log`, reports) passes names, messages and
//! metadata from the record through [`escape`].

/// Escape control and non-ASCII characters so untrusted text cannot forge
/// lines or terminal escapes in anyone's output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_control_characters() {
        assert_eq!(escape("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
    }
}
