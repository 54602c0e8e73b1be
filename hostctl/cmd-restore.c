/* vmbk restore: a disk image, or a new domain, from a point or from stream files */
#include <config.h>

#include <stdio.h>
#include <unistd.h>

#include "pointread.h"
#include "repo.h"
#include "streamrestore.h"
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
    const char *format = "raw", *define = NULL, *from = NULL;
    g_auto(GStrv) streams = NULL;
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
        { "from", 0, 0, G_OPTION_ARG_STRING, &from, "stream: rebuild the disk from the point's "
          "stream plugin files (full and redo files) instead of its qcow2 chain", "SOURCE" },
        { "stream", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &streams, "without -r and DOMAIN: rebuild "
          "the disk from this stream file ('-': standard input); repeat it: the full first, "
          "then its redo files in order", "FILE" },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    vmbkPoint *point;
    vmbkPointDisk *disk;

    if (vmbkParseOptions(cmd, entries,
                         "The restored content is checked against the point's digest while it\n"
                         "is written; a point that does not match is refused and nothing is left.\n"
                         "\n"
                         "Streams (see vmbk-stream-plugin(1)) are read once each, front to back,\n"
                         "so they may come from a pipe or a tape; each is checked (its place in\n"
                         "the chain, its trailer's SHA-256) and on a mismatch the output is\n"
                         "removed.\n"
                         "\n"
                         "  vmbk restore --stream FULL [--stream REDO]... -o FILE\n"
                         "  vmbk restore -r REPO DOMAIN --point ID --from stream [--disk TARGET] "
                         "-o FILE",
                         &argc, &argv, 0, 1) < 0)
        return -1;
    if (streams) {
        if (repo_path || argc > 1 || define || from || target || !g_str_equal(point_id, "latest")) {
            vmbkError(VMBK_ERR_USAGE, "restore: --stream reads the files it is given: it takes "
                      "no -r, DOMAIN, --point, --disk, --from or --define");
            return -1;
        }
        if (!output || !g_str_equal(format, "raw")) {
            vmbkError(VMBK_ERR_USAGE, "restore: --stream writes a raw image; give -o FILE");
            return -1;
        }
        return vmbkStreamRestore((const char *const *) streams, output, NULL);
    }
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "restore: no repository given; pass -r REPO");
        return -1;
    }
    if (argc < 2) {
        vmbkError(VMBK_ERR_USAGE, "restore: missing argument; usage: %s %s %s", vmbk_progname,
                  cmd->name, cmd->args);
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
    if (from && !g_str_equal(from, "stream")) {
        vmbkError(VMBK_ERR_USAGE, "restore: unknown --from '%s'; the one source it takes is stream",
                  from);
        return -1;
    }
    if (from && (define || !g_str_equal(format, "raw"))) {
        vmbkError(VMBK_ERR_USAGE, "restore: --from stream writes a raw image; give -o FILE");
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])) ||
        !(point = vmbkRepoFindPoint(repo, points, argv[1], point_id)))
        return -1;
    if (define)
        return vmbkRestoreDefine(global, repo, points, point, target, define, instant);

    if (!(disk = vmbkRestorePickDisk(point, target)))
        return -1;
    if (from) {
        g_auto(GStrv) chain = vmbkStreamChain(points, point, disk->target);

        if (!chain)
            return -1;
        return vmbkStreamRestore((const char *const *) chain, output, disk->digest);
    }
    if (vmbkPointCheckChain(points, point, disk) < 0)
        return -1;
    return vmbkPointReadDisk(point, disk, output, format, isatty(STDERR_FILENO));
}
