/* vmbk: the plugin runner's insides, shared by runner.c (the command and the block walk),
 * sink.c (outputs) and fswalk.c (the file walk) */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <libnbd.h>

#include "vmbk-plugin.h"

struct archive;

/* What vmbk_read reads. */
struct vmbk_source {
    struct nbd_handle *nbd; /* a disk, or */
    struct archive *ar;     /* the current file of a filesystem's tar stream */
    uint64_t pos;           /* files: where the next read must start */
    uint64_t size;
    const char *what;       /* for messages */
};

struct vmbk_sink {
    char *dir;         /* the point's folder for this plugin */
    char *parent_dir;  /* the parent point's folder for it, or NULL */
    char *scratch_dir; /* for VMBK_OUTPUT_SCRATCH */
    GPtrArray *open;   /* of struct vmbk_output: closed and freed at the end */
};

/* The largest extent a plugin is given, and vmbk_read reads at once. */
#define VMBK_RUNNER_MAX_EXTENT (32 * 1024 * 1024)

/* The extents of the disk served on nbd (connected with base:allocation and
 * qemu:allocation-depth), in order, merged and cut at VMBK_RUNNER_MAX_EXTENT: all of them, or
 * (changed) those its top image holds, i.e. what the point changed. */
typedef int (*vmbkExtentFn)(void *opaque, uint64_t offset, uint64_t length, int type);
int vmbkRunnerExtents(struct nbd_handle *nbd, const char *target, uint64_t size, bool changed,
                      vmbkExtentFn fn, void *opaque, volatile int *interrupted);

/* sink.c */
struct vmbk_sink *vmbkSinkNew(const char *dir, const char *parent_dir, const char *scratch_dir);
/* Close what the plugin left open (an error if keep); free. */
int vmbkSinkFinish(struct vmbk_sink *sink, bool keep);

/* fswalk.c: walk every filesystem of the images (qcow2, read-only) with the plugin. */
typedef struct _vmbkFsVisitor vmbkFsVisitor;
struct _vmbkFsVisitor {
    int (*fs_begin)(void *opaque, const struct vmbk_fs *fs);
    int (*entry)(void *opaque, const struct vmbk_fs *fs, const struct vmbk_entry *entry);
    int (*fs_end)(void *opaque, const struct vmbk_fs *fs);
    void *opaque;
    volatile int *interrupted;
};
int vmbkFsWalk(GPtrArray *images, const vmbkFsVisitor *v);
/* The inspection vmbkFsWalk walks by: the filesystems of the images, in its order (it launches
 * libguestfs); NULL (reported). */
struct _vmbkInspection;
struct _vmbkInspection *vmbkFsWalkInspect(GPtrArray *images);
/* A name for a filesystem, safe as a file name: "/dev/sda1" -> "sda1", "/dev/vg/lv" -> "vg-lv". */
char *vmbkFsWalkName(const char *device);
/* vmbk_read of a file of the walk. */
int vmbkFsWalkRead(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset);
