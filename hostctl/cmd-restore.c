/* vmbk restore: a disk image, or a new domain, from a point */
#include <config.h>

#include <stdio.h>
#include <unistd.h>

#include "pointread.h"
#include "repo.h"
#include "vmbk.h"

static vmbkPointDisk *
vmbkRestorePickDisk(const vmbkPoint *point, const char *target)
{
    vmbkPointDisk *disk;

    if (target) {
        if (!(disk = vmbkPointFindDisk(point, target)))
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' has no disk '%s'", point->id,
                      point->domain, target);
        return disk;
    }
    if (point->disks->len > 1) {
        GString *list = g_string_new(NULL);
        guint i;
        for (i = 0; i < point->disks->len; i++)
            g_string_append_printf(list, "%s%s", i ? ", " : "",
                                   ((vmbkPointDisk *) g_ptr_array_index(point->disks, i))->target);
        vmbkError(VMBK_ERR_USAGE, "point %s of domain '%s' has several disks (%s); pick one with "
                  "--disk", point->id, point->domain, list->str);
        g_string_free(list, TRUE);
        return NULL;
    }
    return g_ptr_array_index(point->disks, 0);
}

VMBK_COMMAND(vmbkCmdRestore)
{
    const char *repo_path = NULL, *point_id = "latest", *target = NULL, *output = NULL;
    const char *format = "raw", *define = NULL;
    gboolean instant = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', or latest (the default)", "ID" },
        { "disk", 0, 0, G_OPTION_ARG_STRING, &target, "the disk to restore (needed when the "
          "point has several)", "TARGET" },
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "write the disk to this new file",
          "FILE" },
        { "format", 0, 0, G_OPTION_ARG_STRING, &format, "raw (sparse; the default) or qcow2",
          "FORMAT" },
        { "define", 0, 0, G_OPTION_ARG_STRING, &define,
          "define a new domain NAME from the point, its disks restored", "NAME" },
        { "instant", 0, 0, G_OPTION_ARG_NONE, &instant, "with --define: put a qcow2 overlay on "
          "the point's images instead of copying them", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    vmbkPoint *point;
    vmbkPointDisk *disk;

    if (vmbkParseOptions(cmd, entries,
                         "The restored content is checked against the point's digest while it\n"
                         "is written; a point that does not match is refused and nothing is left.",
                         &argc, &argv, 1, 1) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "restore: no repository given; pass -r REPO");
        return -1;
    }
    if (!output == !define) {
        vmbkError(VMBK_ERR_USAGE, "restore: give either -o FILE or --define NAME");
        return -1;
    }
    if (!g_str_equal(format, "raw") && !g_str_equal(format, "qcow2")) {
        vmbkError(VMBK_ERR_USAGE, "restore: unknown format '%s'; use raw or qcow2", format);
        return -1;
    }
    if (instant && !define) {
        vmbkError(VMBK_ERR_USAGE, "restore: --instant goes with --define");
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])) ||
        !(point = vmbkRepoFindPoint(points, argv[1], point_id)))
        return -1;
    if (define)
        return vmbkRestoreDefine(global, repo, points, point, target, define, instant);

    if (!(disk = vmbkRestorePickDisk(point, target)))
        return -1;
    if (vmbkPointCheckChain(points, point, disk) < 0)
        return -1;
    return vmbkPointReadDisk(point, disk, output, format, isatty(STDERR_FILENO));
}
