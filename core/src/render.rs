//! Text for the Asterisk CLI: a header line, columns as wide as their widest cell (ids are
//! never truncated, since an administrator copies them into other commands), and a count
//! line last, like Asterisk's own "N objects found".

use crate::policy::Lockout;
use crate::stats::Stats;
use crate::table::{Binding, Snapshot};

/// Which bindings `bindings` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingFilter {
    All,
    User(String),
    Device(String),
}

fn cell(v: Option<&str>) -> &str {
    match v {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

/// Rows of cells in one text buffer: a table of 100,000 rows takes two allocations, not one
/// per cell (what an administrator's `show` costs the PBX's heap stays near the output's
/// size).
struct Grid {
    cols: usize,
    text: String,
    /// End offset in `text` of each cell, row after row.
    ends: Vec<usize>,
}

impl Grid {
    fn new(cols: usize) -> Self {
        Self {
            cols,
            text: String::new(),
            ends: Vec::new(),
        }
    }

    fn row(&mut self, cells: &[&dyn std::fmt::Display]) {
        debug_assert_eq!(cells.len(), self.cols);
        for c in cells {
            use std::fmt::Write;
            let _ = write!(self.text, "{c}");
            self.ends.push(self.text.len());
        }
    }

    fn rows(&self) -> usize {
        self.ends.len() / self.cols.max(1)
    }

    fn cells(&self, row: usize) -> impl Iterator<Item = &str> {
        (row * self.cols..(row + 1) * self.cols).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.text[start..self.ends[i]]
        })
    }
}

/// Lays out `rows` under `headers`, columns separated by two spaces, trailing blanks
/// trimmed, then "`n` `noun`(s) found".
fn table(headers: &[&str], rows: &Grid, noun: &str) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in 0..rows.rows() {
        for (w, c) in widths.iter_mut().zip(rows.cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::with_capacity(rows.text.len() + rows.ends.len() * 2 + 64);
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (c, w) in cells.zip(&widths) {
            out.push_str(c);
            out.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
        }
        out.truncate(start + out[start..].trim_end().len());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in 0..rows.rows() {
        line(&mut rows.cells(r));
    }
    let n = rows.rows();
    let plural = if n == 1 { "" } else { "s" };
    out += &format!("{n} {noun}{plural} found\n");
    out
}

/// `core show`-style list of all configured devices and who is on them.
pub fn devices(s: &Snapshot) -> String {
    let mut rows = Grid::new(6);
    for d in s.config().devices.values() {
        rows.row(&[
            &d.id,
            &cell(Some(&d.description)),
            &d.mode,
            &cell(d.default_user.as_deref()),
            &cell(s.user_on(&d.id).map(|b| b.user.as_str())),
            &cell(Some(&d.dial)),
        ]);
    }
    table(
        &[
            "Device",
            "Description",
            "Mode",
            "Default user",
            "Current user",
            "Dial",
        ],
        &rows,
        "device",
    )
}

/// All configured users and the devices they are on.
pub fn users(s: &Snapshot) -> String {
    let mut rows = Grid::new(4);
    for u in s.config().users.values() {
        rows.row(&[
            &u.id,
            &cell(Some(&u.fullname)),
            &cell(u.language.as_deref()),
            &cell(Some(&s.devices_of(&u.id).join(","))),
        ]);
    }
    table(&["User", "Name", "Language", "Devices"], &rows, "user")
}

/// Current bindings, optionally only those of one user or one device.
pub fn bindings(s: &Snapshot, now: u64, filter: BindingFilter) -> String {
    let keep = |b: &Binding| match &filter {
        BindingFilter::All => true,
        BindingFilter::User(u) => b.user == *u,
        BindingFilter::Device(d) => b.device == *d,
    };
    let mut rows = Grid::new(4);
    for b in s.bindings().into_iter().filter(|b| keep(b)) {
        rows.row(&[
            &b.user,
            &b.device,
            &format_utc(b.since),
            &format_duration(now.saturating_sub(b.since)),
        ]);
    }
    table(
        &["User", "Device", "Logged in since", "Duration"],
        &rows,
        "binding",
    )
}

/// [`stats_with_lockout`] without lockouts.
pub fn stats(stats: &Stats, s: &Snapshot, now: u64, user: Option<&str>) -> String {
    stats_with_lockout(stats, s, &Lockout::new(), now, user)
}

/// Login statistics of the users who logged in since the module was loaded, are logged in
/// now, or are locked out; or of one user (`user`, shown even without any; none found if it
/// is not configured). "Restored" are the logins put back from AstDB at load; "Time logged
/// in" is the ended sessions plus the open ones up to `now` (summed over devices); "Current
/// session" is the age of the user's oldest current binding, `-` when they are on no
/// device; "Locked out" the time left of a lockout after wrong PINs.
pub fn stats_with_lockout(
    stats: &Stats,
    s: &Snapshot,
    lockout: &Lockout,
    now: u64,
    user: Option<&str>,
) -> String {
    let mut rows = Grid::new(6);
    for u in s.config().users.values() {
        if user.is_some_and(|want| u.id != want) {
            continue;
        }
        let st = stats.user(&u.id);
        let (mut open_sum, mut open_max) = (0u64, None::<u64>);
        for b in s.devices_of(&u.id).into_iter().filter_map(|d| s.user_on(d)) {
            let age = now.saturating_sub(b.since);
            open_sum = open_sum.saturating_add(age);
            open_max = open_max.max(Some(age));
        }
        let locked = lockout.locked_for(&u.id, now);
        if user.is_none() && st.is_none() && open_max.is_none() && locked.is_none() {
            continue;
        }
        let total = st.map_or(0, |st| st.total_secs).saturating_add(open_sum);
        rows.row(&[
            &u.id,
            &st.map_or(0, |st| st.logins),
            &st.map_or(0, |st| st.restored),
            &format_duration(total),
            &open_max.map_or_else(|| "-".to_string(), format_duration),
            &locked.map_or_else(
                || "-".to_string(),
                |left| format!("{} left", format_duration(left)),
            ),
        ]);
    }
    table(
        &[
            "User",
            "Logins",
            "Restored",
            "Time logged in",
            "Current session",
            "Locked out",
        ],
        &rows,
        "user",
    )
}

/// Everything about one user (`deviceuser show user <id>`): settings, where they are logged
/// in, statistics since the load, and whether they can log in from a phone (a password, no
/// lockout). `None` if the user is not configured. The password itself is never shown.
pub fn user(s: &Snapshot, stats: &Stats, lockout: &Lockout, now: u64, id: &str) -> Option<String> {
    let u = s.config().user(id)?;
    let devices = s.devices_of(&u.id);
    let st = stats.user(&u.id).cloned().unwrap_or_default();
    let (mut open_sum, mut open_max) = (0u64, None::<u64>);
    for b in devices.iter().filter_map(|d| s.user_on(d)) {
        let age = now.saturating_sub(b.since);
        open_sum = open_sum.saturating_add(age);
        open_max = open_max.max(Some(age));
    }
    let password = match u.password.as_deref() {
        None => "none: cannot log in from a phone (UserLogin sets NOPASSWORD)".to_string(),
        Some(p) if crate::password::is_hash(p) => "set (hashed)".to_string(),
        Some(_) => "set".to_string(),
    };
    let locked = match lockout.locked_for(&u.id, now) {
        None => "no".to_string(),
        Some(left) => format!(
            "yes, {} left (deviceuser unlock user {})",
            format_duration(left),
            u.id
        ),
    };
    let lines: [(&str, String); 11] = [
        ("User", u.id.to_string()),
        ("Name", u.fullname.to_string()),
        ("Caller ID number", u.cid_number.to_string()),
        ("Language", cell(u.language.as_deref()).to_string()),
        ("Password", password),
        ("Devices", cell(Some(&devices.join(","))).to_string()),
        (
            "Do not disturb",
            if s.dnd(&u.id) { "on" } else { "off" }.to_string(),
        ),
        (
            "Logins",
            format!(
                "{} since the module was loaded, {} restored at load",
                st.logins, st.restored
            ),
        ),
        (
            "Time logged in",
            format_duration(st.total_secs.saturating_add(open_sum)),
        ),
        (
            "Current session",
            open_max.map_or_else(|| "-".to_string(), format_duration),
        ),
        ("Locked out", locked),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in lines {
        out += &format!("{:<width$} {v}\n", format!("{k}:"));
    }
    Some(out)
}

/// The answer to `deviceuser unlock user <id>` (CLI and AMI), from what
/// [`Lockout::unlock`] returned.
pub fn unlocked(user: &str, left: Option<u64>) -> String {
    match left {
        Some(left) => format!(
            "User {user} unlocked ({} of the lockout were left)",
            format_duration(left)
        ),
        None => format!("User {user} was not locked out"),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC. Uses Howard Hinnant's days-to-civil algorithm, so no
/// date crate and no time zone database are needed.
pub fn format_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let rem = unix % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Compact duration: `45s`, `3m07s`, `1h02m03s`, `2d04h00m09s`.
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sample;
    use crate::table::{BindingTable, LoginMode};

    fn table_with_login() -> BindingTable {
        let t = BindingTable::new(sample(), 1_700_000_000);
        t.login("101", "1000", LoginMode::Admin, 1_700_000_100, |_| {})
            .unwrap();
        t
    }

    #[test]
    fn utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31 23:59:59");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29 23:59:59");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(187), "3m07s");
        assert_eq!(format_duration(3723), "1h02m03s");
        assert_eq!(format_duration(2 * 86_400 + 4 * 3600 + 9), "2d04h00m09s");
    }

    #[test]
    fn devices_table() {
        let t = table_with_login();
        let out = devices(&t.snapshot());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "Device  Description  Mode   Default user  Current user  Dial"
        );
        assert_eq!(
            lines[1],
            "1000    1000         adhoc  -             101           PJSIP/1000"
        );
        assert_eq!(
            lines[3],
            "2010    2010         fixed  2010          2010          PJSIP/2010"
        );
        assert_eq!(*lines.last().unwrap(), "4 devices found");
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn users_table() {
        let t = table_with_login();
        let out = users(&t.snapshot());
        assert_eq!(
            out,
            "User  Name  Language  Devices\n\
             100   100   -         lobby\n\
             101   101   -         1000\n\
             2010  2010  -         2010\n\
             3 users found\n"
        );
    }

    #[test]
    fn bindings_table_and_filters() {
        let t = table_with_login();
        let s = t.snapshot();
        let now = 1_700_003_823;
        let out = bindings(&s, now, BindingFilter::User("101".into()));
        assert_eq!(
            out,
            "User  Device  Logged in since      Duration\n\
             101   1000    2023-11-14 22:15:00  1h02m03s\n\
             1 binding found\n"
        );
        assert!(bindings(&s, now, BindingFilter::All).ends_with("3 bindings found\n"));
        assert!(bindings(&s, now, BindingFilter::Device("lobby".into())).contains("\n100 "));
        assert_eq!(
            bindings(&s, now, BindingFilter::Device("none".into())),
            "User  Device  Logged in since  Duration\n0 bindings found\n"
        );
    }

    #[test]
    fn stats_table() {
        let t = BindingTable::new(sample(), 1000);
        // Before anyone logs in: only the users on their default devices; a named user is
        // shown anyway.
        let fresh = stats(&Stats::new(), &t.snapshot(), 1060, None);
        assert!(!fresh.contains("\n101 "), "{fresh}");
        assert!(fresh.ends_with("\n2 users found\n"), "{fresh}");
        assert!(stats(&Stats::new(), &t.snapshot(), 1060, Some("101"))
            .contains("\n101   0       0         0s              -                -\n"));
        let mut st = Stats::new();
        let c = t
            .login("101", "1000", LoginMode::Admin, 1100, |_| {})
            .unwrap();
        st.apply(&c, 1100);
        let c = t
            .logout_device("1000", crate::Reason::Manual, 1400, |_| {})
            .unwrap();
        st.apply(&c, 1400);
        let c = t
            .login("101", "1001", LoginMode::Admin, 1500, |_| {})
            .unwrap();
        st.apply(&c, 1500);
        let s = t.snapshot();
        let out = stats(&st, &s, 4723, None);
        assert_eq!(
            out,
            "User  Logins  Restored  Time logged in  Current session  Locked out\n\
             100   0       0         1h02m03s        1h02m03s         -\n\
             101   2       0         58m43s          53m43s           -\n\
             2010  0       0         1h02m03s        1h02m03s         -\n\
             3 users found\n"
        );
        let out = stats(&Stats::new(), &s, 4723, Some("101"));
        assert_eq!(
            out,
            "User  Logins  Restored  Time logged in  Current session  Locked out\n\
             101   0       0         53m43s          53m43s           -\n\
             1 user found\n"
        );
        let c = t
            .logout_device("1001", crate::Reason::Manual, 1600, |_| {})
            .unwrap();
        st.apply(&c, 1600);
        let out = stats(&st, &t.snapshot(), 4723, Some("101"));
        assert!(
            out.contains("\n101   2       0         6m40s           -                -\n"),
            "{out}"
        );
        assert!(stats(&st, &s, 0, Some("nobody")).ends_with("\n0 users found\n"));
    }

    #[test]
    fn stats_show_restored_logins_and_lockouts() {
        let t = BindingTable::new(sample(), 1000);
        let mut st = Stats::new();
        let (c, _) = t.restore(vec![crate::Binding::new("101", "1000", 400)], 1000, |_| {});
        st.apply(&c, 1000);
        st.restored(&c);
        let g = crate::General {
            max_login_failures: 1,
            ..crate::General::default()
        };
        let mut lockout = Lockout::new();
        assert!(lockout.failure("100", 1000, &g));
        let out = stats_with_lockout(&st, &t.snapshot(), &lockout, 1060, None);
        assert_eq!(
            out,
            "User  Logins  Restored  Time logged in  Current session  Locked out\n\
             100   0       0         1m00s           1m00s            4m00s left\n\
             101   0       1         11m00s          11m00s           -\n\
             2010  0       0         1m00s           1m00s            -\n\
             3 users found\n"
        );
        // Every binding of `show bindings` that is not a device's default is restored or a
        // login.
        let s = t.snapshot();
        let not_default = s
            .bindings()
            .into_iter()
            .filter(|b| {
                s.config()
                    .device(&b.device)
                    .unwrap()
                    .default_user
                    .as_deref()
                    != Some(b.user.as_str())
            })
            .count() as u64;
        assert_eq!(not_default, st.restored_total());
    }

    #[test]
    fn one_user_in_full() {
        let t = BindingTable::new(sample(), 1000);
        let mut st = Stats::new();
        let c = t
            .login("101", "1000", LoginMode::Admin, 1100, |_| {})
            .unwrap();
        st.apply(&c, 1100);
        t.set_dnd("101", true).unwrap();
        let mut lockout = Lockout::new();
        let out = user(&t.snapshot(), &st, &lockout, 1160, "101").unwrap();
        assert_eq!(
            out,
            "User:             101\n\
             Name:             101\n\
             Caller ID number: 101\n\
             Language:         -\n\
             Password:         set\n\
             Devices:          1000\n\
             Do not disturb:   on\n\
             Logins:           1 since the module was loaded, 0 restored at load\n\
             Time logged in:   1m00s\n\
             Current session:  1m00s\n\
             Locked out:       no\n"
        );
        assert!(!out.contains("4321"), "never the PIN");
        // 2010 has no password; 100 is locked out.
        let out = user(&t.snapshot(), &st, &lockout, 1160, "2010").unwrap();
        assert!(
            out.contains("Password:         none: cannot log in from a phone"),
            "{out}"
        );
        let g = crate::General {
            max_login_failures: 1,
            ..crate::General::default()
        };
        assert!(lockout.failure("100", 1160, &g));
        let out = user(&t.snapshot(), &st, &lockout, 1170, "100").unwrap();
        assert!(
            out.contains("Locked out:       yes, 4m50s left (deviceuser unlock user 100)\n"),
            "{out}"
        );
        assert_eq!(user(&t.snapshot(), &st, &lockout, 1170, "nobody"), None);

        assert_eq!(
            unlocked("100", lockout.unlock("100", 1170)),
            "User 100 unlocked (4m50s of the lockout were left)"
        );
        assert_eq!(
            unlocked("100", lockout.unlock("100", 1170)),
            "User 100 was not locked out"
        );
    }

    #[test]
    fn long_ids_widen_columns() {
        let mut rows = Grid::new(2);
        rows.row(&[&"a".repeat(70), &"x"]);
        rows.row(&[&"b", &""]);
        rows.row(&[&"", &""]);
        let out = table(&["Id", "V"], &rows, "thing");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("Id{}V", " ".repeat(70)));
        assert_eq!(lines[1], format!("{}  x", "a".repeat(70)));
        assert_eq!(lines[2], "b");
        // A row of empty cells is an empty line: it never swallows the line before it.
        assert_eq!(lines[3], "");
        assert_eq!(lines[4], "3 things found");
        assert_eq!(cell(Some("")), "-");
    }
}
