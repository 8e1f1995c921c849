//! Values in the module's log lines.
//!
//! A log line is read by people and by programs (fail2ban, SIEM collectors): each value the
//! module writes into one must stay one value on one line, whatever a caller typed into a
//! dialplan argument, an AMI header, a CLI command or the config file. [`escape_into`] is the
//! one function that makes a value safe; [`quoted`] and [`value`] are the two ways a line shows
//! it, and [`tokens`] and [`fields`] read a line back.
//!
//! Escaped are `"` and `\` (which delimit and escape), and every character that could end the
//! line or change how it looks: control characters (CR, LF, tab, ESC, C1 controls), the Unicode
//! line and paragraph separators, and the bidirectional formatting characters (which reorder
//! text on screen). CR, LF and tab are written as `\r`, `\n` and `\t`, others as `\u{XXXX}`:
//! the syntax of Rust's and JSON's string literals, which most readers know.
//!
//! ```
//! use deviceuser_core::logtext::{fields, quoted};
//! let user = "x\" Reason=\"ok\r\nEvent: Fake";
//! let line = format!("User={} Reason={}", quoted(user), quoted("no such user"));
//! assert_eq!(line, r#"User="x\" Reason=\"ok\r\nEvent: Fake" Reason="no such user""#);
//! assert_eq!(
//!     fields(&line).unwrap(),
//!     [("User".to_string(), user.to_string()), ("Reason".into(), "no such user".into())]
//! );
//! ```
use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` must be escaped inside a quoted value.
fn must_escape(c: char) -> bool {
    c == '"' || c == '\\' || unsafe_in_line(c)
}

/// Characters that end a line, are invisible or reorder what is shown: control characters
/// (C0, DEL, C1), U+2028/U+2029 (line and paragraph separators), and the bidirectional marks,
/// embeddings, overrides and isolates.
fn unsafe_in_line(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Appends `value` to `out` with every character that [`quoted`] must not show raw escaped:
/// `\"`, `\\`, `\r`, `\n`, `\t`, and `\u{XXXX}` for the others (see the module docs). The one
/// escaping function of the module's log lines.
pub fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if unsafe_in_line(c) => {
                let _ = write!(out, "\\u{{{:04X}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `value` escaped by [`escape_into`] (borrowed when nothing needed escaping).
pub fn escape(value: &str) -> Cow<'_, str> {
    if !value.chars().any(must_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    escape_into(&mut out, value);
    Cow::Owned(out)
}

/// A value shown in double quotes, escaped: `"x\" y"`. For fields (`User="..."`) and for
/// values a caller supplied (`no such user "..."`).
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a>(pub &'a str);

/// See [`Quoted`].
pub fn quoted(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        f.write_str(&escape(self.0))?;
        f.write_char('"')
    }
}

/// A value shown bare when it is one plain word (`4101`, `PJSIP/1000-00000007`), else as
/// [`Quoted`]. For ids and channel names, which are nearly always plain: the line reads as
/// before, and an odd one is still one value.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a>(pub &'a str);

/// See [`Value`].
pub fn value(value: &str) -> Value<'_> {
    Value(value)
}

/// A word [`tokens`] reads back as itself: not empty, nothing escaped, no space, no `=` (which
/// would make it read as a field).
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| !must_escape(c) && !c.is_whitespace() && c != '=')
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if plain(self.0) {
            f.write_str(self.0)
        } else {
            Quoted(self.0).fmt(f)
        }
    }
}

/// A whole message made safe to write as one log line: the characters [`escape_into`] writes
/// as `\r`, `\n`, `\t` or `\u{XXXX}` are escaped, quotes and backslashes are left as they are.
/// The logger's last line of defence: a message whose values went through [`quoted`] or
/// [`value`] comes out unchanged.
pub fn one_line(message: &str) -> Cow<'_, str> {
    if !message.chars().any(unsafe_in_line) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if unsafe_in_line(c) {
            escape_into(&mut out, c.encode_utf8(&mut [0; 4]));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Why a line could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A quote opened at this byte offset is never closed.
    Unterminated(usize),
    /// An escape at this byte offset is not one [`escape_into`] or Rust writes.
    BadEscape(usize),
    /// A character that must be escaped stands raw at this byte offset.
    Raw(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unterminated(at) => write!(f, "quote at byte {at} is not closed"),
            ParseError::BadEscape(at) => write!(f, "unknown escape at byte {at}"),
            ParseError::Raw(at) => write!(f, "unescaped control character at byte {at}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// One word of a line: its text with quotes removed and escapes resolved, and, when it is a
/// field (`Key="value"`, `Key=value`), the key and the value apart.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    text: String,
    field: Option<(String, String)>,
}

/// Splits a line into words as a shell does: words are separated by spaces; a double-quoted
/// part (escaped as [`escape_into`] writes, or as Rust's `{:?}` does) belongs to the word it
/// touches.
fn split(line: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| *c == ' ').is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut text = String::new();
        // Where the key ends, if the word starts with `Key=` (before any quote).
        let mut key_end: Option<usize> = None;
        let mut quoted_yet = false;
        while let Some(&(at, c)) = chars.peek() {
            if c == ' ' {
                break;
            }
            chars.next();
            if unsafe_in_line(c) {
                return Err(ParseError::Raw(at));
            }
            if c == '"' {
                quoted_yet = true;
                read_quoted(&mut chars, at, &mut text)?;
            } else {
                if c == '=' && !quoted_yet && key_end.is_none() && is_key(&text) {
                    key_end = Some(text.len());
                }
                text.push(c);
            }
        }
        let field = key_end.map(|k| (text[..k].to_string(), text[k + 1..].to_string()));
        out.push(Token { text, field });
    }
}

fn is_key(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads a quoted part whose opening quote (at byte `open`) was just consumed.
fn read_quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    open: usize,
    text: &mut String,
) -> Result<(), ParseError> {
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok(()),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(ParseError::Unterminated(open));
                };
                match e {
                    '"' | '\\' | '\'' => text.push(e),
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    '0' => text.push('\0'),
                    'u' => {
                        if chars.next().map(|(_, c)| c) != Some('{') {
                            return Err(ParseError::BadEscape(at));
                        }
                        let mut hex = String::new();
                        loop {
                            match chars.next() {
                                Some((_, '}')) => break,
                                Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 6 => {
                                    hex.push(h)
                                }
                                _ => return Err(ParseError::BadEscape(at)),
                            }
                        }
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or(ParseError::BadEscape(at))?;
                        text.push(c);
                    }
                    _ => return Err(ParseError::BadEscape(at)),
                }
            }
            c if unsafe_in_line(c) => return Err(ParseError::Raw(at)),
            c => text.push(c),
        }
    }
    Err(ParseError::Unterminated(open))
}

/// The words of a log line (of its message: Asterisk's prefix is words too), quotes removed
/// and escapes resolved: `user "a b" (x)` gives `user`, `a b`, `(x)`. A field stays one word
/// (`User="a b"` gives `User=a b`).
pub fn tokens(line: &str) -> Result<Vec<String>, ParseError> {
    Ok(split(line)?.into_iter().map(|t| t.text).collect())
}

/// The fields of a line (`Key="value"` or `Key=value` words; a key is letters, digits, `_`
/// and `-`), in order, values unescaped. Other words are skipped.
pub fn fields(line: &str) -> Result<Vec<(String, String)>, ParseError> {
    Ok(split(line)?.into_iter().filter_map(|t| t.field).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_backslashes_and_line_breaks_are_escaped() {
        assert_eq!(quoted("a\"b\\c").to_string(), r#""a\"b\\c""#);
        assert_eq!(
            quoted("7001\r\nEvent: Fake").to_string(),
            r#""7001\r\nEvent: Fake""#
        );
        assert_eq!(quoted("\t\u{1b}[31m").to_string(), r#""\t\u{001B}[31m""#);
        assert_eq!(
            quoted("\u{85}\u{2028}\u{202E}").to_string(),
            r#""\u{0085}\u{2028}\u{202E}""#
        );
        assert_eq!(quoted("").to_string(), r#""""#);
        assert_eq!(quoted("Опер 4101").to_string(), "\"Опер 4101\"");
    }

    #[test]
    fn plain_values_stay_bare_and_odd_ones_are_quoted() {
        for v in [
            "4101",
            "PJSIP/1000-00000007",
            "Local/7001@boot-phones",
            "d1",
            "Опер",
        ] {
            assert_eq!(value(v).to_string(), v);
        }
        assert_eq!(value("").to_string(), r#""""#);
        assert_eq!(value("a b").to_string(), r#""a b""#);
        assert_eq!(value("User=x").to_string(), r#""User=x""#);
        assert_eq!(value("x\"").to_string(), r#""x\"""#);
        assert_eq!(value("a\nb").to_string(), r#""a\nb""#);
    }

    #[test]
    fn a_forged_field_stays_inside_its_value() {
        let user = "x\" Reason=\"ok";
        let line = format!(
            "SecurityEvent={} Device={} User={} Reason={}",
            quoted("FailedLogin"),
            quoted("1000"),
            quoted(user),
            quoted("no such user")
        );
        assert_eq!(
            fields(&line).unwrap(),
            [
                ("SecurityEvent".to_string(), "FailedLogin".to_string()),
                ("Device".into(), "1000".into()),
                ("User".into(), user.into()),
                ("Reason".into(), "no such user".into()),
            ]
        );
    }

    #[test]
    fn words_of_free_text() {
        let line = format!(
            "UserLogin on device {}: failed login as user {} (no such user)",
            value("1000"),
            quoted("7001\r\nEvent: Fake")
        );
        assert_eq!(
            tokens(&line).unwrap(),
            [
                "UserLogin",
                "on",
                "device",
                "1000:",
                "failed",
                "login",
                "as",
                "user",
                "7001\r\nEvent: Fake",
                "(no",
                "such",
                "user)"
            ]
        );
        assert!(fields(&line).unwrap().is_empty());
    }

    #[test]
    fn rust_debug_strings_read_back() {
        let v = "a\"b\\c\n\u{7f}'";
        assert_eq!(tokens(&format!("option {v:?} is")).unwrap()[1], v);
    }

    #[test]
    fn broken_lines_are_errors() {
        assert_eq!(tokens(r#"a "b"#), Err(ParseError::Unterminated(2)));
        assert_eq!(tokens(r#"a "b\"#), Err(ParseError::Unterminated(2)));
        assert_eq!(tokens(r#""\q""#), Err(ParseError::BadEscape(1)));
        assert_eq!(tokens(r#""\u{110000}""#), Err(ParseError::BadEscape(1)));
        assert_eq!(tokens("a\rb"), Err(ParseError::Raw(1)));
        assert_eq!(tokens("\"a\nb\""), Err(ParseError::Raw(2)));
    }

    #[test]
    fn one_line_escapes_only_what_breaks_a_line() {
        assert_eq!(one_line("plain \"q\" \\"), "plain \"q\" \\");
        assert!(matches!(one_line("plain"), Cow::Borrowed(_)));
        assert_eq!(one_line("a\r\nb\u{2029}"), r"a\r\nb\u{2029}");
        let escaped = format!("user {}", quoted("a\nb"));
        assert_eq!(one_line(&escaped), escaped);
    }

    fn any_text() -> impl Strategy<Value = String> {
        // Mostly the characters that matter, some of anything.
        let special = prop::sample::select(vec![
            '"', '\\', '\r', '\n', '\t', ' ', '=', '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}',
            '\u{202E}', 'u', '{', '}', 'a', '1', 'й',
        ]);
        prop::collection::vec(prop_oneof![special, any::<char>()], 0..24)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn quoted_values_read_back_exactly(v in any_text()) {
            let shown = quoted(&v).to_string();
            prop_assert!(!shown.chars().any(unsafe_in_line));
            prop_assert_eq!(tokens(&shown).unwrap(), vec![v.clone()]);
            prop_assert_eq!(one_line(&shown), shown.as_str());
        }

        #[test]
        fn bare_or_quoted_values_read_back_exactly(v in any_text()) {
            let shown = value(&v).to_string();
            prop_assert!(!shown.chars().any(unsafe_in_line));
            prop_assert_eq!(tokens(&shown).unwrap(), vec![v.clone()]);
            prop_assert!(fields(&shown).unwrap().is_empty());
        }

        #[test]
        fn fields_read_back_exactly(a in any_text(), b in any_text(), c in any_text()) {
            let line = format!("Event {} A={} B={} tail C={}", value(&c), quoted(&a), quoted(&b), quoted(&c));
            prop_assert_eq!(
                fields(&line).unwrap(),
                vec![("A".to_string(), a), ("B".to_string(), b), ("C".to_string(), c)]
            );
        }

        #[test]
        fn one_line_leaves_no_line_break(m in any_text()) {
            let line = one_line(&m);
            prop_assert!(!line.chars().any(unsafe_in_line));
        }
    }
}
