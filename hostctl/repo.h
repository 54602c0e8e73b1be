/* vmbk: the repository of points
 *
 *   REPO/.vmbk-repo                    format version and the repository's id
 *   REPO/DOMAIN/.lock                  held by a backup of DOMAIN
 *   REPO/DOMAIN/domain.xml             the domain's XML at the latest point
 *   REPO/DOMAIN/points/0001/           a complete point: manifest.xml (written last), domain.xml,
 *                                      TARGET.qcow2 and TARGET.leaves per disk
 *                                      and, added after the commit by the indexer (optional):
 *                                      inspection.xml (inspection.c), catalog.sqlite (catalog.c)
 *   REPO/DOMAIN/points/.tmp-0002-XXXXXX/  a point being written; never listed, removed by the next
 *                                      backup
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

typedef struct _vmbkRepo vmbkRepo;
struct _vmbkRepo {
    char *path; /* absolute */
    char *id;   /* 8 hex digits, part of checkpoint names */
};

typedef struct _vmbkPointDisk vmbkPointDisk;
struct _vmbkPointDisk {
    char *target;          /* vda */
    char *image;           /* vda.qcow2, in the point's directory */
    char *source;          /* the domain's disk at backup time */
    char *source_format;   /* its format */
    uint64_t virtual_size; /* bytes */
    uint64_t stored_bytes; /* allocated bytes of this point's image file */
    char *digest;          /* root of the sha256-tree-64k digest */
};

/* What a plugin left in a point: its folder NAME/ in the point's directory. */
typedef struct _vmbkPointOutput vmbkPointOutput;
struct _vmbkPointOutput {
    char *name;   /* file name in the plugin's folder */
    uint64_t size;
    char *digest; /* sha256-tree-64k root, hex */
};

typedef struct _vmbkPointPlugin vmbkPointPlugin;
struct _vmbkPointPlugin {
    char *name;
    char *version;
    GPtrArray *config;  /* of "key=value" */
    GPtrArray *outputs; /* of vmbkPointOutput */
};

void vmbkPointOutputFree(vmbkPointOutput *out);
void vmbkPointPluginFree(vmbkPointPlugin *pp);

typedef struct _vmbkPoint vmbkPoint;
struct _vmbkPoint {
    char *dir;         /* absolute path of the point's directory */
    char *domain;      /* name */
    char *uuid;        /* domain uuid */
    char *id;          /* 0001 */
    char *parent;      /* NULL for a full */
    char *level;       /* full, inc, diff */
    char *time;        /* ISO 8601 UTC */
    char *method;      /* checkpoint, snapshot */
    char *checkpoint;  /* libvirt checkpoint created with the point, or NULL */
    char *consistency; /* crash, quiesced */
    GPtrArray *disks;  /* of vmbkPointDisk */
    GPtrArray *plugins; /* of vmbkPointPlugin (never NULL once loaded) */
};

void vmbkRepoFree(vmbkRepo *repo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkRepo, vmbkRepoFree);
void vmbkPointDiskFree(vmbkPointDisk *disk);
void vmbkPointFree(vmbkPoint *point);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkPoint, vmbkPointFree);

/* Open the repository at path; with create, make it (0700) if it does not exist. */
vmbkRepo *vmbkRepoOpen(const char *path, bool create);

/* REPO/DOMAIN, checked to be a usable name; created with create. */
char *vmbkRepoDomainDir(vmbkRepo *repo, const char *domain, bool create);

/* Take the domain's backup lock (non-blocking); returns the fd to close, or -1. */
int vmbkRepoLock(vmbkRepo *repo, const char *domain);

/* The domain's complete points, oldest first (an empty array when there are none); a point
 * whose manifest is damaged is left out with a warning. */
GPtrArray *vmbkRepoPoints(vmbkRepo *repo, const char *domain);
/* Report the first point of the domain whose manifest cannot be read (vmbkRepoPoints leaves such
 * points out, with a warning). */
int vmbkRepoCheckManifests(vmbkRepo *repo, const char *domain);
/* Domains that have a directory in the repository. */
GPtrArray *vmbkRepoDomains(vmbkRepo *repo);

/* The point named by id ("latest" or NULL: the newest) among points; reports if none, or if it
 * exists but is damaged (vmbkRepoPoints left it out). */
vmbkPoint *vmbkRepoFindPoint(vmbkRepo *repo, GPtrArray *points, const char *domain,
                             const char *id);

/* Remove half-written points left by an interrupted backup. */
int vmbkRepoCleanPartial(vmbkRepo *repo, const char *domain);

/* A new point's directory under its temporary name, and the id it will have. */
char *vmbkRepoBeginPoint(vmbkRepo *repo, const char *domain, GPtrArray *points, char **id);
/* Make it visible: fsync its files, rename it into place, fsync the directory. */
int vmbkRepoCommitPoint(const char *tmpdir, vmbkPoint *point);

/* Remove a directory and all below it (a partial point), following no symlink. */
int vmbkRepoRemoveTree(const char *dir);

/* fsync a file or directory. */
int vmbkRepoFsync(const char *path);
/* Put tmp (a finished file in the same directory) in place of path: fsync it, rename it, fsync
 * the directory. */
int vmbkRepoReplaceFile(const char *tmp, const char *path);

/* manifest.c */
int vmbkPointWriteManifest(const vmbkPoint *point, const char *dir);
vmbkPoint *vmbkPointLoad(const char *dir);
vmbkPointDisk *vmbkPointFindDisk(const vmbkPoint *point, const char *target);
vmbkPointPlugin *vmbkPointFindPlugin(const vmbkPoint *point, const char *name);
char *vmbkPointImagePath(const vmbkPoint *point, const vmbkPointDisk *disk);
