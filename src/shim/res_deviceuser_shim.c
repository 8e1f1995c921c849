/*
 * res_deviceuser -- hot-desking (Device & User mode) for Asterisk
 *
 * This program is free software, distributed under the terms of
 * the GNU General Public License Version 2. See the LICENSE file.
 *
 * The C side of the module: the module info Asterisk's loader reads (with the real
 * build-options checksum and GPL key), and the static registration tables whose
 * callbacks are Rust functions (declared in include/res_deviceuser.h, made by cbindgen).
 * Nothing here holds logic: every callback forwards to Rust at once.
 */

#include "asterisk.h"

#include "asterisk/module.h"
#include "asterisk/pbx.h"
#include "asterisk/cli.h"
#include "asterisk/manager.h"

#include "res_deviceuser.h"

/* Function ids shared with src/ffi.rs. */
enum { FN_DIAL = 0, FN_USER = 1, FN_FIELD = 2 };

static int func_dial_read(struct ast_channel *chan, const char *cmd, char *data, char *buf, size_t len)
{
	return deviceuser_func_read(FN_DIAL, chan, data, buf, len);
}

static int func_user_read(struct ast_channel *chan, const char *cmd, char *data, char *buf, size_t len)
{
	return deviceuser_func_read(FN_USER, chan, data, buf, len);
}

static int func_field_read(struct ast_channel *chan, const char *cmd, char *data, char *buf, size_t len)
{
	return deviceuser_func_read(FN_FIELD, chan, data, buf, len);
}

static int func_field_write(struct ast_channel *chan, const char *cmd, char *data, const char *value)
{
	return deviceuser_func_write(FN_FIELD, chan, data, value);
}

static struct ast_custom_function acf_dial = { .name = "DEVICEUSER_DIAL", .read = func_dial_read };
static struct ast_custom_function acf_user = { .name = "DEVICEUSER_USER", .read = func_user_read };
static struct ast_custom_function acf_field = {
	.name = "DEVICEUSER", .read = func_field_read, .write = func_field_write,
};

#define CLI_TRAMPOLINE(id) \
	static char *cli_##id(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a) \
	{ return deviceuser_cli(id, e, cmd, a); }
CLI_TRAMPOLINE(0)
CLI_TRAMPOLINE(1)
CLI_TRAMPOLINE(2)
CLI_TRAMPOLINE(3)
CLI_TRAMPOLINE(4)
CLI_TRAMPOLINE(5)
CLI_TRAMPOLINE(6)
CLI_TRAMPOLINE(7)

/* Ids and order match CLI_COMMANDS in src/cli.rs. */
static struct ast_cli_entry cli_entries[] = {
	AST_CLI_DEFINE(cli_0, "Show configured hot-desking devices"),
	AST_CLI_DEFINE(cli_1, "Show configured hot-desking users"),
	AST_CLI_DEFINE(cli_2, "Show which user is logged in on which device"),
	AST_CLI_DEFINE(cli_3, "Log a user in on a device"),
	AST_CLI_DEFINE(cli_4, "Log a device, a user or everyone out"),
	AST_CLI_DEFINE(cli_5, "Turn a user's do-not-disturb on or off"),
	AST_CLI_DEFINE(cli_6, "Show login statistics per user"),
	AST_CLI_DEFINE(cli_7, "Import FreePBX Device & User data from AstDB"),
};

#define AMI_TRAMPOLINE(id) \
	static int ami_##id(struct mansession *s, const struct message *m) \
	{ return deviceuser_ami(id, s, m); }
AMI_TRAMPOLINE(0)
AMI_TRAMPOLINE(1)
AMI_TRAMPOLINE(2)
AMI_TRAMPOLINE(3)
AMI_TRAMPOLINE(4)
AMI_TRAMPOLINE(5)

/* Names are kept by pointer (static). Ids and order match src/ami.rs. */
static const struct {
	const char *name;
	int (*handler)(struct mansession *, const struct message *);
} ami_actions[] = {
	{ "DeviceUserLogin", ami_0 },
	{ "DeviceUserLogout", ami_1 },
	{ "DeviceUserBindings", ami_2 },
	{ "DeviceUserDevices", ami_3 },
	{ "DeviceUserUsers", ami_4 },
	{ "DeviceUserDND", ami_5 },
};

static const char app_login[] = "UserLogin";
static const char app_logout[] = "UserLogout";

static int registered;

static void unregister_all(void)
{
	size_t i;

	ast_unregister_application(app_login);
	ast_unregister_application(app_logout);
	ast_custom_function_unregister(&acf_dial);
	ast_custom_function_unregister(&acf_user);
	ast_custom_function_unregister(&acf_field);
	ast_cli_unregister_multiple(cli_entries, ARRAY_LEN(cli_entries));
	for (i = 0; i < ARRAY_LEN(ami_actions); i++) {
		ast_manager_unregister(ami_actions[i].name);
	}
	registered = 0;
}

static int register_all(void)
{
	int res = 0;
	size_t i;
	res |= ast_register_application_xml(app_login, deviceuser_app_login);
	res |= ast_register_application_xml(app_logout, deviceuser_app_logout);
	res |= ast_custom_function_register(&acf_dial);
	res |= ast_custom_function_register(&acf_user);
	res |= ast_custom_function_register(&acf_field);
	res |= ast_cli_register_multiple(cli_entries, ARRAY_LEN(cli_entries));
	for (i = 0; i < ARRAY_LEN(ami_actions); i++) {
		/* Actions change bindings or reveal who is where: class "agent", like app_agent_pool. */
		res |= ast_manager_register_xml(ami_actions[i].name, EVENT_FLAG_AGENT, ami_actions[i].handler);
	}
	registered = 1;
	return res;
}

static int unload_module(void)
{
	/* Refused while a login prompt runs on a channel: the login must complete. */
	if (deviceuser_unload_busy()) {
		return -1;
	}
	if (registered) {
		unregister_all();
	}
	deviceuser_unload();
	return 0;
}

static int load_module(void)
{
	int res = deviceuser_load(ast_module_info->self);

	if (res != AST_MODULE_LOAD_SUCCESS) {
		return res;
	}
	if (register_all()) {
		ast_log(LOG_ERROR, "registering applications, functions, CLI commands or AMI actions failed\n");
		unregister_all();
		deviceuser_unload();
		return AST_MODULE_LOAD_DECLINE;
	}
	deviceuser_started();
	return AST_MODULE_LOAD_SUCCESS;
}

static int reload_module(void)
{
	return deviceuser_reload();
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "Hot-desking: users log in on devices (Device & User mode)",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.reload = reload_module,
	.load_pri = AST_MODPRI_DEVSTATE_PROVIDER,
);
