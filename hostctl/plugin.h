/* vmbk: plugins (include/vmbk-plugin.h), seen from vmbk
 *
 * vmbk never runs plugin code in its own process during a backup: each plugin runs in a child,
 * 'vmbk plugin-run' (runner.c), which loads it, feeds it the new point's disks and filesystems
 * read-only and writes its outputs into the point's directory, in a folder named after the
 * plugin.  A plugin that fails or crashes fails the backup, named, and takes nothing else down.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "repo.h"
#include "pluginapi.h"
#include "vmbk-plugin.h"

/* --plugin NAME[:key=value,...] */
typedef struct _vmbkPluginSpec vmbkPluginSpec;
struct _vmbkPluginSpec {
    char *name; /* as given: a name, or a path to a .so */
    char *path; /* the shared object */
    GPtrArray *config; /* of "key=value" */
    char *plugin_name; /* from vmbkPluginCheck: the plugin's own name, and version */
    char *version;
    char *kind;        /* and vmbkPluginKind, and whether its block_view is VMBK_VIEW_FULL */
    bool full_view;
};

void vmbkPluginSpecFree(vmbkPluginSpec *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkPluginSpec, vmbkPluginSpecFree);

/* Parse one --plugin argument and find the plugin; reports if unknown. */
vmbkPluginSpec *vmbkPluginSpecParse(const char *arg);

/* The directories plugins load from: $VMBK_PLUGIN_PATH (colon separated), else PLUGINDIR. */
char **vmbkPluginDirs(void);

/* g_ptr_array_sort order of an array of strings (file names, paths). */
gint vmbkPluginStrCmp(gconstpointer a, gconstpointer b);
/* What the runner is asked to do. */
typedef struct _vmbkPluginRun vmbkPluginRun;
struct _vmbkPluginRun {
    const char *domain, *uuid, *id, *level, *time, *consistency;
    const char *dir;          /* the point's (temporary) directory */
    const char *parent;       /* the id of the point the plugin's outputs build on, or NULL */
    const char *parent_dir;   /* that point's directory */
    GPtrArray *targets;       /* the disks: target names */
    GPtrArray *images;        /* their images in dir */
    volatile int *interrupted;
};

/* Check that the plugin loads and takes its configuration: run before any point is taken. */
int vmbkPluginCheck(vmbkPluginSpec *spec);
/* Run the plugin on the point; on success fill out (version, outputs with their digests). */
int vmbkPluginRunPoint(const vmbkPluginSpec *spec, const vmbkPluginRun *run,
                       vmbkPointPlugin **out);
/* The record of the outputs a run left in pointdir/NAME (*out, also on failure: free it). */
int vmbkPluginRecord(const vmbkPluginSpec *spec, const char *pointdir, vmbkPointPlugin **out);
