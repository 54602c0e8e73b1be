/* vmbk: a point's filesystems through the warm backup appliance (ls, cat, copy-out --via
 * appliance), as pointfs.h does through a libguestfs launch */
#pragma once

#include <signal.h>
#include <stdbool.h>

#include <guestfs.h>

#include "appliance.h"
#include "inspection.h"
#include "repo.h"
#include "vmbk.h"

typedef struct _vmbkApplFs vmbkApplFs;
struct _vmbkApplFs {
    char *what;          /* "point 0002 of domain 'web01'", for messages */
    vmbkPoint *point;
    vmbkInspection *insp; /* the point's saved inspection; NULL if it has none */
    virConnectPtr conn;
    vmbkApplianceSession *s;
    GPtrArray *disks;    /* of vmbkApplianceDisk, attached: the point's, in the manifest's order */
    char *jobdir;
    char *mount;         /* the agent's tree handle */
    bool tree;           /* the guest's mountpoints are mounted */
    char *device;        /* or this one filesystem is mounted at / */
    vmbkGuestFs probe;   /* without inspection: the DEVICE asked for, its type found by the agent */
    struct sigaction old_int, old_term, old_hup, old_pipe;
};

/* Open repo/domain's point id ("latest" or an id; not "live") with its saved inspection.  The
 * appliance is started and the images attached only when a path is resolved.  Until
 * vmbkApplFsClose, SIGINT/SIGTERM/SIGHUP interrupt the command (whose cleanup then runs) and
 * SIGPIPE is ignored (a write to a closed pipe fails, and the cleanup runs). */
vmbkApplFs *vmbkApplFsOpen(vmbkGlobal *global, const char *repo_path, const char *domain,
                           const char *id);
/* Unmount, detach, remove the job directory, restore the signals. */
void vmbkApplFsClose(vmbkApplFs *fs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkApplFs, vmbkApplFsClose);

/* Turn a guest PATH or DEVICE:PATH into a path in the agent's tree, mounting what it needs
 * (vmbkSourceResolve's rules). */
char *vmbkApplFsResolve(vmbkApplFs *fs, const char *arg);

/* lstat (follow: stat) a resolved path; messages as vmbkSourceStat's.  *link: the symlink's
 * target (may be NULL). */
int vmbkApplFsStat(vmbkApplFs *fs, const char *arg, const char *path, bool follow,
                   struct guestfs_statns **st, char **link);

/* The entries of a directory in name order: names[i], sts[i], links[i] ("" if not a symlink);
 * an entry whose lstat failed has st_ino -1. */
int vmbkApplFsList(vmbkApplFs *fs, const char *arg, const char *path, GPtrArray **names,
                   GArray **sts, GPtrArray **links);

/* Copy a regular file (follow: through symlinks) to fd; sparse: holes are seeked over and fd is
 * truncated to the file's size (fd is a new empty file), else everything is written in order. */
int vmbkApplFsRead(vmbkApplFs *fs, const char *arg, const char *path, bool follow, bool sparse,
                   int fd);

/* Which of the hotplugged disks (of vmbkApplianceDisk, in the point's order) and partition (0:
 * the whole disk) a device as libguestfs names it (/dev/sdb2) is; what: the point, for the
 * message when it is none (LVM, RAID). */
int vmbkApplianceFsDevice(GPtrArray *disks, const char *device, const char *what,
                          const char **serial, unsigned int *part);

/* Set by SIGINT/SIGTERM/SIGHUP while a vmbkApplFs is open. */
extern volatile int vmbkApplFsInterrupted;
