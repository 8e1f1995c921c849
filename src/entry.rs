//! The entry layer: what Asterisk calls. `load`, `unload` and `reload` (called by the C
//! shim, whose header cbindgen makes from this file), and the tables of everything the
//! module registers — applications, dialplan functions, CLI commands, AMI actions and the
//! device state provider — each entry naming its handler in the feature modules. The one
//! root of the loaded module is here; every callback reaches it through [`instance`].
use std::os::raw::{c_int, c_void};
use std::sync::Arc;

use snapcell::SnapshotCell;

use crate::host::ari::event_source;
use crate::host::devstate::provider::{state_provider, Provider};
use crate::host::http::{self, http_uri};
use crate::host::prometheus::metrics_source;
use crate::host::register::{
    self, application, cli_command, function, manager_action, AmiAction, App, CliCommand, Function,
    ModuleHandle,
};
use crate::host::{guard, log};
use crate::instance::{Instance, PROVIDER_LABEL};
use crate::{ami, apps, cli, console, functions, metrics, policy};

/// The loaded module; empty while not loaded. Read lock-free on the device state path. A
/// static that owns nothing once emptied: statics are not dropped at `dlclose`.
static ROOT: SnapshotCell<Instance> = SnapshotCell::empty();

/// The loaded module, if it is.
fn instance() -> Option<Arc<Instance>> {
    ROOT.get()
}

static APPLICATIONS: [App; 2] = [
    application!(instance, c"UserLogin", apps::login),
    application!(instance, c"UserLogout", apps::logout),
];

static FUNCTIONS: [Function; 5] = [
    function!(instance, c"DEVICEUSER_DIAL", read = functions::dial),
    function!(instance, c"DEVICEUSER_USER", read = functions::user),
    function!(instance, c"DEVICEUSER_ALLOWED", read = functions::allowed),
    function!(
        instance,
        c"DEVICEUSER_EMERGENCY_CID",
        read = functions::emergency_cid
    ),
    function!(
        instance,
        c"DEVICEUSER",
        read = functions::field,
        write = functions::set_field
    ),
];

static CLI_COMMANDS: [CliCommand; 10] = [
    cli_command!(
        instance,
        c"deviceuser show devices",
        c"Show configured hot-desking devices",
        c"Usage: deviceuser show devices\n       Lists the configured devices: id, description, mode (adhoc or fixed),\n       default user, the user logged in now, and dial string.\n",
        run = cli::show_devices,
        complete = cli::no_completion
    ),
    cli_command!(
        instance,
        c"deviceuser show users",
        c"Show configured hot-desking users",
        c"Usage: deviceuser show users\n       Lists the configured users: id, name, language and the devices they are\n       logged in on.\n",
        run = cli::show_users,
        complete = cli::no_completion
    ),
    cli_command!(
        instance,
        c"deviceuser show user",
        c"Show everything about one user",
        c"Usage: deviceuser show user <id>\n       Shows a user's settings (name, caller ID, language, whether a password\n       is set: a user without one cannot log in from a phone), the devices\n       they are logged in on, DND, their login statistics since the module\n       was loaded, and whether they are locked out after wrong PINs (with\n       the time left).\n",
        run = cli::show_user,
        complete = cli::complete_show_user
    ),
    cli_command!(
        instance,
        c"deviceuser show bindings",
        c"Show which user is logged in on which device",
        c"Usage: deviceuser show bindings [user <id>|device <id>]\n       Lists who is logged in where, one row per user and device, with the\n       login time (UTC) and how long ago it was.\n",
        run = cli::show_bindings,
        complete = cli::complete_show_bindings
    ),
    cli_command!(
        instance,
        c"deviceuser login",
        c"Log a user in on a device",
        c"Usage: deviceuser login <user> <device>\n       Logs a user in on a device as an administrator (no PIN needed).\n       The rules of logins from phones apply: a fixed device refuses, a user\n       on the device is logged off, multiple_logins decides a second device.\n",
        run = cli::login,
        complete = cli::complete_login
    ),
    cli_command!(
        instance,
        c"deviceuser logout",
        c"Log a device, a user or everyone out",
        c"Usage: deviceuser logout {device <id>|user <id>|all}\n       Logs out the user of a device, a user from every device, or everyone.\n       A device goes back to its default user when someone else is logged out;\n       the default user's own logout leaves it empty. 'all' leaves every adhoc\n       device empty (no device goes back to its default user); a fixed device\n       always keeps its user.\n",
        run = cli::logout,
        complete = cli::complete_logout
    ),
    cli_command!(
        instance,
        c"deviceuser dnd",
        c"Turn a user's do-not-disturb on or off",
        c"Usage: deviceuser dnd <user> {on|off}\n       Turns a user's do-not-disturb on or off. While it is on, the user's\n       DeviceUser:<user> state is BUSY (BLF keys show it) and the sample dialplan\n       sends callers to the busy/voicemail path instead of ringing.\n",
        run = cli::dnd,
        complete = cli::complete_dnd
    ),
    cli_command!(
        instance,
        c"deviceuser unlock user",
        c"Lift a user's lockout after wrong PINs",
        c"Usage: deviceuser unlock user <id>\n       Lifts the lockout of a user locked out after max_login_failures wrong\n       PINs, and forgets the wrong PINs counted so far, so the user can log\n       in from a phone at once. 'deviceuser show stats' lists locked users.\n",
        run = cli::unlock,
        complete = cli::complete_unlock
    ),
    cli_command!(
        instance,
        c"deviceuser show stats",
        c"Show login statistics per user",
        c"Usage: deviceuser show stats [user <id>|summary]\n       Logins per user since the module was loaded: number of logins, logins\n       restored from AstDB at load, time logged in (finished and current\n       sessions), the current session, and the time left of a lockout after\n       wrong PINs. Without a user: the users who logged in since the load,\n       are logged in now or are locked out, then the module's counters:\n       restored logins, locked-out users, the heap memory it holds, how many\n       devices' states it follows (the bound ones), its queued commit work,\n       the states it published, how often Asterisk asked the provider.\n       'summary' prints the counters alone.\n",
        run = cli::show_stats,
        complete = cli::complete_show_stats
    ),
    cli_command!(
        instance,
        c"deviceuser import freepbx",
        c"Import FreePBX Device & User data from AstDB",
        c"Usage: deviceuser import freepbx [apply]\n       Reads FreePBX's Device & User keys from AstDB (AMPUSER/<user>/...,\n       DEVICE/<device>/type|user|default_user|dial) and prints the equivalent\n       res_deviceuser.conf sections and the current logins. Nothing is written\n       unless 'apply' is given: then the current FreePBX logins are applied to\n       devices and users that exist in res_deviceuser.conf.\n",
        run = cli::import_freepbx,
        complete = cli::complete_import
    ),
];

static AMI_ACTIONS: [AmiAction; 7] = [
    manager_action!(instance, c"DeviceUserLogin", ami::login),
    manager_action!(instance, c"DeviceUserLogout", ami::logout),
    manager_action!(instance, c"DeviceUserBindings", ami::bindings),
    manager_action!(instance, c"DeviceUserDevices", ami::devices),
    manager_action!(instance, c"DeviceUserUsers", ami::users),
    manager_action!(instance, c"DeviceUserDND", ami::dnd),
    manager_action!(instance, c"DeviceUserUnlock", ami::unlock),
];

/// The administration console, under `http.conf`'s prefix. Longer URIs are matched first:
/// the live feed's before the subtree of the page and the API.
static HTTP_URIS: [http::Uri; 2] = [
    http_uri!(
        instance,
        c"deviceuser/ws",
        c"res_deviceuser console live feed",
        subtree = false,
        console::upgrade,
        websocket = (c"deviceuser", console::feed)
    ),
    http_uri!(
        instance,
        c"deviceuser",
        c"res_deviceuser administration console",
        subtree = true,
        console::serve
    ),
];

const LOAD_SUCCESS: c_int = 0;
const LOAD_DECLINE: c_int = 1;

/// `load_module`: reads the config, restores bindings, then registers the provider and
/// every table, and starts the policy thread. Any failure undoes what was done and declines.
#[no_mangle]
pub extern "C" fn deviceuser_load(module: *mut c_void) -> c_int {
    guard::install_panic_hook();
    guard::guard("load", LOAD_DECLINE, || {
        let inst = match Instance::load() {
            Ok(inst) => inst,
            Err(e) => {
                log::error(&format!("not loading: {e}"));
                return LOAD_DECLINE;
            }
        };
        ROOT.set(Some(Arc::clone(&inst)));
        match start(&inst, ModuleHandle::new(module)) {
            Ok(()) => LOAD_SUCCESS,
            Err(e) => {
                log::error(&format!("not loading: {e}"));
                ROOT.set(None);
                inst.shutdown();
                LOAD_DECLINE
            }
        }
    })
}

/// Registers with Asterisk what the loaded instance answers for.
fn start(inst: &Arc<Instance>, module: ModuleHandle) -> Result<(), String> {
    let provider = Provider::add(PROVIDER_LABEL, state_provider!(instance, Instance::provide))?;
    let registered = register::register(
        module,
        &APPLICATIONS,
        &FUNCTIONS,
        &CLI_COMMANDS,
        &AMI_ACTIONS,
    )?;
    let policy = policy::start(inst)?;
    inst.set_sources(
        metrics_source!(instance, metrics::scrape),
        event_source!(instance, Instance::ari),
    );
    let console = http::link(&HTTP_URIS);
    inst.attach(provider, registered, policy, console);
    Ok(())
}

/// Non-zero while a login prompt runs on a channel: unload must wait for it.
#[no_mangle]
pub extern "C" fn deviceuser_unload_busy() -> c_int {
    guard::guard("unload check", 1, || {
        let n = instance().map_or(0, |i| i.prompts());
        if n > 0 {
            log::warning(&format!(
                "cannot unload while {n} login/logout prompt(s) are running"
            ));
        }
        c_int::from(n > 0)
    })
}

/// `unload_module`: everything registered goes first, then the rest in the instance's
/// unload order.
#[no_mangle]
pub extern "C" fn deviceuser_unload() {
    guard::guard("unload", (), || {
        // Shut down while still reachable: the provider answers from the live table until
        // it is removed. Calls that come in after the root is emptied find no module.
        if let Some(inst) = instance() {
            inst.shutdown();
        }
        ROOT.set(None);
    });
    guard::remove_panic_hook();
}

/// `module reload`: 0 on success; a bad file keeps the running config.
#[no_mangle]
pub extern "C" fn deviceuser_reload() -> c_int {
    guard::guard("reload", -1, || match instance() {
        Some(inst) => match inst.reload() {
            Ok(()) => 0,
            Err(_) => -1,
        },
        None => -1,
    })
}
