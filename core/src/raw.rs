//! A configuration file as Asterisk's config engine reads it, before any validation: the
//! shape [`crate::config`] checks and the console's sections are parsed from.

/// One `key = value` line as read by the config engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawVar {
    pub key: String,
    pub value: String,
    /// Line in the file; 0 when the config engine did not know it.
    pub line: u32,
}

/// One `[name]` section with its variables in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSection {
    pub name: String,
    /// Line of the section header; 0 when unknown.
    pub line: u32,
    pub vars: Vec<RawVar>,
}

/// A whole file as read by the config engine, before any validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    /// File name used in messages, e.g. `res_deviceuser.conf`.
    pub file: String,
    pub sections: Vec<RawSection>,
}

/// Sections with their keys and values, in order, without line numbers: what two readings
/// of the same config have in common.
pub type RawShape = Vec<(String, Vec<(String, String)>)>;

impl RawConfig {
    pub fn shape(&self) -> RawShape {
        self.sections
            .iter()
            .map(|s| {
                let vars = s
                    .vars
                    .iter()
                    .map(|v| (v.key.clone(), v.value.clone()))
                    .collect();
                (s.name.clone(), vars)
            })
            .collect()
    }
}

/// `text` cut to a length fit for a log line (hostile input is not repeated in full).
pub fn shown(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}
