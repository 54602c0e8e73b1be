/* vmbk plugins: the plugins vmbk can run, built in and installed */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "plugin.h"
#include "vmbk.h"

typedef struct {
    const char *name, *kind, *version, *description, *path, *config_help;
} vmbkPluginInfo;

static void
vmbkPluginsPrint(vmbkJson *json, const vmbkPluginInfo *info)
{
    if (json) {
        vmbkJsonBeginObject(json);
        vmbkJsonKeyString(json, "name", info->name);
        vmbkJsonKeyString(json, "kind", info->kind);
        vmbkJsonKeyString(json, "version", info->version);
        vmbkJsonKeyString(json, "description", info->description);
        vmbkJsonKeyString(json, "path", info->path);
        vmbkJsonKeyString(json, "config_help", info->config_help);
        vmbkJsonEnd(json);
        return;
    }
    printf("%-10s %-10s %-8s %s\n", info->name, info->kind, info->version,
           info->description ? info->description : "");
}

VMBK_COMMAND(vmbkCmdPlugins)
{
    gboolean json = FALSE, verbose = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print them as JSON", NULL },
        { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
          "also show where each is and its parameters", NULL },
        { NULL },
    };
    static const vmbkPluginInfo builtin[] = {
        { "qcow2", "block", PACKAGE_VERSION, "the repository's qcow2 chains (built in, always)",
          NULL, NULL },
        { "catalog", "file", PACKAGE_VERSION, "inspection and the file catalog (built in; "
          "--no-catalog turns it off)", NULL, NULL },
    };
    g_autoptr(vmbkJson) out = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) dirs = vmbkPluginDirs();
    size_t i;

    if (vmbkParseOptions(cmd, entries, "Plugins load from the directories of $VMBK_PLUGIN_PATH "
                         "(colon separated), else from " PLUGINDIR ".", &argc, &argv, 0, 0) < 0)
        return -1;
    if (json) {
        out = vmbkJsonNew();
        vmbkJsonBeginArray(out);
    } else {
        printf("%-10s %-10s %-8s %s\n", "NAME", "KIND", "VERSION", "DESCRIPTION");
    }
    for (i = 0; i < G_N_ELEMENTS(builtin); i++)
        vmbkPluginsPrint(out, &builtin[i]);

    for (i = 0; dirs[i]; i++) {
        g_autoptr(GDir) d = *dirs[i] ? g_dir_open(dirs[i], 0, NULL) : NULL;
        g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
        const char *name;
        guint j;

        /* Installed: vmbk-NAME-plugin.so; in the build tree: NAME/.libs/vmbk-NAME-plugin.so */
        while (d && (name = g_dir_read_name(d))) {
            g_autofree char *so = g_strdup_printf("vmbk-%s-plugin.so", name);
            g_autofree char *built = g_build_filename(dirs[i], name, ".libs", so, NULL);

            if (g_str_has_prefix(name, "vmbk-") && g_str_has_suffix(name, "-plugin.so"))
                g_ptr_array_add(files, g_build_filename(dirs[i], name, NULL));
            else if (g_file_test(built, G_FILE_TEST_IS_REGULAR))
                g_ptr_array_add(files, g_steal_pointer(&built));
        }
        g_ptr_array_sort(files, vmbkPluginStrCmp);
        for (j = 0; j < files->len; j++) {
            const char *path = g_ptr_array_index(files, j);
            g_autoptr(vmbkPluginLoaded) pl = vmbkPluginLoad(path);
            vmbkPluginInfo info;

            if (!pl) {
                fprintf(stderr, "%s: warning: %s\n", vmbk_progname, vmbkErrorMessage());
                vmbkErrorReset();
                continue;
            }
            /* The first of a name in the path wins, as when loading. */
            if (!g_hash_table_add(seen, g_strdup(pl->p.name)))
                continue;
            info = (vmbkPluginInfo) { pl->p.name, vmbkPluginKind(&pl->p), pl->p.version,
                                      pl->p.description, path, pl->p.config_help };
            vmbkPluginsPrint(out, &info);
            if (verbose && !json) {
                printf("           %s\n", path);
                if (pl->p.config_help) {
                    g_auto(GStrv) lines = g_strsplit(pl->p.config_help, "\n", -1);
                    size_t k;
                    for (k = 0; lines[k]; k++)
                        printf("           %s\n", lines[k]);
                }
            }
        }
    }
    if (json) {
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
    }
    return 0;
}
