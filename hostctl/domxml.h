/* vmbk: what vmbk needs to know of a domain's XML */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef struct _vmbkDisk vmbkDisk;
struct _vmbkDisk {
    char *target; /* vda */
    char *type;   /* file, block, network, volume */
    char *source; /* the file or block device of the top image, NULL for network disks */
    char *format; /* qcow2, raw, ... (driver type) */
    bool readonly;
};

void vmbkDiskFree(vmbkDisk *disk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkDisk, vmbkDiskFree);

/* The domain's writable hard disks (<disk device='disk'>, no cdrom/floppy), in XML order.
 * 'name' is only for messages. */
GPtrArray *vmbkDomainDisks(const char *xml, const char *name);

/* Why this disk cannot have a checkpoint bitmap, or NULL if it can. */
const char *vmbkDiskCheckpointProblem(const vmbkDisk *disk);
