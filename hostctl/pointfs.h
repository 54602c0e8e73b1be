/* vmbk: a point's filesystems through libguestfs (its qcow2 chain, read-only), or a live view */
#pragma once

#include <stdbool.h>

#include <guestfs.h>

#include "backupjob.h"
#include "inspection.h"
#include "repo.h"
#include "vmbk.h"

/* Is KVM unusable (the probe, run once per process)? */
bool vmbkGuestfsNeedTcg(void);

/* A handle with vmbk's settings: errors silenced (report them with vmbkErrorGuestfs), backend
 * 'direct' unless $LIBGUESTFS_BACKEND says otherwise, force_tcg when KVM does not work. */
guestfs_h *vmbkGuestfsNew(void);

/* Add the point's disk images read-only, in the manifest's order. */
int vmbkGuestfsAddPoint(guestfs_h *g, const vmbkPoint *point);

/* Launch, telling the user on stderr what the wait is for ("point 0002"). */
int vmbkGuestfsLaunch(guestfs_h *g, const char *what);

/* Mount a filesystem read-only at mp: ro, then for a dirty journal ro,noload (ext3/4) or
 * ro,norecovery (xfs). */
int vmbkGuestfsMountRo(guestfs_h *g, const vmbkGuestFs *fs, const char *mp, const char *what);

/* What the file commands work on: a point, or --point live. */
typedef struct _vmbkSource vmbkSource;
struct _vmbkSource {
    guestfs_h *g;
    char *what;                /* "point 0002 of domain 'web01'", for messages */
    vmbkInspection *insp;      /* filesystems and the guest's mountpoints */
    bool tree;                 /* the guest's mountpoints are mounted */
    char *device;              /* or this one filesystem is mounted at / */
    virConnectPtr conn;        /* live only */
    virDomainPtr dom;
    vmbkBackupJob *job;
};

/* Open repo/domain's point id ("latest", an id, or "live": the running domain now), launched,
 * with its inspection (saved with the point, or done now). */
vmbkSource *vmbkSourceOpen(vmbkGlobal *global, const char *repo_path, const char *domain,
                           const char *id);
void vmbkSourceClose(vmbkSource *src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkSource, vmbkSourceClose);

/* Turn a guest PATH or DEVICE:PATH into a path in the handle, mounting what it needs. */
char *vmbkSourceResolve(vmbkSource *src, const char *arg);

/* Every entry below the directory top (not top itself), a directory before its contents: fn gets
 * one batch of names of the directory rel (relative to top, "" for top), their lstat, and with
 * links their readlink ("" for what is not a symlink).  One find0 call, then one lstatnslist (and
 * readlinklist) per directory and 1000 names. */
#define VMBK_WALK_BATCH 1000
typedef int (*vmbkWalkFunc)(void *opaque, const char *rel, char **names,
                            struct guestfs_statns_list *sts, char **links);
int vmbkGuestfsWalk(guestfs_h *g, const char *top, bool links, vmbkWalkFunc fn, void *opaque,
                    const char *what);

/* lstat (follow: stat) a resolved path; one that does not exist is reported naming arg. */
int vmbkSourceStat(vmbkSource *src, const char *arg, const char *path, bool follow,
                   struct guestfs_statns **st);
