//! Parsing of dialplan application arguments and of digits collected from the caller.

/// Splits `data` the way Asterisk's `AST_STANDARD_APP_ARGS` does for simple cases: on
/// commas, each argument trimmed. Empty middle arguments stay as `""` so positions keep their
/// meaning (`DeviceLogin(,1000)`); a blank string means no arguments at all.
pub fn split_args(data: &str) -> Vec<String> {
    if data.trim().is_empty() {
        return Vec::new();
    }
    data.split(',').map(|a| a.trim().to_string()).collect()
}

/// Validates digits entered on the keypad (user id or PIN). Only 0-9 are accepted: `*` and
/// `#` are keys a caller presses by mistake or to end input, and no id or PIN contains them.
pub fn parse_digits(input: &str, max_len: usize) -> Result<String, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("empty input".into());
    }
    if let Some(c) = input.chars().find(|c| !c.is_ascii_digit()) {
        return Err(match c {
            '*' | '#' => format!("'{c}' is not allowed, digits only"),
            _ => format!("invalid character {c:?}, digits only"),
        });
    }
    if input.len() > max_len {
        return Err(format!("too long: at most {max_len} digits"));
    }
    Ok(input.to_string())
}

/// An on/off value given by an administrator or the dialplan (DND): `1`/`0`, `on`/`off`,
/// `yes`/`no`, `true`/`false`, any case.
pub fn parse_on_off(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert!(split_args("").is_empty());
        assert!(split_args("   ").is_empty());
        assert_eq!(split_args("1000"), vec!["1000"]);
        assert_eq!(split_args(" a , ,b,"), vec!["a", "", "b", ""]);
        assert_eq!(split_args(",x"), vec!["", "x"]);
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits("0123", 4), Ok("0123".into()));
        assert_eq!(parse_digits(" 12 ", 4), Ok("12".into()));
        assert_eq!(parse_digits("", 4), Err("empty input".into()));
        assert!(parse_digits("12*", 4).unwrap_err().contains("'*'"));
        assert!(parse_digits("#", 4).unwrap_err().contains("'#'"));
        assert!(parse_digits("1a", 4).unwrap_err().contains("'a'"));
        assert!(parse_digits("12345", 4).unwrap_err().contains("at most 4"));
    }

    #[test]
    fn on_off_values() {
        for v in ["1", "on", "YES", " true "] {
            assert_eq!(parse_on_off(v), Some(true), "{v}");
        }
        for v in ["0", "Off", "no", "false"] {
            assert_eq!(parse_on_off(v), Some(false), "{v}");
        }
        for v in ["", "2", "maybe", "onn"] {
            assert_eq!(parse_on_off(v), None, "{v}");
        }
    }
}
