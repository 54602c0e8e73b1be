/* vmbk inspect: the operating system and filesystems of a point */
#include <config.h>

#include <stdio.h>

#include "pointfs.h"
#include "inspection.h"
#include "json.h"
#include "vmbk.h"

VMBK_COMMAND(vmbkCmdInspect)
{
    const char *repo_path = NULL, *point_id = NULL;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', latest (the default), or live", "ID" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print a JSON object", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    g_autoptr(vmbkInspection) insp = NULL;
    g_autoptr(vmbkSource) src = NULL;
    const vmbkInspection *shown;
    vmbkPoint *point = NULL;

    if (vmbkParseOptions(cmd, entries,
                         "Shows what the indexer saved with the point (inspection.xml); a point\n"
                         "without it, or --point live, is inspected now (an appliance launch).",
                         &argc, &argv, 1, 1) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "inspect: no repository given; pass -r REPO");
        return -1;
    }
    if (g_strcmp0(point_id, "live") != 0) {
        bool absent;
        if (!(repo = vmbkRepoOpen(repo_path, false)) ||
            !(points = vmbkRepoPoints(repo, argv[1])) ||
            !(point = vmbkRepoFindPoint(repo, points, argv[1], point_id)))
            return -1;
        if (!(insp = vmbkInspectionLoad(point->dir, &absent)) && !absent)
            return -1;
    }
    if (insp) {
        shown = insp;
    } else {
        if (!(src = vmbkSourceOpen(global, repo_path, argv[1], point ? point->id : "live")))
            return -1;
        shown = src->insp;
    }
    if (json) {
        g_autoptr(vmbkJson) out = vmbkJsonNew();
        vmbkInspectionJson(out, shown);
        vmbkJsonPrint(out, stdout);
    } else {
        vmbkInspectionPrint(stdout, shown);
    }
    return 0;
}
