/* vmbk: the digest of a disk's guest-visible content (see digest.h for the definition) */
#include <config.h>

#include <errno.h>
#include <string.h>

#include <glib.h>
#include <gnutls/crypto.h>

#include "digest.h"
#include "vmbk-error.h"

static const char digest_tag[] = "vmbk-tree-v1";

/* The hash of a full leaf of zeroes, computed once. */
static uint8_t zero_leaf_hash[VMBK_DIGEST_HASH_SIZE];
static GOnce zero_leaf_once = G_ONCE_INIT;

static gpointer
vmbkDigestInitZero(gpointer unused G_GNUC_UNUSED)
{
    g_autofree void *zero = g_malloc0(VMBK_DIGEST_LEAF_SIZE);

    gnutls_hash_fast(GNUTLS_DIG_SHA256, zero, VMBK_DIGEST_LEAF_SIZE, zero_leaf_hash);
    return NULL;
}

vmbkDigest *
vmbkDigestNew(uint64_t size)
{
    vmbkDigest *digest = g_new0(vmbkDigest, 1);

    g_once(&zero_leaf_once, vmbkDigestInitZero, NULL);
    digest->size = size;
    digest->nleaves = (size + VMBK_DIGEST_LEAF_SIZE - 1) / VMBK_DIGEST_LEAF_SIZE;
    digest->leaves = g_malloc0(digest->nleaves * VMBK_DIGEST_HASH_SIZE + 1);
    return digest;
}

void
vmbkDigestFree(vmbkDigest *digest)
{
    if (!digest)
        return;
    g_free(digest->leaves);
    g_free(digest);
}

size_t
vmbkDigestLeafLength(const vmbkDigest *digest, uint64_t i)
{
    uint64_t start = i * VMBK_DIGEST_LEAF_SIZE;

    return MIN((uint64_t) VMBK_DIGEST_LEAF_SIZE, digest->size - start);
}

static bool
vmbkIsZero(const void *buf, size_t len)
{
    const uint64_t *p = buf;
    size_t i;

    /* Leaves are multiples of 8 bytes except a disk's odd tail. */
    for (i = 0; i < len / 8; i++) {
        if (p[i])
            return false;
    }
    for (i = len & ~(size_t) 7; i < len; i++) {
        if (((const uint8_t *) buf)[i])
            return false;
    }
    return true;
}

bool
vmbkDigestSetLeaf(vmbkDigest *digest, uint64_t i, const void *buf)
{
    size_t len = vmbkDigestLeafLength(digest, i);

    if (vmbkIsZero(buf, len)) {
        vmbkDigestSetZeroLeaf(digest, i);
        return true;
    }
    gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, digest->leaves + i * VMBK_DIGEST_HASH_SIZE);
    return false;
}

void
vmbkDigestSetZeroLeaf(vmbkDigest *digest, uint64_t i)
{
    size_t len = vmbkDigestLeafLength(digest, i);
    uint8_t *leaf = digest->leaves + i * VMBK_DIGEST_HASH_SIZE;

    if (len == VMBK_DIGEST_LEAF_SIZE) {
        memcpy(leaf, zero_leaf_hash, VMBK_DIGEST_HASH_SIZE);
    } else {
        g_autofree void *zero = g_malloc0(len);
        gnutls_hash_fast(GNUTLS_DIG_SHA256, zero, len, leaf);
    }
}

char *
vmbkDigestRoot(const vmbkDigest *digest)
{
    gnutls_hash_hd_t h;
    uint8_t size_le[8];
    uint8_t root[VMBK_DIGEST_HASH_SIZE];
    GString *hex = g_string_sized_new(VMBK_DIGEST_HASH_SIZE * 2);
    size_t i;

    for (i = 0; i < 8; i++)
        size_le[i] = (digest->size >> (8 * i)) & 0xff;
    gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
    gnutls_hash(h, digest_tag, strlen(digest_tag));
    gnutls_hash(h, size_le, sizeof(size_le));
    gnutls_hash(h, digest->leaves, digest->nleaves * VMBK_DIGEST_HASH_SIZE);
    gnutls_hash_deinit(h, root);
    for (i = 0; i < sizeof(root); i++)
        g_string_append_printf(hex, "%02x", root[i]);
    return g_string_free(hex, FALSE);
}

int
vmbkDigestSave(const vmbkDigest *digest, const char *path)
{
    g_autoptr(GError) err = NULL;

    if (!g_file_set_contents(path, (const char *) digest->leaves,
                             digest->nleaves * VMBK_DIGEST_HASH_SIZE, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot write the block digests '%s': %s", path,
                  err->message);
        return -1;
    }
    return 0;
}

vmbkDigest *
vmbkDigestLoad(const char *path, uint64_t size)
{
    g_autoptr(vmbkDigest) digest = vmbkDigestNew(size);
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read the block digests '%s': %s", path,
                  err->message);
        return NULL;
    }
    if (len != digest->nleaves * VMBK_DIGEST_HASH_SIZE) {
        vmbkError(VMBK_ERR_OPERATION, "the block digests '%s' have %zu bytes, not %" G_GUINT64_FORMAT
                  "; the point is damaged", path, (size_t) len,
                  digest->nleaves * VMBK_DIGEST_HASH_SIZE);
        return NULL;
    }
    memcpy(digest->leaves, data, len);
    return g_steal_pointer(&digest);
}
