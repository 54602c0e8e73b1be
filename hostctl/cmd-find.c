/* vmbk find: the points where files matching a pattern exist, from the catalogs alone */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "catalog.h"
#include "json.h"
#include "vmbk.h"

static char *
vmbkTimeIso8601(int64_t t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);

    return dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("-");
}

static void
vmbkFindPrint(void *opaque, const vmbkPoint *point, const char *path, const char *type,
              int64_t size, int64_t mtime)
{
    g_autofree char *when = vmbkTimeIso8601(mtime);

    printf("%s  %-9s %12" PRId64 "  %s  %s\n", point->id, type, size, when, path);
}

static void
vmbkFindJson(void *opaque, const vmbkPoint *point, const char *path, const char *type,
             int64_t size, int64_t mtime)
{
    vmbkJson *out = opaque;
    g_autofree char *when = vmbkTimeIso8601(mtime);

    vmbkJsonBeginObject(out);
    vmbkJsonKeyString(out, "point", point->id);
    vmbkJsonKeyString(out, "path", path);
    vmbkJsonKeyString(out, "type", type);
    vmbkJsonKeyInt(out, "size", size);
    vmbkJsonKeyString(out, "mtime", when);
    vmbkJsonEnd(out);
}

VMBK_COMMAND(vmbkCmdFind)
{
    const char *repo_path = NULL;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print a JSON array of hits", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    g_autoptr(vmbkJson) out = NULL;
    g_autoptr(GString) missing = g_string_new(NULL);
    const char *pattern;
    int hits = 0, n;
    guint i;

    if (vmbkParseOptions(cmd, entries,
                         "PATTERN is a glob (*, ?, [...]) matched against the whole guest path,\n"
                         "or, when it has no '/', against the file's name too.  Only the\n"
                         "catalogs are read: no appliance is started.",
                         &argc, &argv, 2, 2) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "find: no repository given; pass -r REPO");
        return -1;
    }
    pattern = argv[2];
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])))
        return -1;
    if (points->len == 0) {
        vmbkError(VMBK_ERR_OPERATION, "the repository '%s' has no point of domain '%s'",
                  repo->path, argv[1]);
        return -1;
    }
    if (json) {
        out = vmbkJsonNew();
        vmbkJsonBeginArray(out);
    }
    for (i = 0; i < points->len; i++) {
        vmbkPoint *point = g_ptr_array_index(points, i);

        if (!vmbkCatalogExists(point->dir)) {
            g_string_append_printf(missing, "%s%s", missing->len ? ", " : "", point->id);
            continue;
        }
        if ((n = vmbkCatalogFind(point, pattern, json ? vmbkFindJson : vmbkFindPrint,
                                 out)) < 0)
            return -1;
        hits += n;
    }
    if (json) {
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
    }
    if (missing->len)
        fprintf(stderr, "%s: points without a catalog were not searched: %s; build theirs "
                "with 'vmbk index -r %s %s --point ID'\n", vmbk_progname, missing->str,
                repo_path, argv[1]);
    if (hits == 0 && !json)
        fprintf(stderr, "%s: no file matches '%s' in any catalogued point of domain '%s'\n",
                vmbk_progname, pattern, argv[1]);
    return 0;
}
