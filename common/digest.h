/* vmbk: the digest of a disk's guest-visible content
 *
 * A SHA-256 tree with 64 KiB leaves, so that a backup computes it from what it copies (an
 * incremental replaces the leaves of the blocks it copied and keeps its parent's others) and zero
 * blocks cost nothing: leaf i = SHA-256 of bytes [i * 64 KiB, (i + 1) * 64 KiB) of the disk (the
 * last leaf is shorter when the size is not a multiple); root = SHA-256 of "vmbk-tree-v1", the size
 * as 8 bytes little-endian, then the leaves in order.  The manifest names it "sha256-tree-64k".
 *
 * The leaves live in a file (TARGET.leaves beside each image, or an unlinked temporary one), read
 * and written with pread/pwrite: 512 KiB per GiB of disk never sits in vmbk's memory, whatever
 * the disk's size.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define VMBK_DIGEST_ALGORITHM "sha256-tree-64k"
#define VMBK_DIGEST_LEAF_SIZE (64 * 1024)
#define VMBK_DIGEST_HASH_SIZE 32

typedef struct _vmbkDigest vmbkDigest;
struct _vmbkDigest {
    uint64_t size;    /* the disk's virtual size */
    uint64_t nleaves; /* ceil(size / leaf size) */
    int fd;           /* the leaves, nleaves * 32 bytes */
    char *path;       /* for messages */
};

/* A new digest whose leaves go to path (NULL: an unlinked temporary file), starting from a copy of
 * the parent's leaves file if parent is not NULL (an incremental), else all zero bytes. */
vmbkDigest *vmbkDigestCreate(const char *path, const char *parent, uint64_t size);
/* An existing leaves file, read-only. */
vmbkDigest *vmbkDigestOpen(const char *path, uint64_t size);
void vmbkDigestFree(vmbkDigest *digest);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkDigest, vmbkDigestFree);

/* Length of leaf i (the last one may be short). */
size_t vmbkDigestLeafLength(const vmbkDigest *digest, uint64_t i);

/* Hash n consecutive leaves starting at first from buf into the digest; zero[k] tells whether
 * leaf first + k was all zero bytes.  Thread-safe. */
int vmbkDigestHashLeaves(vmbkDigest *digest, uint64_t first, uint64_t n, const void *buf,
                         bool *zero);
/* Set n leaves starting at first to the hash of zeroes.  Thread-safe. */
int vmbkDigestSetZeroLeaves(vmbkDigest *digest, uint64_t first, uint64_t n);

/* Read n leaf hashes starting at first into buf (n * 32 bytes). */
int vmbkDigestRead(vmbkDigest *digest, uint64_t first, uint64_t n, uint8_t *buf);

/* The root as 64 lowercase hex digits, or NULL (reported). */
char *vmbkDigestRoot(vmbkDigest *digest);

/* The first leaf where two digests of one size differ, or -1 if none (or on a read error). */
int64_t vmbkDigestFirstDifference(vmbkDigest *a, vmbkDigest *b);

/* fsync the leaves file. */
int vmbkDigestSync(vmbkDigest *digest);

/* The plain SHA-256 of a whole file, in hex (plugin outputs); its size in *size. */
char *vmbkDigestFile(const char *path, uint64_t *size);

/* The sha256-tree-64k digest of a whole file (plugin outputs), as for a disk of the file's size:
 * only its data ranges are read (SEEK_DATA), so a sparse image costs what it stores. */
char *vmbkDigestFileTree(const char *path, uint64_t *size);
