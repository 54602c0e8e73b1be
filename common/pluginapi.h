/* vmbk: loading a plugin (include/vmbk-plugin.h) and the helpers the API gives it, shared by
 * the host's runner ('vmbk plugin-run') and the appliance's agent, which run plugins alike */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "vmbk-plugin.h"

/* A name as plugins and their folders have them: lower case letters, digits, '-' and '_'. */
bool vmbkPluginNameValid(const char *name);

/* A plugin loaded into this process. */
typedef struct _vmbkPluginLoaded vmbkPluginLoaded;
struct _vmbkPluginLoaded {
    void *dl;
    char *path;
    struct vmbk_plugin p; /* ours: zero-filled, then the plugin's, up to its _struct_size */
};

vmbkPluginLoaded *vmbkPluginLoad(const char *path);
void vmbkPluginUnload(vmbkPluginLoaded *pl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkPluginLoaded, vmbkPluginUnload);
/* load, config (each "key=value" of config), config_complete; the failure reported as a bad
 * configuration (VMBK_ERR_USAGE). */
int vmbkPluginConfigure(vmbkPluginLoaded *pl, char **config);

/* "block", "file", "block,file" */
const char *vmbkPluginKind(const struct vmbk_plugin *p);
