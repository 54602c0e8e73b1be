/* vmbk: copy a disk from an NBD export into an NBD-served image, computing its digest */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "nbdexport.h"

typedef void (*vmbkCopyProgress)(void *opaque, uint64_t done, uint64_t total);

typedef struct _vmbkCopy vmbkCopy;
struct _vmbkCopy {
    /* Input */
    const char *what;         /* "disk 'vda' of domain 'web01'", for messages */
    const char *src_socket;   /* unix socket of the export to read */
    const vmbkNbdExport *src_tcp; /* or, when it serves on TCP, where (src_socket unused) */
    const char *src_export;   /* its export name ("" for qemu-nbd) */
    const char *dirty_bitmap; /* NULL: copy everything allocated; else "qemu:dirty-bitmap:..." */
    const char *dst_socket;   /* NULL: read and digest only (verify) */
    bool dst_fresh;           /* the destination reads as zeroes: leave zero blocks unwritten */
    unsigned int threads;     /* connections to each side */
    volatile int *interrupted; /* set by a signal handler: stop */
    vmbkCopyProgress progress;
    void *progress_opaque;

    /* The digest to fill (vmbkDigestCreate): an incremental's starts as a copy of its parent's
     * and gets the leaves it reads replaced.  NULL: one in a temporary file, made here. */
    vmbkDigest *digest;

    /* Output */
    uint64_t size;          /* the export's size */
    uint64_t bytes_read;    /* read from the source */
    uint64_t bytes_written; /* data written to the destination */
    uint64_t bytes_zeroed;  /* written as zeroes */
};

int vmbkCopyRun(vmbkCopy *copy);

/* Worker threads: $VMBK_COPY_THREADS, else one per CPU up to 4. */
unsigned int vmbkCopyDefaultThreads(void);
