/* vmbk: a point's file catalog, catalog.sqlite in its directory
 *
 *   meta(key, value)          version, domain, point, parent, parent_catalog (yes/no), created
 *   filesystems(device, type, mountpoint, indexed, files)
 *   files(device, path, name, type, size, mode, uid, gid, mtime, mtime_nsec, changed)
 *        path: the guest path (the filesystem's mountpoint + its path in it), or DEVICE:/PATH for
 *        a filesystem the guest does not mount; type: file, directory, symlink, char, block,
 *        fifo, socket; mode: the permission bits; changed: 1 if (type, size, mode, mtime)
 *        differs from the parent point's catalog or the path is new, 0 if not, NULL when the
 *        parent has no catalog (a full point: 1)
 *   deleted(device, path, type)  in the parent's catalog, gone at this point
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <guestfs.h>

#include "inspection.h"
#include "repo.h"

#define VMBK_CATALOG "catalog.sqlite"

typedef struct _vmbkCatalogStats vmbkCatalogStats;
struct _vmbkCatalogStats {
    uint64_t files;
    uint64_t changed;
    uint64_t deleted;
    unsigned int filesystems;
};

/* Walk every mountable filesystem of a launched handle (unmounting what is mounted) into the
 * point's catalog.sqlite, written atomically; parent_dir: the parent point's directory or NULL. */
int vmbkCatalogBuild(guestfs_h *g, const vmbkInspection *insp, const vmbkPoint *point,
                     const char *parent_dir, vmbkCatalogStats *stats);

bool vmbkCatalogExists(const char *dir);

typedef void (*vmbkCatalogHitFunc)(void *opaque, const vmbkPoint *point, const char *path,
                                   const char *type, int64_t size, int64_t mtime);
/* Files in the point's catalog whose path matches the GLOB pattern (or, when the pattern has no
 * '/', whose name does).  Returns the number of hits, or -1. */
int vmbkCatalogFind(const vmbkPoint *point, const char *pattern, vmbkCatalogHitFunc hit,
                    void *opaque);
