/* vmbk backup: what to back up, and at which level on which parent point
 *
 * The disks (all, or --disk), and the level: full, inc (on the previous point), diff (on the
 * last full) or auto (inc when the chain is usable, else full, saying why); a parent is usable
 * when it belongs to this domain, has every disk and a checkpoint libvirt still has.
 */
#include <config.h>

#include <stdio.h>

#include "backup.h"
#include "checkpoint.h"
#include "domxml.h"

const char *
vmbkBackupLevelCheck(const char *level)
{
    static const char *const levels[] = { "full", "inc", "diff", "auto" };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(levels); i++) {
        if (g_str_equal(level, levels[i]))
            return levels[i];
    }
    return NULL;
}

int
vmbkBackupSelectDisks(vmbkBackup *b, const char *xml, char **wanted)
{
    g_autoptr(GPtrArray) disks = vmbkDomainDisks(xml, b->name);
    guint i;
    size_t j;

    if (!disks)
        return -1;
    b->disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkDiskFree);
    b->targets = g_ptr_array_new();
    b->all = g_ptr_array_new_with_free_func(g_free);
    for (i = 0; i < disks->len; i++)
        g_ptr_array_add(b->all, g_strdup(((vmbkDisk *) g_ptr_array_index(disks, i))->target));

    for (j = 0; wanted && wanted[j]; j++) {
        g_autoptr(GString) list = g_string_new(NULL);
        bool found = false;

        for (i = 0; i < b->all->len; i++) {
            found |= g_str_equal(g_ptr_array_index(b->all, i), wanted[j]);
            g_string_append_printf(list, "%s%s", i ? ", " : "",
                                   (const char *) g_ptr_array_index(b->all, i));
        }
        if (!found) {
            vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no disk '%s'; its disks are: %s",
                      b->name, wanted[j], list->str);
            return -1;
        }
    }
    /* The selected disks move from disks to b->disks. */
    for (i = 0; i < disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(disks, i);
        if (wanted && !g_strv_contains((const char *const *) wanted, disk->target))
            continue;
        if (!g_str_equal(disk->type, "file") && !g_str_equal(disk->type, "block")) {
            vmbkError(VMBK_ERR_OPERATION, "disk '%s' of domain '%s' is a %s disk; vmbk backs up "
                      "file and block disks (leave it out with --disk)", disk->target, b->name,
                      disk->type);
            return -1;
        }
        g_ptr_array_add(b->targets, disk->target);
        g_ptr_array_add(b->disks, disk);
        disks->pdata[i] = NULL;
    }
    if (b->disks->len == 0) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no disk to back up", b->name);
        return -1;
    }
    return 0;
}

/* The parent an incremental or differential would use, checked usable; NULL and reported if not. */
static vmbkPoint *
vmbkBackupParent(vmbkBackup *b, const char *level)
{
    vmbkPoint *parent = NULL;
    guint i;

    if (g_str_equal(level, "inc")) {
        if (b->points->len > 0)
            parent = g_ptr_array_index(b->points, b->points->len - 1);
    } else {
        for (i = b->points->len; i > 0 && !parent; i--) {
            vmbkPoint *p = g_ptr_array_index(b->points, i - 1);
            if (g_str_equal(p->level, "full"))
                parent = p;
        }
    }
    if (!parent) {
        vmbkError(VMBK_ERR_OPERATION, "the repository '%s' has no %s point of domain '%s' to "
                  "base -l %s on; run a full backup or pass -l auto", b->repo->path,
                  g_str_equal(level, "inc") ? "earlier" : "full", b->name, level);
        return NULL;
    }
    if (!parent->checkpoint) {
        vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' was taken without a checkpoint "
                  "(--method snapshot); run a full backup or pass -l auto", parent->id, b->name);
        return NULL;
    }
    if (parent->uuid && !g_str_equal(parent->uuid, b->uuid)) {
        vmbkError(VMBK_ERR_OPERATION, "point %s belongs to another domain named '%s' (uuid %s); "
                  "run a full backup or pass -l auto", parent->id, b->name, parent->uuid);
        return NULL;
    }
    for (i = 0; i < b->disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(b->disks, i);
        if (!vmbkPointFindDisk(parent, disk->target)) {
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' has no disk '%s'; run a full "
                      "backup or pass -l auto", parent->id, b->name, disk->target);
            return NULL;
        }
    }
    if (vmbkCheckpointValidate(b->dom, b->name, parent->checkpoint, parent->id) < 0)
        return NULL;
    return parent;
}

int
vmbkBackupDecide(vmbkBackup *b, const char *level, const char *method, bool method_given)
{
    guint i;

    b->method = method;
    if (g_str_equal(method, "snapshot")) {
        if (g_str_equal(level, "inc") || g_str_equal(level, "diff")) {
            vmbkError(VMBK_ERR_USAGE, "--method snapshot takes full backups only, not -l %s",
                      level);
            return -1;
        }
        b->level = "full";
        return 0;
    }

    for (i = 0; i < b->disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(b->disks, i);
        const char *problem = vmbkDiskCheckpointProblem(disk);

        if (!problem)
            continue;
        if (g_str_equal(level, "inc") || g_str_equal(level, "diff")) {
            vmbkError(VMBK_ERR_OPERATION, "disk '%s' of domain '%s' is %s: %s; back it up with "
                      "-l full --method snapshot", disk->target, b->name, disk->format, problem);
            return -1;
        }
        if (method_given) {
            vmbkError(VMBK_ERR_OPERATION, "disk '%s' of domain '%s' is %s: %s; use "
                      "--method snapshot", disk->target, b->name, disk->format, problem);
            return -1;
        }
        fprintf(stderr, "%s: disk '%s' is %s, which cannot hold a checkpoint: taking a full "
                "backup through an external snapshot\n", vmbk_progname, disk->target,
                disk->format);
        b->method = "snapshot";
        b->level = "full";
        return 0;
    }

    if (g_str_equal(level, "full")) {
        b->level = "full";
        return 0;
    }
    if (g_str_equal(level, "auto")) {
        if (b->points->len == 0) {
            b->level = "full";
            return 0;
        }
        if (!(b->parent = vmbkBackupParent(b, "inc"))) {
            fprintf(stderr, "%s: taking a full backup: %s\n", vmbk_progname, vmbkErrorMessage());
            vmbkErrorReset();
            b->level = "full";
            return 0;
        }
        b->level = "inc";
        return 0;
    }
    if (!(b->parent = vmbkBackupParent(b, level)))
        return -1;
    b->level = level;
    return 0;
}
