/* vmbk: rebuilding a disk from the stream plugin's files (a full and its redo files)
 *
 * Each file is read once, front to back, with read(2): a file, a fifo, a tape or standard input
 * ("-") all work.  Only the output is written at random.  The format is common/streamfmt.h.
 */
#pragma once

#include <stdint.h>

#include <glib.h>

#include "repo.h"

typedef struct _vmbkStreamInfo vmbkStreamInfo;
struct _vmbkStreamInfo {
    char *target;
    char *point;
    char *parent; /* "" for a full */
    char *uuid;
    char *domain;
    char *time;
    uint64_t disk_size;
};

void vmbkStreamInfoFree(vmbkStreamInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkStreamInfo, vmbkStreamInfoFree);

/* Read and check the header of the stream file at path (not "-"). */
vmbkStreamInfo *vmbkStreamReadInfo(const char *path);

/* Write dst, a new sparse raw file (it must not exist), from the streams at paths (NULL-
 * terminated, the full first, then its redo files in order; "-" is standard input, once).  With
 * digest, the result must also have that sha256-tree-64k root.  Any mismatch is reported naming
 * the file and the problem, and dst is removed. */
int vmbkStreamRestore(const char *const *paths, const char *dst, const char *digest);

/* The stream files, full first, that rebuild disk target at point: the point's
 * stream/TARGET.stream, then the one of the point its header names as parent, and so on back to
 * a full.  Returns a NULL-terminated array of paths. */
GStrv vmbkStreamChain(GPtrArray *points, const vmbkPoint *point, const char *target);
