/*
 * The one list of Asterisk headers res_deviceuser binds (bindgen reads this file).
 * asterisk.h must come first; presencestate.h needs stringfields.h (via module.h) before it.
 */
#include "asterisk.h"

#include "asterisk/module.h"
#include "asterisk/logger.h"
#include "asterisk/utils.h"
#include "asterisk/config.h"
#include "asterisk/astdb.h"
#include "asterisk/channel.h"
#include "asterisk/pbx.h"
#include "asterisk/app.h"
#include "asterisk/file.h"
#include "asterisk/cli.h"
#include "asterisk/manager.h"
#include "asterisk/devicestate.h"
#include "asterisk/stasis.h"
#include "asterisk/cel.h"
#include "asterisk/cdr.h"
#include "asterisk/ast_version.h"
#include "asterisk/astobj2.h"
#include "asterisk/paths.h"
#include "asterisk/taskprocessor.h"
#include "asterisk/options.h"
#include "asterisk/mwi.h"
#include "asterisk/security_events.h"
#include "asterisk/res_prometheus.h"
