/* vmbk index: inspection and file catalog of a committed point */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "catalog.h"
#include "pointfs.h"
#include "inspection.h"
#include "vmbk.h"

int
vmbkIndexPoint(const vmbkPoint *point, bool quiet)
{
    g_autoptr(vmbkGuestfs) g = NULL;
    g_autoptr(vmbkInspection) insp = NULL;
    g_autofree char *what = g_strdup_printf("point %s of domain '%s'", point->id, point->domain);
    g_autofree char *short_what = g_strdup_printf("point %s", point->id);
    g_autofree char *parent_dir = NULL;
    vmbkCatalogStats stats;
    gint64 start = g_get_monotonic_time();

    if (point->parent) {
        g_autofree char *points_dir = g_path_get_dirname(point->dir);
        parent_dir = g_build_filename(points_dir, point->parent, NULL);
    }
    if (!(g = vmbkGuestfsNew()) || vmbkGuestfsAddPoint(g, point) < 0 ||
        vmbkGuestfsLaunch(g, short_what) < 0)
        return -1;
    if (!(insp = vmbkInspect(g, what)) || vmbkInspectionWrite(insp, point->dir) < 0)
        return -1;
    if (vmbkCatalogBuild(g, insp, point, parent_dir, &stats) < 0)
        return -1;
    if (guestfs_shutdown(g) < 0) {
        vmbkErrorGuestfs(g, "the libguestfs appliance failed reading %s", what);
        return -1;
    }
    if (!quiet) {
        g_autofree char *changed = NULL;
        if (!point->parent || (parent_dir && vmbkCatalogExists(parent_dir)))
            changed = g_strdup_printf(", %" PRIu64 " changed, %" PRIu64 " deleted",
                                      stats.changed, stats.deleted);
        fprintf(stderr, "%s: point %s: %s%s%s, %u filesystem(s), %" PRIu64 " files%s in %.1f s\n",
                vmbk_progname, point->id, insp->distro ? insp->distro : "no OS found",
                insp->version ? " " : "", insp->version ? insp->version : "", stats.filesystems,
                stats.files, changed ? changed : "",
                (g_get_monotonic_time() - start) / 1e6);
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdIndex)
{
    const char *repo_path = NULL, *point_id = NULL;
    gboolean all = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', or latest (the default)", "ID" },
        { "all", 0, 0, G_OPTION_ARG_NONE, &all, "every point that has no catalog yet, oldest "
          "first", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    vmbk_autoclose int lockfd = -1;
    guint i;

    if (vmbkParseOptions(cmd, entries,
                         "Inspects the point's operating system and walks its filesystems into\n"
                         "inspection.xml and catalog.sqlite in the point's directory, replacing\n"
                         "them if they exist.  One libguestfs appliance launch per point.",
                         &argc, &argv, 1, 1) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "index: no repository given; pass -r REPO");
        return -1;
    }
    if (all && point_id) {
        vmbkError(VMBK_ERR_USAGE, "index: give --point or --all, not both");
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])))
        return -1;
    if (!all) {
        vmbkPoint *point = vmbkRepoFindPoint(repo, points, argv[1], point_id);
        if (!point || (lockfd = vmbkRepoLock(repo, argv[1])) < 0)
            return -1;
        return vmbkIndexPoint(point, false);
    }
    if ((lockfd = vmbkRepoLock(repo, argv[1])) < 0)
        return -1;
    for (i = 0; i < points->len; i++) {
        vmbkPoint *point = g_ptr_array_index(points, i);
        if (!vmbkCatalogExists(point->dir) && vmbkIndexPoint(point, false) < 0)
            return -1;
    }
    return 0;
}
