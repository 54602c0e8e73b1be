/* vmbk-agent: what the plugin run (agent-plugin.c) shares with its file walk (agent-walk.c) */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pluginapi.h"

/* What vmbk_read reads: a disk (fd, any offset), or a regular file of the walk (opened at its
 * first read, relative to its directory, and read in order). */
struct vmbk_source {
    int fd;
    uint64_t size;
    const char *what;
    bool file;
    int dirfd;        /* file: the directory it is in */
    const char *name; /* and its name there */
    uint64_t pos;     /* where the next read must start */
};

/* A filesystem of PLUGIN_FS, mounted by the agent (dir) before the child starts. */
typedef struct _vmbkAgentRunFs vmbkAgentRunFs;
struct _vmbkAgentRunFs {
    char *name, *device, *type, *mountpoint, *serial;
    unsigned int partition;
    char *dir;     /* where it is mounted, or NULL */
    char *skipped; /* why it is not */
};

/* In the child: walk the mounted filesystem, calling the plugin's fs_begin, entry, fs_end. */
int vmbkAgentWalk(vmbkPluginLoaded *pl, void *handle, const vmbkAgentRunFs *f,
                  volatile int *stop);
/* vmbk_read of a file: in order, from the file opened at the first read. */
int vmbkAgentWalkRead(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset);
/* In the child: tell vmbk (op=warn) what it prints as a warning. */
int vmbkAgentChildWarn(const char *message);
