//! Text a caller sent, shown back safely: cut to a sane length, and in XML only the characters
//! XML 1.0 allows.

use std::borrow::Cow;

/// Characters of a caller's value shown in a message or a log line; the rest is cut.
pub const ECHO_CHARS: usize = 100;

/// The most characters of a `sub_msg`, whatever it quotes.
pub const SUB_MSG_CHARS: usize = 512;

/// `value` for a message or a log line: at most [`ECHO_CHARS`] characters, and when cut, how long
/// it was (a 50 KB `app_key` must not come back whole, nor fill the log).
pub fn echo(value: &str) -> Cow<'_, str> {
    cut(value, ECHO_CHARS)
}

/// At most `max` characters of `s`, marked `…(N bytes)` when cut.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}…({} bytes)", &s[..end], s.len())),
    }
}

/// Whether XML 1.0 allows `c` in text: tab, newline, carriage return, and everything from space
/// up except U+FFFE and U+FFFF (Rust strings hold no surrogates).
pub fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// `s` with every character XML 1.0 forbids replaced by U+FFFD: an answer quoting a control
/// character a caller sent must still parse.
pub fn xml_safe(s: &str) -> Cow<'_, str> {
    if s.chars().all(xml_allows) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if xml_allows(c) { c } else { '\u{FFFD}' })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_echoed_whole_and_long_ones_cut_with_their_length() {
        assert_eq!(echo("12345678"), "12345678");
        let long = "k".repeat(50_000);
        let shown = echo(&long);
        assert_eq!(shown.chars().filter(|c| *c == 'k').count(), ECHO_CHARS);
        assert!(shown.ends_with("…(50000 bytes)"), "{shown}");
        let wide = "借".repeat(200);
        assert!(echo(&wide).starts_with(&"借".repeat(100)));
    }

    #[test]
    fn characters_xml_forbids_are_replaced_and_the_rest_kept() {
        assert_eq!(
            xml_safe("a\u{1}b\u{0}c\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(xml_safe("tab\tnl\ncr\r 借 😀"), "tab\tnl\ncr\r 借 😀");
        assert!(matches!(xml_safe("plain"), Cow::Borrowed(_)));
    }
}
