/*
 * res_deviceuser -- hot-desking (Device & User mode) for Asterisk
 *
 * This program is free software, distributed under the terms of
 * the GNU General Public License Version 2. See the LICENSE file.
 *
 * The C side of the module: the module info Asterisk's loader reads (with the real
 * build-options checksum and GPL key), forwarding load, unload and reload to Rust
 * (src/entry.rs, declared in include/res_deviceuser.h, made by cbindgen). Applications,
 * functions, CLI commands and AMI actions are registered from Rust tables in src/entry.rs.
 */

#include "asterisk.h"

#include "asterisk/module.h"

#include "res_deviceuser.h"

static int unload_module(void)
{
	/* Refused while a login prompt runs on a channel: the login must complete. */
	if (deviceuser_unload_busy()) {
		return -1;
	}
	deviceuser_unload();
	return 0;
}

static int load_module(void)
{
	return deviceuser_load(ast_module_info->self) == 0 ? AST_MODULE_LOAD_SUCCESS : AST_MODULE_LOAD_DECLINE;
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
	/* The console's live feed uses res_http_websocket when it is loaded: start it first. */
	.optional_modules = "res_http_websocket",
);
