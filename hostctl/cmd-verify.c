/* vmbk verify: are the points intact? */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "pointread.h"
#include "repo.h"
#include "vmbk.h"

/* What plugins wrote into the point must still be what the manifest recorded. */
static int
vmbkVerifyPluginOutputs(const vmbkPoint *point)
{
    guint i, j;

    for (i = 0; i < point->plugins->len; i++) {
        vmbkPointPlugin *pp = g_ptr_array_index(point->plugins, i);

        for (j = 0; j < pp->outputs->len; j++) {
            vmbkPointOutput *o = g_ptr_array_index(pp->outputs, j);
            g_autofree char *path = g_build_filename(point->dir, pp->name, o->name, NULL);
            g_autofree char *sha = NULL;
            uint64_t size;

            if (!(sha = vmbkDigestFileTree(path, &size))) {
                g_autofree char *why = g_strdup(vmbkErrorMessage());
                vmbkErrorReset();
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', output '%s' of plugin "
                          "'%s': %s", point->id, point->domain, o->name, pp->name, why);
                return -1;
            }
            if (size != o->size || !g_str_equal(sha, o->digest)) {
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', output '%s' of plugin "
                          "'%s' does not match its digest (%" PRIu64 " bytes, %" PRIu64
                          " recorded); the repository is damaged", point->id, point->domain,
                          o->name, pp->name, size, o->size);
                return -1;
            }
        }
    }
    return 0;
}

static int
vmbkVerifyPoint(GPtrArray *points, const vmbkPoint *point, bool progress)
{
    guint i;

    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *disk = g_ptr_array_index(point->disks, i);
        g_autofree char *leaves = g_strdup_printf("%s/%s.leaves", point->dir, disk->target);
        g_autoptr(vmbkDigest) saved = NULL;
        g_autofree char *root = NULL;

        if (vmbkPointCheckChain(points, point, disk) < 0 ||
            vmbkPointReadDisk(point, disk, NULL, NULL, progress) < 0)
            return -1;
        /* The block digests feed the next incremental: they must be right too. */
        if (!(saved = vmbkDigestOpen(leaves, disk->virtual_size)) ||
            !(root = vmbkDigestRoot(saved)))
            return -1;
        if (!g_str_equal(root, disk->digest)) {
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the block digests "
                      "'%s' do not match the manifest; the repository is damaged", point->id,
                      point->domain, disk->target, leaves);
            return -1;
        }
    }
    return vmbkVerifyPluginOutputs(point);
}

VMBK_COMMAND(vmbkCmdVerify)
{
    const char *repo_path = NULL, *point_id = "all";
    gboolean quiet = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "the point to verify: an id from 'vmbk list', latest, or all (the default)", "ID" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "print nothing on success", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    bool progress = isatty(STDERR_FILENO) && !quiet;
    guint i;

    if (vmbkParseOptions(cmd, entries,
                         "Recomputes each disk's digest from the repository's qcow2 chain and\n"
                         "checks the chain's links and images, and the digest of each plugin\n"
                         "output.  Exit status 0 only if intact.",
                         &argc, &argv, 1, 1) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "verify: no repository given; pass -r REPO");
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])))
        return -1;
    if (g_str_equal(point_id, "all")) {
        if (vmbkRepoCheckManifests(repo, argv[1]) < 0)
            return -1;
        if (points->len == 0) {
            vmbkError(VMBK_ERR_OPERATION, "the repository '%s' has no point of domain '%s'",
                      repo->path, argv[1]);
            return -1;
        }
        for (i = 0; i < points->len; i++) {
            vmbkPoint *point = g_ptr_array_index(points, i);
            if (vmbkVerifyPoint(points, point, progress) < 0)
                return -1;
            if (!quiet)
                printf("point %s of domain '%s': intact\n", point->id, argv[1]);
        }
        return 0;
    } else {
        vmbkPoint *point;

        if (!(point = vmbkRepoFindPoint(repo, points, argv[1], point_id)) ||
            vmbkVerifyPoint(points, point, progress) < 0)
            return -1;
        if (!quiet)
            printf("point %s of domain '%s': intact\n", point->id, argv[1]);
    }
    return 0;
}
