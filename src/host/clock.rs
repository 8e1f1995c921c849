//! Local time facts the core's policies need.

/// The local time zone's offset from UTC at `unix` (seconds east of UTC), from the C library
/// (`localtime_r`, which honours TZ and the zone files like Asterisk itself does).
pub fn utc_offset(unix: u64) -> i64 {
    let t = unix as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the re-entrant form.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}
