/* vmbk list: the points in a repository */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "digest.h"
#include "inspection.h"
#include "json.h"
#include "repo.h"
#include "vmbk.h"

void
vmbkPointJson(vmbkJson *out, const vmbkPoint *point)
{
    guint i;

    vmbkJsonBeginObject(out);
    vmbkJsonKeyString(out, "domain", point->domain);
    vmbkJsonKeyString(out, "uuid", point->uuid);
    vmbkJsonKeyString(out, "point", point->id);
    vmbkJsonKeyString(out, "parent", point->parent);
    vmbkJsonKeyString(out, "level", point->level);
    vmbkJsonKeyString(out, "time", point->time);
    vmbkJsonKeyString(out, "method", point->method);
    vmbkJsonKeyString(out, "checkpoint", point->checkpoint);
    vmbkJsonKeyString(out, "consistency", point->consistency);
    vmbkJsonKeyString(out, "path", point->dir);
    vmbkJsonKey(out, "disks");
    vmbkJsonBeginArray(out);
    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *disk = g_ptr_array_index(point->disks, i);
        g_autofree char *image = vmbkPointImagePath(point, disk);

        vmbkJsonBeginObject(out);
        vmbkJsonKeyString(out, "target", disk->target);
        vmbkJsonKeyString(out, "image", image);
        vmbkJsonKeyString(out, "source", disk->source);
        vmbkJsonKeyInt(out, "virtual_size", disk->virtual_size);
        vmbkJsonKeyInt(out, "stored_bytes", disk->stored_bytes);
        vmbkJsonKey(out, "digest");
        vmbkJsonBeginObject(out);
        vmbkJsonKeyString(out, "algorithm", "sha256-tree-64k");
        vmbkJsonKeyString(out, "value", disk->digest);
        vmbkJsonEnd(out);
        vmbkJsonEnd(out);
    }
    vmbkJsonEnd(out);
    vmbkJsonKey(out, "plugins");
    vmbkJsonBeginArray(out);
    for (i = 0; point->plugins && i < point->plugins->len; i++) {
        vmbkPointPlugin *pp = g_ptr_array_index(point->plugins, i);
        guint j;

        vmbkJsonBeginObject(out);
        vmbkJsonKeyString(out, "name", pp->name);
        vmbkJsonKeyString(out, "version", pp->version);
        /* In order, as given: a key may come more than once (tar:exclude=a,exclude=b). */
        vmbkJsonKey(out, "config");
        vmbkJsonBeginArray(out);
        for (j = 0; pp->config && j < pp->config->len; j++) {
            g_autofree char *key = g_strdup(g_ptr_array_index(pp->config, j));
            char *eq = strchr(key, '=');

            *eq = '\0';
            vmbkJsonBeginObject(out);
            vmbkJsonKeyString(out, "key", key);
            vmbkJsonKeyString(out, "value", eq + 1);
            vmbkJsonEnd(out);
        }
        vmbkJsonEnd(out);
        vmbkJsonKey(out, "outputs");
        vmbkJsonBeginArray(out);
        for (j = 0; j < pp->outputs->len; j++) {
            vmbkPointOutput *o = g_ptr_array_index(pp->outputs, j);
            g_autofree char *path = g_build_filename(point->dir, pp->name, o->name, NULL);

            vmbkJsonBeginObject(out);
            vmbkJsonKeyString(out, "name", o->name);
            vmbkJsonKeyString(out, "path", path);
            vmbkJsonKeyInt(out, "size", o->size);
            vmbkJsonKey(out, "digest");
            vmbkJsonBeginObject(out);
            vmbkJsonKeyString(out, "algorithm", VMBK_DIGEST_ALGORITHM);
            vmbkJsonKeyString(out, "value", o->digest);
            vmbkJsonEnd(out);
            vmbkJsonEnd(out);
        }
        vmbkJsonEnd(out);
        vmbkJsonEnd(out);
    }
    vmbkJsonEnd(out);
    /* Added by the indexer after the commit: null/false when it has not run. */
    {
        bool absent;
        g_autoptr(vmbkInspection) insp = vmbkInspectionLoad(point->dir, &absent);

        vmbkJsonKey(out, "inspection");
        if (insp) {
            vmbkInspectionJson(out, insp);
        } else {
            if (!absent) { /* damaged: the listing still goes on */
                fprintf(stderr, "%s: warning: %s\n", vmbk_progname, vmbkErrorMessage());
                vmbkErrorReset();
            }
            vmbkJsonNull(out);
        }
    }
    vmbkJsonKeyBool(out, "catalog", vmbkCatalogExists(point->dir));
    vmbkJsonEnd(out);
}

static char *
vmbkHumanSize(uint64_t bytes)
{
    return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

VMBK_COMMAND(vmbkCmdList)
{
    const char *repo_path = NULL;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print a JSON array of points", NULL },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) domains = NULL;
    g_autoptr(vmbkJson) out = NULL;
    guint i, j, k;

    if (vmbkParseOptions(cmd, entries, NULL, &argc, &argv, 0, 1) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "list: no repository given; pass -r REPO");
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)))
        return -1;
    if (argc > 1) {
        domains = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(domains, g_strdup(argv[1]));
    } else if (!(domains = vmbkRepoDomains(repo))) {
        return -1;
    }

    if (json) {
        out = vmbkJsonNew();
        vmbkJsonBeginArray(out);
    } else {
        printf("%-16s %-6s %-6s %-5s %-20s %-11s %-6s %10s %10s\n", "Domain", "Point", "Parent",
               "Level", "Time", "Consistency", "Disk", "Size", "Stored");
    }
    for (i = 0; i < domains->len; i++) {
        const char *domain = g_ptr_array_index(domains, i);
        g_autoptr(GPtrArray) points = vmbkRepoPoints(repo, domain);

        if (!points)
            return -1;
        if (argc > 1 && points->len == 0) {
            vmbkError(VMBK_ERR_OPERATION, "the repository '%s' has no point of domain '%s'",
                      repo->path, domain);
            return -1;
        }
        for (j = 0; j < points->len; j++) {
            vmbkPoint *point = g_ptr_array_index(points, j);

            if (json) {
                vmbkPointJson(out, point);
                continue;
            }
            for (k = 0; k < point->disks->len; k++) {
                vmbkPointDisk *disk = g_ptr_array_index(point->disks, k);
                g_autofree char *size = vmbkHumanSize(disk->virtual_size);
                g_autofree char *stored = vmbkHumanSize(disk->stored_bytes);

                printf("%-16s %-6s %-6s %-5s %-20s %-11s %-6s %10s %10s\n", domain, point->id,
                       point->parent ? point->parent : "-", point->level, point->time,
                       point->consistency ? point->consistency : "-", disk->target, size,
                       stored);
            }
        }
    }
    if (json) {
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
    }
    return 0;
}
