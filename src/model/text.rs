//! Untrusted text on its way to a terminal.
//!
//! Metadata, comments, reasons, tag messages and names come from whoever
//! wrote the repository or runs the server. Printed raw, an escape sequence
//! in them can recolour, hide or rewrite what the reader sees, and a newline
//! or a bidirectional override can forge a line. Every human-readable output
//! passes such text through [`escape`]; JSON output is escaped by serde.

/// Show control and invisible formatting characters visibly (`\u{1b}`,
/// `\n`), keep every other printable character, non-ASCII included.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Serialised JSON with the hidden characters serde leaves raw (C1
/// controls such as U+009B, an 8-bit CSI; bidirectional and zero-width
/// characters) written as `\uXXXX` escapes: the same JSON value, safe to
/// print. Such characters only occur inside JSON strings, where an escape
/// means the character itself.
pub fn json_hide_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_hidden(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` would act on the terminal or hide itself rather than show:
/// C0 and C1 controls, DEL, and the Unicode format characters that
/// reorder or hide text (zero-width, bidirectional controls, BOM, tags).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_characters_are_shown() {
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("x\u{202e}y\u{200b}"), "x\\u{202e}y\\u{200b}");
        assert_eq!(escape("café ✓ nlp/bert@1.0.0"), "café ✓ nlp/bert@1.0.0");
    }

    #[test]
    fn json_keeps_its_value_and_loses_raw_controls() {
        let v = serde_json::json!({"r": "a\u{9b}2J\u{202e}x\u{e0041}é"});
        let safe = json_hide_controls(&serde_json::to_string(&v).unwrap());
        assert!(!safe.chars().any(is_hidden), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }
}
