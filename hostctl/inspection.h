/* vmbk: what libguestfs inspection says of a point, kept as inspection.xml in its directory */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <glib.h>
#include <guestfs.h>

#include "json.h"

typedef struct _vmbkGuestFs vmbkGuestFs;
struct _vmbkGuestFs {
    char *device;     /* as the appliance names it: /dev/sda1, /dev/VG/LV */
    char *type;       /* ext4, xfs, swap, unknown ... */
    char *mountpoint; /* where the guest's OS mounts it, or NULL */
};

typedef struct _vmbkInspection vmbkInspection;
struct _vmbkInspection {
    char *root;         /* the OS's root filesystem, NULL when no OS was found */
    char *type;         /* linux, windows ... */
    char *distro;       /* debian ... */
    char *version;      /* major.minor */
    char *hostname;
    char *product_name;
    char *arch;
    GPtrArray *filesystems; /* of vmbkGuestFs, mountpoints sorted as the guest mounts them */
};

void vmbkInspectionFree(vmbkInspection *insp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkInspection, vmbkInspectionFree);

/* Inspect the disks of a launched handle (nothing mounted, nothing left mounted). */
vmbkInspection *vmbkInspect(guestfs_h *g, const char *what);

/* inspection.xml in dir, written atomically; and read back (*absent: there is none). */
int vmbkInspectionWrite(const vmbkInspection *insp, const char *dir);
vmbkInspection *vmbkInspectionLoad(const char *dir, bool *absent);

/* Can the filesystem be mounted at all (not swap, not unknown, not an LVM PV or LUKS)? */
bool vmbkGuestFsMountable(const vmbkGuestFs *fs);
/* The filesystem on device, or NULL. */
vmbkGuestFs *vmbkInspectionFindFs(const vmbkInspection *insp, const char *device);
/* Does the guest's tree (an operating system whose first filesystem is "/") exist? */
bool vmbkInspectionHasTree(const vmbkInspection *insp);
/* "DEVICE (TYPE), ..." of the mountable filesystems, for messages ("" if none). */
char *vmbkInspectionFsList(const vmbkInspection *insp);
/* A guest path below a filesystem mounted at mountpoint, as a path of the guest's tree. */
char *vmbkGuestPathJoin(const char *mountpoint, const char *path);

/* --json: the inspection object; and the text 'vmbk inspect' prints. */
void vmbkInspectionJson(vmbkJson *out, const vmbkInspection *insp);
void vmbkInspectionPrint(FILE *fp, const vmbkInspection *insp);
