//! A parser for Asterisk-style config text, to go from a file's bytes to a [`RawConfig`]
//! without Asterisk.
//!
//! The module reads `res_deviceuser.conf` through Asterisk's own config engine; this parser
//! exists so that tests, the fuzzer and offline tools can feed raw text through the same
//! validation ([`Config::from_raw`](crate::Config::from_raw)). It follows the engine's rules
//! for what res_deviceuser.conf uses:
//!
//! - `[name]` starts a section; `[name](!)` is a template (not a section of its own),
//!   `[name](tpl1,tpl2)` copies the variables of earlier sections first, `[name](!,tpl)`
//!   both, and `[name](+)` adds to the last section of that name;
//! - `key = value`, `key => value`, and `key += value` (appends to the last value of `key`
//!   in the section, or sets it);
//! - `;` starts a comment, `\;` is a literal `;`, and `;-- ... --;` is a block comment that
//!   may span lines and nest;
//! - blank lines are ignored; keys, values and lines are trimmed of ASCII whitespace.
//!
//! Unlike the engine, which skips some malformed lines with a warning, every problem is an
//! error naming the line: a variable outside any section, a line without `=`, an empty key,
//! an unclosed `[`, text after a section header, an unknown template, an unterminated block
//! comment, a NUL byte, and `#include`/`#exec` (not supported here).

use std::fmt;

use crate::config::{ConfigError, RawConfig, RawSection, RawVar};

/// Parses `text` (the contents of `file`, used in messages).
pub fn parse(file: &str, text: &str) -> Result<RawConfig, ConfigError> {
    let mut p = Parser {
        file,
        sections: Vec::new(),
        templates: Vec::new(),
        current: None,
    };
    let mut depth = 0usize;
    let mut comment_start = 0u32;
    for (i, raw_line) in text.split('\n').enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if raw_line.contains('\0') {
            return Err(p.error(line, None, "line contains a NUL byte".into()));
        }
        let content = strip_comments(raw_line, &mut depth, &mut comment_start, line);
        let content = content.trim_matches(|c: char| c.is_ascii_whitespace());
        if content.is_empty() {
            continue;
        }
        p.line(line, content)?;
    }
    if depth > 0 {
        return Err(p.error(
            comment_start,
            None,
            "unterminated block comment (';--' without '--;')".into(),
        ));
    }
    p.finish();
    Ok(RawConfig {
        file: file.to_string(),
        sections: p.sections,
    })
}

/// Writes `raw` back as text that [`parse`] reads into the same sections, keys and values
/// (line numbers aside): `;` is escaped, everything else is written as is.
pub fn render(raw: &RawConfig) -> String {
    let esc = escape_semicolons;
    let mut out = String::new();
    for s in &raw.sections {
        out += &format!("[{}]\n", esc(&s.name));
        for v in &s.vars {
            out += &format!("{} = {}\n", esc(&v.key), esc(&v.value));
        }
    }
    out
}

/// `;` starts a comment (and `;--` a block comment) unless escaped as `\;`. The engine drops
/// the one backslash before a `;`, so a text's own `\;` is written `\\;`.
fn escape_semicolons(text: &str) -> String {
    text.replace(';', "\\;")
}

/// Where a piece of text is written in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Between `[` and `]` of a section header.
    SectionName,
    /// After `key = `.
    Value,
}

/// Why a text cannot be written so that Asterisk's config engine reads back exactly that text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwritable {
    /// A section name cannot be empty.
    Empty,
    /// A line break would end the line: the rest would be read as lines of their own.
    LineBreak,
    /// The engine reads C strings: a NUL ends the text.
    Nul,
    /// Other control characters: `Config::from_raw` refuses them as a corrupt file.
    ControlCharacter,
    /// U+FFFD stands for bytes that were not UTF-8: refused as a corrupt file too.
    NotUtf8,
    /// The engine trims both ends of every line and value.
    EdgeSpace,
    /// The first `]` ends a section name.
    ClosingBracket,
    /// The engine skips a line of 8,191 bytes or more (with a warning), so nothing longer
    /// than [`MAX_WRITTEN_LEN`] is written.
    TooLong,
}

/// Longest text [`escape`] writes, in bytes after escaping: well under the engine's line
/// buffer (8,192 bytes; 512 in a `LOW_MEMORY` build), key included.
pub const MAX_WRITTEN_LEN: usize = 400;

impl fmt::Display for Unwritable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unwritable::Empty => "is empty",
            Unwritable::LineBreak => "contains a line break",
            Unwritable::Nul => "contains a NUL byte",
            Unwritable::ControlCharacter => "contains a control character",
            Unwritable::NotUtf8 => "contains bytes that are not UTF-8",
            Unwritable::EdgeSpace => "starts or ends with a space",
            Unwritable::ClosingBracket => "contains ']', which would end the section name",
            Unwritable::TooLong => "is too long",
        })
    }
}

/// `text` as it must be written at `place` for Asterisk's config engine (and [`parse`]) to
/// read back exactly `text`, or why that is impossible. The one way text from elsewhere
/// (another PBX's database, say) is written into a config file: `;` is escaped; what would
/// end a line, be trimmed or be refused as a corrupt file is refused here instead. `[`, `=`
/// and `#` need nothing: they only mean something at the start of a line, where a value
/// never is.
pub fn escape(text: &str, place: Place) -> Result<String, Unwritable> {
    if text.is_empty() && place == Place::SectionName {
        return Err(Unwritable::Empty);
    }
    for c in text.chars() {
        match c {
            '\n' | '\r' => return Err(Unwritable::LineBreak),
            '\0' => return Err(Unwritable::Nul),
            '\u{FFFD}' => return Err(Unwritable::NotUtf8),
            ']' if place == Place::SectionName => return Err(Unwritable::ClosingBracket),
            c if c.is_control() => return Err(Unwritable::ControlCharacter),
            _ => {}
        }
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(Unwritable::EdgeSpace);
    }
    let escaped = escape_semicolons(text);
    if escaped.len() > MAX_WRITTEN_LEN {
        return Err(Unwritable::TooLong);
    }
    Ok(escaped)
}

/// Removes comments from one line. `depth` is the block comment nesting carried across
/// lines; `comment_start` the line where the outermost open block comment began.
fn strip_comments(line: &str, depth: &mut usize, comment_start: &mut u32, n: u32) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    // Where the last comment marker ended: a `--;` must not reuse the dashes of a `;--`.
    let mut floor = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != ';' {
            if *depth == 0 {
                out.push(c);
            }
            i += 1;
            continue;
        }
        if i > floor && chars[i - 1] == '\\' {
            // An escaped `;` is text: the backslash goes.
            if *depth == 0 {
                out.pop();
                out.push(';');
            }
            i += 1;
            floor = i;
        } else if chars.get(i + 1) == Some(&'-')
            && chars.get(i + 2) == Some(&'-')
            && chars.get(i + 3) != Some(&'-')
        {
            if *depth == 0 {
                *comment_start = n;
            }
            *depth += 1;
            i += 3;
            floor = i;
        } else if *depth > 0 && i >= floor + 2 && chars[i - 1] == '-' && chars[i - 2] == '-' {
            *depth -= 1;
            i += 1;
            floor = i;
        } else if *depth == 0 {
            break;
        } else {
            i += 1;
        }
    }
    out
}

struct Parser<'a> {
    file: &'a str,
    sections: Vec<RawSection>,
    /// Template sections (`(!)`): usable for inheritance, not part of the result.
    templates: Vec<RawSection>,
    /// The section being filled and whether it is a template.
    current: Option<(RawSection, bool)>,
}

impl Parser<'_> {
    fn error(&self, line: u32, key: Option<&str>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            section: self.current.as_ref().map(|(s, _)| s.name.clone()),
            key: key.map(str::to_string),
            line,
            message,
        }
    }

    fn finish(&mut self) {
        if let Some((s, template)) = self.current.take() {
            if template {
                self.templates.push(s);
            } else {
                self.sections.push(s);
            }
        }
    }

    /// The latest section or template named `name` defined before this line.
    fn find(&self, name: &str) -> Option<&RawSection> {
        let last_section = self.sections.iter().rposition(|s| s.name == name);
        let last_template = self.templates.iter().rposition(|s| s.name == name);
        match (last_section, last_template) {
            (None, None) => None,
            (Some(i), None) => Some(&self.sections[i]),
            (None, Some(j)) => Some(&self.templates[j]),
            // Both exist: the one defined later wins (compare header lines).
            (Some(i), Some(j)) => {
                let (s, t) = (&self.sections[i], &self.templates[j]);
                Some(if t.line > s.line { t } else { s })
            }
        }
    }

    fn line(&mut self, line: u32, content: &str) -> Result<(), ConfigError> {
        if let Some(rest) = content.strip_prefix('[') {
            return self.header(line, rest);
        }
        if content.starts_with('#') {
            let word = content.split_whitespace().next().unwrap_or("#");
            return Err(self.error(
                line,
                None,
                format!("directive '{word}' is not supported (only Asterisk's config engine reads #include and #exec)"),
            ));
        }
        let Some(eq) = content.find('=') else {
            return Err(self.error(line, None, "malformed line: expected key = value".into()));
        };
        let (mut key, mut value) = (&content[..eq], &content[eq + 1..]);
        let append = key.ends_with('+');
        if append {
            key = &key[..key.len() - 1];
        } else if let Some(v) = value.strip_prefix('>') {
            value = v;
        }
        let ws = |c: char| c.is_ascii_whitespace();
        let (key, value) = (key.trim_matches(ws), value.trim_matches(ws));
        if key.is_empty() {
            return Err(self.error(line, None, "malformed line: empty key before '='".into()));
        }
        if self.current.is_none() {
            return Err(self.error(
                line,
                Some(key),
                "key outside a section (put it under a [section] header)".into(),
            ));
        }
        let Some((section, _)) = self.current.as_mut() else {
            unreachable!("checked above")
        };
        if append {
            if let Some(v) = section.vars.iter_mut().rev().find(|v| v.key == key) {
                v.value.push_str(value);
                return Ok(());
            }
        }
        section.vars.push(RawVar {
            key: key.to_string(),
            value: value.to_string(),
            line,
        });
        Ok(())
    }

    /// `rest` is the header after its `[`.
    fn header(&mut self, line: u32, rest: &str) -> Result<(), ConfigError> {
        self.finish();
        let Some(close) = rest.find(']') else {
            return Err(self.error(line, None, "section header without closing ']'".into()));
        };
        let name = &rest[..close];
        let after = rest[close + 1..].trim_matches(|c: char| c.is_ascii_whitespace());
        let options = if after.is_empty() {
            None
        } else if let Some(inner) = after.strip_prefix('(').and_then(|a| a.strip_suffix(')')) {
            Some(inner)
        } else {
            return Err(ConfigError {
                section: Some(name.to_string()),
                ..self.error(
                    line,
                    None,
                    format!("unexpected text '{after}' after section header"),
                )
            });
        };
        let sec_error = |p: &Self, msg: String| ConfigError {
            section: Some(name.to_string()),
            ..p.error(line, None, msg)
        };
        let mut template = false;
        let mut section = RawSection {
            name: name.to_string(),
            line,
            vars: Vec::new(),
        };
        for opt in options.into_iter().flat_map(|o| o.split(',')) {
            let opt = opt.trim_matches(|c: char| c.is_ascii_whitespace());
            match opt {
                "" => {}
                "!" => template = true,
                "+" => {
                    let Some(i) = self.sections.iter().rposition(|s| s.name == name) else {
                        return Err(sec_error(
                            self,
                            format!("'(+)' adds to section [{name}], which is not defined before"),
                        ));
                    };
                    section = self.sections.remove(i);
                }
                tpl => match self.find(tpl) {
                    Some(t) => section.vars.extend(t.vars.iter().cloned()),
                    None => {
                        return Err(sec_error(
                            self,
                            format!("template [{tpl}] is not defined before this section"),
                        ))
                    }
                },
            }
        }
        self.current = Some((section, template));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(s: &RawSection) -> Vec<(&str, &str)> {
        s.vars
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect()
    }

    #[test]
    fn sections_keys_and_comments() {
        let text = "; header comment\n\n[general]\nmultiple_logins = no ; trailing\n\
                    [1000]\r\ntype=device\r\ndial => PJSIP/1000\n  description =  ARM\\; 1  \n";
        let r = parse("f.conf", text).unwrap();
        assert_eq!(r.file, "f.conf");
        assert_eq!(r.sections.len(), 2);
        assert_eq!(r.sections[0].name, "general");
        assert_eq!(r.sections[0].line, 3);
        assert_eq!(vars(&r.sections[0]), vec![("multiple_logins", "no")]);
        assert_eq!(r.sections[1].line, 5);
        assert_eq!(
            vars(&r.sections[1]),
            vec![
                ("type", "device"),
                ("dial", "PJSIP/1000"),
                ("description", "ARM; 1")
            ]
        );
        assert_eq!(r.sections[1].vars[2].line, 8);
    }

    #[test]
    fn block_comments() {
        let text = "[a]\nx = 1 ;-- start\ny = 2\n;-- nested --; still --; z = 3\nw = 4";
        let r = parse("f", text).unwrap();
        assert_eq!(
            vars(&r.sections[0]),
            vec![("x", "1"), ("z", "3"), ("w", "4")]
        );
        let e = parse("f", "[a]\n;-- open\nx = 1\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated block comment"), "{e}");
    }

    #[test]
    fn templates_inheritance_and_append() {
        let text = "[base](!)\ntype = user\nlanguage = en\n\
                    [4101](base)\npassword = 1234\n\
                    [4102](base)\nlanguage = ru\n\
                    [4101](+)\nfullname = Op\n\
                    [x](!,4102)\n[y](x)\ndesc = a\ndesc += b\nnew += c\n";
        let r = parse("f", text).unwrap();
        let names: Vec<&str> = r.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["4102", "4101", "y"]);
        assert_eq!(
            vars(&r.sections[1]),
            vec![
                ("type", "user"),
                ("language", "en"),
                ("password", "1234"),
                ("fullname", "Op")
            ]
        );
        assert_eq!(
            vars(&r.sections[0]),
            vec![("type", "user"), ("language", "en"), ("language", "ru")]
        );
        assert_eq!(
            vars(&r.sections[2]),
            vec![
                ("type", "user"),
                ("language", "en"),
                ("language", "ru"),
                ("desc", "ab"),
                ("new", "c")
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            ("x = 1\n", 1, "key outside a section"),
            ("\n[a]\nno equals sign\n", 3, "malformed line"),
            ("[a]\n = 1\n", 2, "empty key"),
            ("[a\n", 1, "without closing ']'"),
            ("[a] junk\n", 1, "unexpected text 'junk'"),
            ("[a](nosuch)\n", 1, "template [nosuch] is not defined"),
            ("[a](+)\n", 1, "'(+)' adds to section [a]"),
            ("[a]\n#include other.conf\n", 2, "directive '#include'"),
            ("[a]\nx = a\0b\n", 2, "NUL byte"),
        ] {
            let e = parse("t.conf", text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("t.conf line {line}: ")));
        }
        let e = parse("t.conf", "[sec]\nbad line\n").unwrap_err();
        assert_eq!(e.section.as_deref(), Some("sec"));
        assert_eq!(
            e.to_string(),
            "t.conf line 2: [sec] malformed line: expected key = value"
        );
    }

    #[test]
    fn render_round_trips() {
        let text = "[a\\;b]\nk\\;1 = v\\;x ; c\n[]\n[t](!)\nq = 1\n[u](t)\nx+ = y\n";
        let r = parse("f", text).unwrap();
        assert_eq!(r.sections[0].name, "a;b");
        assert_eq!(vars(&r.sections[0]), vec![("k;1", "v;x")]);
        let again = parse("f", &render(&r)).unwrap();
        assert_eq!(again.shape(), r.shape());
        assert_eq!(vars(&r.sections[2]), vec![("q", "1"), ("x+", "y")]);
    }

    #[test]
    fn escape_writes_what_reads_back_or_says_why_not() {
        let read = |name: &str, value: &str| {
            let r = parse("f", &format!("[{name}]\nk = {value}\n")).unwrap();
            (
                r.sections[0].name.clone(),
                r.sections[0].vars[0].value.clone(),
            )
        };
        for v in [
            "a;b",
            ";--x",
            "x--;",
            "a\\;b",
            "[6666]",
            "a=b",
            "#include x",
            "Иван",
            "a\\",
        ] {
            let e = escape(v, Place::Value).unwrap();
            let n = escape(v, Place::SectionName).unwrap_or_else(|_| "s".into());
            assert_eq!(read(&n, &e).1, v, "{v:?}");
            if !v.contains(']') {
                assert_eq!(read(&n, &e).0, v, "{v:?}");
            }
        }
        assert_eq!(escape("12;34", Place::Value).as_deref(), Ok("12\\;34"));
        for (v, why) in [
            ("a\nb", Unwritable::LineBreak),
            ("a\rb", Unwritable::LineBreak),
            ("a\0b", Unwritable::Nul),
            ("a\tb", Unwritable::ControlCharacter),
            ("a\u{FFFD}", Unwritable::NotUtf8),
            (" a", Unwritable::EdgeSpace),
            ("a\u{A0}", Unwritable::EdgeSpace),
        ] {
            assert_eq!(escape(v, Place::Value), Err(why), "{v:?}");
            assert_eq!(escape(v, Place::SectionName), Err(why), "{v:?}");
        }
        assert_eq!(escape("", Place::Value).as_deref(), Ok(""));
        assert_eq!(escape("", Place::SectionName), Err(Unwritable::Empty));
        assert_eq!(
            escape("a]b", Place::SectionName),
            Err(Unwritable::ClosingBracket)
        );
        assert_eq!(escape("a]b", Place::Value).as_deref(), Ok("a]b"));
        let long = ";".repeat(MAX_WRITTEN_LEN / 2 + 1);
        assert_eq!(escape(&long, Place::Value), Err(Unwritable::TooLong));
        assert_eq!(Unwritable::LineBreak.to_string(), "contains a line break");
    }

    proptest::proptest! {
        /// Whatever the text, what `escape` writes reads back as that text, as a value and as
        /// a section name, and is one line.
        #[test]
        fn escaped_text_reads_back(v in "[a-z ;\\\\\\[\\]=#\\-\n\r\t\u{0}é]{0,12}") {
            if let Ok(e) = escape(&v, Place::Value) {
                proptest::prop_assert!(!e.contains('\n'));
                let r = parse("f", &format!("[s]\nk = {e}\n")).unwrap();
                proptest::prop_assert_eq!(&r.sections[0].vars[0].value, &v);
            }
            if let Ok(n) = escape(&v, Place::SectionName) {
                let r = parse("f", &format!("[{n}]\nk = v\n")).unwrap();
                proptest::prop_assert_eq!(&r.sections[0].name, &v);
            }
        }
    }
}
