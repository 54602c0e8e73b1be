/* vmbk: the host controller's shared declarations */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

#include "vmbk-autoptr.h"
#include "vmbk-error.h"

/* What every command gets from the global options. */
typedef struct _vmbkGlobal vmbkGlobal;
struct _vmbkGlobal {
    const char *uri; /* -c URI, else $LIBVIRT_DEFAULT_URI, else qemu:///system */
};

typedef struct _vmbkCommand vmbkCommand;
struct _vmbkCommand {
    const char *name;
    const char *args;    /* synopsis after the name */
    const char *summary; /* one line for vmbk --help */
    int (*run)(vmbkGlobal *global, const vmbkCommand *cmd, int argc, char **argv);
};

/* Parse a command's options with GOption; on a usage error report it (exit 2) and return -1.
 * nargs_min/max bound the positional arguments left in argv (max -1: unbounded). */
int vmbkParseOptions(const vmbkCommand *cmd, GOptionEntry *entries, const char *description,
                     int *argc, char ***argv, int nargs_min, int nargs_max);

/* conn.c */
virConnectPtr vmbkConnect(vmbkGlobal *global);
virDomainPtr vmbkLookupDomain(virConnectPtr conn, const char *name);

/* The commands, one file each. */
#define VMBK_COMMAND(name) int name(vmbkGlobal *global, const vmbkCommand *cmd, int argc, char **argv)
VMBK_COMMAND(vmbkCmdAccel);
VMBK_COMMAND(vmbkCmdAppliance);
VMBK_COMMAND(vmbkCmdBackup);
VMBK_COMMAND(vmbkCmdCat);
VMBK_COMMAND(vmbkCmdCopyOut);
VMBK_COMMAND(vmbkCmdDisks);
VMBK_COMMAND(vmbkCmdFind);
VMBK_COMMAND(vmbkCmdIndex);
VMBK_COMMAND(vmbkCmdInspect);
VMBK_COMMAND(vmbkCmdList);
VMBK_COMMAND(vmbkCmdLs);
VMBK_COMMAND(vmbkCmdMount);
VMBK_COMMAND(vmbkCmdPluginRun);
VMBK_COMMAND(vmbkCmdPlugins);
VMBK_COMMAND(vmbkCmdRestore);
VMBK_COMMAND(vmbkCmdSnapshot);
VMBK_COMMAND(vmbkCmdVerify);

/* cmd-list.c: a point as --json prints it */
struct _vmbkJson;
struct _vmbkPoint;
void vmbkPointJson(struct _vmbkJson *out, const struct _vmbkPoint *point);

/* cmd-index.c: inspect a committed point and build its catalog (one appliance launch) */
int vmbkIndexPoint(const struct _vmbkPoint *point, bool quiet);

/* restore-define.c */
struct _vmbkRepo;
int vmbkRestoreDefine(vmbkGlobal *global, struct _vmbkRepo *repo, GPtrArray *points,
                      struct _vmbkPoint *point, const char *only, const char *name, bool instant);
