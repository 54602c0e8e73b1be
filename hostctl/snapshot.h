/* vmbk: external disk-only snapshots as a frozen view, for disks without checkpoints */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

typedef struct _vmbkSnapshotView vmbkSnapshotView;
struct _vmbkSnapshotView {
    GPtrArray *targets;  /* disks put under an overlay */
    GPtrArray *overlays; /* their overlay files */
    bool quiesced;
};

/* Put each of disks (vmbkDisk) under a new qcow2 overlay in dir; their images are then frozen
 * and can be read while the guest runs on. */
vmbkSnapshotView *vmbkSnapshotBegin(virDomainPtr dom, const char *name, GPtrArray *disks,
                                    GPtrArray *all_targets, const char *dir, bool quiesce);

/* Commit each overlay back into its image and pivot the domain onto it, then free the view. */
int vmbkSnapshotEnd(virDomainPtr dom, const char *name, vmbkSnapshotView *view);

/* A domain left on an overlay of ours by an interrupted run is brought back to its images. */
int vmbkSnapshotRecover(virDomainPtr dom, const char *name);
