/* vmbk appliance: build, start, stop and ask after the backup appliance VM */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "appliance.h"
#include "json.h"
#include "vmbk.h"

#define VMBK_APPLIANCE_IDLE_DEFAULT 600

static int
vmbkApplianceCmdBuild(bool force)
{
    g_autofree char *dir = vmbkApplianceDir();
    gint64 t0 = g_get_monotonic_time();
    bool built;

    if (vmbkApplianceBuild(force, &built) < 0)
        return -1;
    if (built)
        printf("built the appliance in '%s' in %.1f s\n", dir,
               (g_get_monotonic_time() - t0) / 1e6);
    else
        printf("the appliance in '%s' is up to date\n", dir);
    return 0;
}

static int
vmbkApplianceCmdStatus(vmbkGlobal *global, bool json)
{
    g_autoptr(virConnect) conn = vmbkConnect(global);
    g_autoptr(vmbkApplianceSession) s = NULL;
    g_autofree char *dir = vmbkApplianceDir();
    g_autofree char *version = NULL;
    g_autofree char *agent = NULL;
    g_autofree char *uptime = NULL;
    g_autofree char *disks = NULL;
    g_auto(GStrv) lines = NULL;
    virDomainPtr dom;
    bool running;
    size_t i, ndisks = 0;

    if (!conn)
        return -1;
    dom = vmbkApplianceLookup(conn);
    running = dom != NULL;
    if (dom)
        virDomainFree(dom);
    if (running) {
        if (!(s = vmbkApplianceOpen(conn, false, 0)))
            return -1;
        version = vmbkAgentPayloadGet(s->agent->hello, "version");
        agent = vmbkAgentPayloadGet(s->agent->hello, "agent");
        uptime = vmbkAgentPayloadGet(s->agent->hello, "uptime");
        if (!(disks = vmbkAgentRequest(s->agent, VMBK_AGENT_MSG_LIST_DISKS, "", 10000, NULL)))
            return -1;
        lines = g_strsplit(disks, "\n", -1);
    }
    if (json) {
        g_autoptr(vmbkJson) out = vmbkJsonNew();
        vmbkJsonBeginObject(out);
        vmbkJsonKeyString(out, "dir", dir);
        vmbkJsonKeyBool(out, "running", running);
        if (running) {
            vmbkJsonKeyString(out, "agent", agent);
            vmbkJsonKeyInt(out, "protocol", version ? atoi(version) : 0);
            vmbkJsonKeyInt(out, "uptime", uptime ? (int64_t) g_ascii_strtod(uptime, NULL) : 0);
            vmbkJsonKey(out, "disks");
            vmbkJsonBeginArray(out);
            for (i = 0; lines[i]; i++) {
                if (g_str_has_prefix(lines[i], "disk="))
                    vmbkJsonString(out, lines[i] + 5);
            }
            vmbkJsonEnd(out);
        }
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
        return 0;
    }
    if (!running) {
        printf("appliance: stopped (image in '%s')\n", dir);
        return 0;
    }
    for (i = 0; lines[i]; i++)
        ndisks += g_str_has_prefix(lines[i], "disk=");
    printf("appliance: running, agent %s (protocol %s), up %s s, %zu disk%s\n",
           agent ? agent : "?", version ? version : "?", uptime ? uptime : "?", ndisks,
           ndisks == 1 ? "" : "s");
    for (i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "disk="))
            printf("  %s\n", lines[i] + 5);
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdAppliance)
{
    gboolean json = FALSE, force = FALSE;
    int idle = VMBK_APPLIANCE_IDLE_DEFAULT;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "status: print it as JSON", NULL },
        { "force", 0, 0, G_OPTION_ARG_NONE, &force, "build: even if up to date", NULL },
        { "idle", 0, 0, G_OPTION_ARG_INT, &idle, "start: power off after this many seconds "
          "without a request (default 600; 0: never)", "SECONDS" },
        { NULL },
    };
    const char *action;

    if (vmbkParseOptions(cmd, entries,
                         "Actions:\n"
                         "  build    build the appliance image with supermin from the host's\n"
                         "           packages (skipped when up to date)\n"
                         "  start    build if needed, boot it and wait for its agent\n"
                         "  stop     power it off\n"
                         "  status   running or not, the agent's version and uptime, its disks\n"
                         "\n"
                         "The image and the agent's socket live in $VMBK_APPLIANCE_DIR, else\n"
                         "$VMBK_STATE_DIR/appliance, else /var/lib/vmbk/appliance.",
                         &argc, &argv, 1, 1) < 0)
        return -1;
    action = argv[1];
    if (idle < 0) {
        vmbkError(VMBK_ERR_USAGE, "appliance: --idle must be 0 or more seconds");
        return -1;
    }
    if (g_str_equal(action, "build"))
        return vmbkApplianceCmdBuild(force);
    if (g_str_equal(action, "status"))
        return vmbkApplianceCmdStatus(global, json);
    if (g_str_equal(action, "start")) {
        g_autoptr(virConnect) conn = vmbkConnect(global);
        g_autoptr(vmbkApplianceSession) s = NULL;

        if (!conn || !(s = vmbkApplianceOpen(conn, true, idle)))
            return -1;
        if (s->started)
            printf("started the appliance; its agent answered after %.1f s\n", s->boot_seconds);
        else
            printf("the appliance is already running\n");
        return 0;
    }
    if (g_str_equal(action, "stop")) {
        g_autoptr(virConnect) conn = vmbkConnect(global);

        if (!conn)
            return -1;
        return vmbkApplianceStop(conn);
    }
    vmbkError(VMBK_ERR_USAGE, "appliance: unknown action '%s'; use build, start, stop or status",
              action);
    return -1;
}
