//! Names the module gives to things in Asterisk.

/// How the module's device states are named in hints: `DeviceUser:<user>`.
pub const USER_STATE_PREFIX: &str = "DeviceUser:";

/// Whether a device state name is one of the module's own (`DeviceUser:...`, any case).
pub fn is_user_state(name: &str) -> bool {
    name.get(..USER_STATE_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(USER_STATE_PREFIX))
}
