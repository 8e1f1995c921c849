//! Editing a configuration file with Asterisk's own config engine and writer, as AMI's
//! `UpdateConfig` does: the file is loaded with its comments, sections and options are
//! changed in place (an updated option keeps its position and comments), and
//! `ast_config_text_file_save2` writes it back (`#include`d files included). The previous
//! file is kept as `<file>.bak` first.
use deviceuser_core::config::RawConfig;
use deviceuser_core::console::edit::{Kind, SectionEdit};

use super::{config, cstring, from_c};
use crate::sys;

/// A configuration file loaded for editing.
pub struct Editable {
    cfg: *mut sys::ast_config,
    file: String,
}

// SAFETY: the config is owned by this value alone and only touched through `&mut self` or
// `&self` on the thread that holds it.
unsafe impl Send for Editable {}

impl Editable {
    /// Loads `file` (relative to Asterisk's config dir) with its comments.
    pub fn load(file: &str) -> Result<Editable, String> {
        let name = cstring(file);
        let flags = sys::ast_flags {
            flags: sys::CONFIG_FLAG_WITHCOMMENTS | sys::CONFIG_FLAG_NOCACHE,
        };
        // SAFETY: valid C strings; the result is NULL, a status sentinel, or a config we own
        // until ast_config_destroy.
        let cfg =
            unsafe { sys::ast_config_load2(name.as_ptr(), c"res_deviceuser".as_ptr(), flags) };
        match cfg as isize {
            0 => Err(format!("{file} is missing")),
            -1 | -2 => Err(format!("{file} cannot be parsed")),
            _ => Ok(Editable {
                cfg,
                file: file.to_string(),
            }),
        }
    }

    /// The file as the core's raw model: what the config engine would give a `module reload`
    /// after a save (the engine does the same `;` escaping on write as it undoes on read).
    pub fn raw(&self) -> RawConfig {
        RawConfig {
            file: self.file.clone(),
            // SAFETY: a live config, owned by this value and changed only through it (`&self`
            // is held for the call).
            sections: unsafe { config::sections_of(self.cfg) },
        }
    }

    /// The category `[id]` whose `type` is the kind's (a device and a user may share an id).
    fn find(&self, kind: Kind, id: &str) -> Option<*mut sys::ast_category> {
        let mut cat: *mut sys::ast_category = std::ptr::null_mut();
        loop {
            // SAFETY: a live config; browsing from the previous category visits each once.
            cat = unsafe {
                sys::ast_category_browse_filtered(self.cfg, std::ptr::null(), cat, std::ptr::null())
            };
            if cat.is_null() {
                return None;
            }
            // SAFETY: a live category of the config.
            let (name, template) = unsafe {
                (
                    from_c(sys::ast_category_get_name(cat)),
                    sys::ast_category_is_template(cat) != 0,
                )
            };
            if template || name.as_deref() != Some(id) {
                continue;
            }
            // The last `type` wins, as when the file is read.
            let mut ty = None;
            // SAFETY: the category's variable list.
            let mut v = unsafe { sys::ast_category_first(cat) };
            while !v.is_null() {
                // SAFETY: a live element of the list.
                let (key, value, next) =
                    unsafe { (from_c((*v).name), from_c((*v).value), (*v).next) };
                if key.is_some_and(|k| k.trim().eq_ignore_ascii_case("type")) {
                    ty = value;
                }
                v = next;
            }
            if ty.is_some_and(|t| t.trim().eq_ignore_ascii_case(kind.section_type())) {
                return Some(cat);
            }
        }
    }

    /// Applies an edit: the section is created (at the end) if it does not exist.
    pub fn apply(&mut self, edit: &SectionEdit) -> Result<(), String> {
        let cat = match self.find(edit.kind, &edit.id) {
            Some(cat) => cat,
            None => {
                let (name, file) = (cstring(&edit.id), cstring(&self.file));
                // SAFETY: valid C strings (copied); line 0: no blank lines are invented.
                let cat = unsafe { sys::ast_category_new(name.as_ptr(), file.as_ptr(), 0) };
                if cat.is_null() {
                    return Err("out of memory".into());
                }
                self.append(cat, "type", edit.kind.section_type())?;
                // SAFETY: a new category, handed to the config.
                unsafe { sys::ast_category_append(self.cfg, cat) };
                cat
            }
        };
        for (key, value) in &edit.options {
            let count = count(cat, key);
            match value {
                Some(v) if count == 1 => {
                    let (k, val) = (cstring(key), cstring(v));
                    // SAFETY: a live category; the strings are copied. Keeps the option's
                    // place and comments.
                    if unsafe {
                        sys::ast_variable_update(cat, k.as_ptr(), val.as_ptr(), std::ptr::null(), 0)
                    } != 0
                    {
                        return Err(format!("cannot update {key}"));
                    }
                }
                Some(v) => {
                    delete_all(cat, key);
                    self.append(cat, key, v)?;
                }
                None => delete_all(cat, key),
            }
        }
        Ok(())
    }

    fn append(&self, cat: *mut sys::ast_category, key: &str, value: &str) -> Result<(), String> {
        let (k, v, f) = (cstring(key), cstring(value), cstring(&self.file));
        // SAFETY: valid C strings, copied into the new variable.
        let var = unsafe {
            sys::_ast_variable_new(
                k.as_ptr(),
                v.as_ptr(),
                f.as_ptr(),
                c"res_deviceuser".as_ptr(),
                c"append".as_ptr(),
                0,
            )
        };
        if var.is_null() {
            return Err("out of memory".into());
        }
        // SAFETY: a live category takes the new variable.
        unsafe { sys::ast_variable_append(cat, var) };
        Ok(())
    }

    /// Deletes the section; false if there is none.
    pub fn delete(&mut self, kind: Kind, id: &str) -> bool {
        let Some(cat) = self.find(kind, id) else {
            return false;
        };
        // SAFETY: a category of this config; Asterisk unlinks and destroys it (the value
        // returned is the previous category, still in the config).
        unsafe { sys::ast_category_delete(self.cfg, cat) };
        true
    }

    /// Copies the file on disk to `<file>.bak`, then writes the config over it.
    pub fn save(&self, generator: &str) -> Result<(), String> {
        let path = config_path(&self.file);
        let backup = format!("{path}.bak");
        std::fs::copy(&path, &backup)
            .map_err(|e| format!("cannot back {path} up to {backup}: {e}"))?;
        let (f, g) = (cstring(&self.file), cstring(generator));
        // SAFETY: a live config and valid C strings.
        let rc = unsafe { sys::ast_config_text_file_save2(f.as_ptr(), self.cfg, g.as_ptr(), 0) };
        if rc != 0 {
            return Err(format!(
                "Asterisk could not write {path} (is the file or its folder writable?); the \
                 previous file is in {backup}"
            ));
        }
        Ok(())
    }
}

impl Drop for Editable {
    fn drop(&mut self) {
        // SAFETY: the config came from ast_config_load2 and is destroyed once.
        unsafe { sys::ast_config_destroy(self.cfg) };
    }
}

/// The absolute path of a file of Asterisk's config dir.
pub fn config_path(file: &str) -> String {
    if file.starts_with('/') {
        return file.to_string();
    }
    // SAFETY: a global Asterisk sets from asterisk.conf before loading modules.
    let dir = unsafe { from_c(sys::ast_config_AST_CONFIG_DIR) }.unwrap_or_default();
    format!("{dir}/{file}")
}

fn count(cat: *mut sys::ast_category, key: &str) -> usize {
    let mut n = 0;
    // SAFETY: a live category's list.
    let mut v = unsafe { sys::ast_category_first(cat) };
    while !v.is_null() {
        // SAFETY: a live element.
        let (name, next) = unsafe { (from_c((*v).name), (*v).next) };
        if name.is_some_and(|n| n.trim().eq_ignore_ascii_case(key)) {
            n += 1;
        }
        v = next;
    }
    n
}

fn delete_all(cat: *mut sys::ast_category, key: &str) {
    let k = cstring(key);
    // SAFETY: a live category; each call removes one match (0) until none is left (-1).
    while unsafe { sys::ast_variable_delete(cat, k.as_ptr(), std::ptr::null(), std::ptr::null()) }
        == 0
    {}
}
