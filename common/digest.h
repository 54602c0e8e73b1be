/* vmbk: the digest of a disk's guest-visible content
 *
 * A SHA-256 tree with 64 KiB leaves, so that a backup computes it from what it copies (an
 * incremental replaces the leaves of the blocks it copied and keeps its parent's others) and zero
 * blocks cost nothing: leaf i = SHA-256 of bytes [i * 64 KiB, (i + 1) * 64 KiB) of the disk (the
 * last leaf is shorter when the size is not a multiple); root = SHA-256 of "vmbk-tree-v1", the size
 * as 8 bytes little-endian, then the leaves in order.  The manifest names it "sha256-tree-64k".
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
    uint8_t *leaves;  /* nleaves * 32 bytes */
};

vmbkDigest *vmbkDigestNew(uint64_t size);
void vmbkDigestFree(vmbkDigest *digest);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkDigest, vmbkDigestFree);

/* Length of leaf i (the last one may be short). */
size_t vmbkDigestLeafLength(const vmbkDigest *digest, uint64_t i);

/* Set leaf i from its bytes; returns true if they were all zero. */
bool vmbkDigestSetLeaf(vmbkDigest *digest, uint64_t i, const void *buf);
/* Set leaf i to the hash of zeroes. */
void vmbkDigestSetZeroLeaf(vmbkDigest *digest, uint64_t i);

/* The root as 64 lowercase hex digits. */
char *vmbkDigestRoot(const vmbkDigest *digest);

/* The leaves are kept beside each image, for the next incremental. */
int vmbkDigestSave(const vmbkDigest *digest, const char *path);
vmbkDigest *vmbkDigestLoad(const char *path, uint64_t size);
