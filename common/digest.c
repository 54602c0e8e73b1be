/* vmbk: the digest of a disk's guest-visible content (see digest.h for the definition) */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>

#include "digest.h"
#include "vmbk-error.h"

#define HASH VMBK_DIGEST_HASH_SIZE
#define LEAF VMBK_DIGEST_LEAF_SIZE
#define BATCH 4096 /* leaves per read or write of the leaves file: 128 KiB */

static const char digest_tag[] = "vmbk-tree-v1";

/* The hash of a full leaf of zeroes, computed once. */
static uint8_t zero_leaf_hash[HASH];
static GOnce zero_leaf_once = G_ONCE_INIT;

static gpointer
vmbkDigestInitZero(gpointer unused G_GNUC_UNUSED)
{
    g_autofree void *zero = g_malloc0(LEAF);

    gnutls_hash_fast(GNUTLS_DIG_SHA256, zero, LEAF, zero_leaf_hash);
    return NULL;
}

static vmbkDigest *
vmbkDigestNew(uint64_t size, int fd, const char *path)
{
    vmbkDigest *digest = g_new0(vmbkDigest, 1);

    g_once(&zero_leaf_once, vmbkDigestInitZero, NULL);
    digest->size = size;
    digest->nleaves = (size + LEAF - 1) / LEAF;
    digest->fd = fd;
    digest->path = g_strdup(path ? path : "a temporary file");
    return digest;
}

void
vmbkDigestFree(vmbkDigest *digest)
{
    if (!digest)
        return;
    if (digest->fd >= 0)
        close(digest->fd);
    g_free(digest->path);
    g_free(digest);
}

static int
vmbkDigestCopyFile(int dst, const char *parent, uint64_t len)
{
    int src = open(parent, O_RDONLY | O_CLOEXEC);
    uint64_t done = 0;
    struct stat sb;

    if (src < 0) {
        vmbkErrorSystem(errno, "cannot read the parent's block digests '%s'", parent);
        return -1;
    }
    if (fstat(src, &sb) < 0 || (uint64_t) sb.st_size != len) {
        vmbkError(VMBK_ERR_OPERATION, "the block digests '%s' have %lld bytes, not %" G_GUINT64_FORMAT
                  "; the point is damaged", parent, (long long) sb.st_size, len);
        close(src);
        return -1;
    }
    while (done < len) {
        ssize_t r = copy_file_range(src, NULL, dst, NULL, len - done, 0);
        if (r <= 0) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot copy the block digests '%s'", parent);
            close(src);
            return -1;
        }
        done += r;
    }
    close(src);
    return 0;
}

vmbkDigest *
vmbkDigestCreate(const char *path, const char *parent, uint64_t size)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *tmp = NULL;
    uint64_t len = (size + LEAF - 1) / LEAF * HASH;
    int fd;

    if (path) {
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    } else if ((fd = g_file_open_tmp("vmbk-leaves-XXXXXX", &tmp, &err)) >= 0) {
        g_unlink(tmp);
    } else {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create a temporary file: %s", err->message);
        return NULL;
    }
    if (fd < 0) {
        vmbkErrorSystem(errno, "cannot create the block digests '%s'", path);
        return NULL;
    }
    if (parent ? vmbkDigestCopyFile(fd, parent, len) < 0 : ftruncate(fd, len) < 0) {
        if (!parent)
            vmbkErrorSystem(errno, "cannot size the block digests '%s'", path ? path : tmp);
        close(fd);
        return NULL;
    }
    return vmbkDigestNew(size, fd, path);
}

vmbkDigest *
vmbkDigestOpen(const char *path, uint64_t size)
{
    uint64_t len = (size + LEAF - 1) / LEAF * HASH;
    struct stat sb;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        vmbkErrorSystem(errno, "cannot read the block digests '%s'", path);
        return NULL;
    }
    if (fstat(fd, &sb) < 0 || (uint64_t) sb.st_size != len) {
        vmbkError(VMBK_ERR_OPERATION, "the block digests '%s' have %lld bytes, not %" G_GUINT64_FORMAT
                  "; the point is damaged", path, (long long) sb.st_size, len);
        close(fd);
        return NULL;
    }
    return vmbkDigestNew(size, fd, path);
}

size_t
vmbkDigestLeafLength(const vmbkDigest *digest, uint64_t i)
{
    return MIN((uint64_t) LEAF, digest->size - i * LEAF);
}

static bool
vmbkIsZero(const void *buf, size_t len)
{
    const uint64_t *p = buf;
    size_t i;

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

static int
vmbkDigestWrite(vmbkDigest *digest, uint64_t first, const uint8_t *hashes, uint64_t n)
{
    size_t len = n * HASH, done = 0;

    while (done < len) {
        ssize_t r = pwrite(digest->fd, hashes + done, len - done, first * HASH + done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot write the block digests '%s'",
                            digest->path);
            return -1;
        }
        done += r;
    }
    return 0;
}

static void
vmbkDigestZeroHash(const vmbkDigest *digest, uint64_t i, uint8_t *out)
{
    size_t len = vmbkDigestLeafLength(digest, i);

    if (len == LEAF) {
        memcpy(out, zero_leaf_hash, HASH);
    } else {
        g_autofree void *zero = g_malloc0(len);
        gnutls_hash_fast(GNUTLS_DIG_SHA256, zero, len, out);
    }
}

int
vmbkDigestHashLeaves(vmbkDigest *digest, uint64_t first, uint64_t n, const void *buf, bool *zero)
{
    g_autofree uint8_t *hashes = g_malloc(n * HASH);
    uint64_t k;

    for (k = 0; k < n; k++) {
        const uint8_t *leaf = (const uint8_t *) buf + k * LEAF;
        size_t len = vmbkDigestLeafLength(digest, first + k);

        zero[k] = vmbkIsZero(leaf, len);
        if (zero[k])
            vmbkDigestZeroHash(digest, first + k, hashes + k * HASH);
        else
            gnutls_hash_fast(GNUTLS_DIG_SHA256, leaf, len, hashes + k * HASH);
    }
    return vmbkDigestWrite(digest, first, hashes, n);
}

int
vmbkDigestSetZeroLeaves(vmbkDigest *digest, uint64_t first, uint64_t n)
{
    g_autofree uint8_t *hashes = g_malloc(MIN(n, (uint64_t) BATCH) * HASH);
    uint64_t done = 0, k;

    while (done < n) {
        uint64_t m = MIN(n - done, (uint64_t) BATCH);

        for (k = 0; k < m; k++)
            vmbkDigestZeroHash(digest, first + done + k, hashes + k * HASH);
        if (vmbkDigestWrite(digest, first + done, hashes, m) < 0)
            return -1;
        done += m;
    }
    return 0;
}

/* Read leaves [first, first + n) into buf. */
int
vmbkDigestRead(vmbkDigest *digest, uint64_t first, uint64_t n, uint8_t *buf)
{
    size_t len = n * HASH, done = 0;

    while (done < len) {
        ssize_t r = pread(digest->fd, buf + done, len - done, first * HASH + done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read the block digests '%s'",
                            digest->path);
            return -1;
        }
        done += r;
    }
    return 0;
}

char *
vmbkDigestRoot(vmbkDigest *digest)
{
    g_autofree uint8_t *buf = g_malloc(BATCH * HASH);
    gnutls_hash_hd_t h;
    uint8_t size_le[8];
    uint8_t root[HASH];
    GString *hex;
    uint64_t i;

    for (i = 0; i < 8; i++)
        size_le[i] = (digest->size >> (8 * i)) & 0xff;
    gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
    gnutls_hash(h, digest_tag, strlen(digest_tag));
    gnutls_hash(h, size_le, sizeof(size_le));
    for (i = 0; i < digest->nleaves; i += BATCH) {
        uint64_t m = MIN(digest->nleaves - i, (uint64_t) BATCH);

        if (vmbkDigestRead(digest, i, m, buf) < 0) {
            gnutls_hash_deinit(h, root);
            return NULL;
        }
        gnutls_hash(h, buf, m * HASH);
    }
    gnutls_hash_deinit(h, root);
    hex = g_string_sized_new(HASH * 2);
    for (i = 0; i < HASH; i++)
        g_string_append_printf(hex, "%02x", root[i]);
    return g_string_free(hex, FALSE);
}

int64_t
vmbkDigestFirstDifference(vmbkDigest *a, vmbkDigest *b)
{
    g_autofree uint8_t *ba = g_malloc(BATCH * HASH);
    g_autofree uint8_t *bb = g_malloc(BATCH * HASH);
    uint64_t i, k;

    for (i = 0; i < a->nleaves && i < b->nleaves; i += BATCH) {
        uint64_t m = MIN(MIN(a->nleaves, b->nleaves) - i, (uint64_t) BATCH);

        if (vmbkDigestRead(a, i, m, ba) < 0 || vmbkDigestRead(b, i, m, bb) < 0)
            return -1;
        for (k = 0; k < m; k++) {
            if (memcmp(ba + k * HASH, bb + k * HASH, HASH) != 0)
                return i + k;
        }
    }
    return -1;
}

int
vmbkDigestSync(vmbkDigest *digest)
{
    if (fsync(digest->fd) < 0) {
        vmbkErrorSystem(errno, "cannot sync the block digests '%s'", digest->path);
        return -1;
    }
    return 0;
}

char *
vmbkDigestFile(const char *path, uint64_t *size)
{
    g_autofree unsigned char *buf = g_malloc(1024 * 1024);
    unsigned char out[32];
    gnutls_hash_hd_t h;
    uint64_t total = 0;
    ssize_t n;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        vmbkErrorSystem(errno, "cannot open '%s'", path);
        return NULL;
    }
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
        close(fd);
        vmbkError(VMBK_ERR_INTERNAL, "cannot start a SHA-256 hash");
        return NULL;
    }
    while ((n = read(fd, buf, 1024 * 1024)) > 0) {
        gnutls_hash(h, buf, n);
        total += n;
    }
    if (n < 0) {
        vmbkErrorSystem(errno, "cannot read '%s'", path);
        gnutls_hash_deinit(h, NULL);
        close(fd);
        return NULL;
    }
    close(fd);
    gnutls_hash_deinit(h, out);
    if (size)
        *size = total;
    {
        GString *hex = g_string_sized_new(64);
        size_t i;
        for (i = 0; i < sizeof(out); i++)
            g_string_append_printf(hex, "%02x", out[i]);
        return g_string_free(hex, FALSE);
    }
}

static char *
vmbkDigestFdTree(int fd, const char *path, uint64_t *size)
{
    enum { N = 16 }; /* leaves per read: 1 MiB */
    g_autofree unsigned char *buf = g_malloc(N * LEAF);
    g_autoptr(vmbkDigest) digest = NULL;
    struct stat sb;
    uint64_t leaf = 0;

    if (fstat(fd, &sb) < 0) {
        vmbkErrorSystem(errno, "cannot read '%s'", path);
        return NULL;
    }
    if (!(digest = vmbkDigestCreate(NULL, NULL, sb.st_size)) ||
        vmbkDigestSetZeroLeaves(digest, 0, digest->nleaves) < 0)
        return NULL;
    while (leaf < digest->nleaves) {
        off_t data = lseek(fd, leaf * LEAF, SEEK_DATA);
        off_t hole;
        uint64_t end;

        if (data < 0 && errno == ENXIO)
            break; /* a hole to the end */
        if (data < 0 || (hole = lseek(fd, data, SEEK_HOLE)) < 0) {
            vmbkErrorSystem(errno, "cannot read '%s'", path);
            return NULL;
        }
        leaf = data / LEAF;
        end = MIN(((uint64_t) hole + LEAF - 1) / LEAF, digest->nleaves);
        while (leaf < end) {
            uint64_t n = MIN(end - leaf, (uint64_t) N);
            size_t len = 0, want = 0;
            bool zero[N];
            uint64_t k;

            for (k = 0; k < n; k++)
                want += vmbkDigestLeafLength(digest, leaf + k);
            while (len < want) {
                ssize_t r = pread(fd, buf + len, want - len, leaf * LEAF + len);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read '%s'", path);
                    return NULL;
                }
                len += r;
            }
            if (vmbkDigestHashLeaves(digest, leaf, n, buf, zero) < 0)
                return NULL;
            leaf += n;
        }
    }
    if (size)
        *size = sb.st_size;
    return vmbkDigestRoot(digest);
}

char *
vmbkDigestFileTree(const char *path, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *root;

    if (fd < 0) {
        vmbkErrorSystem(errno, "cannot open '%s'", path);
        return NULL;
    }
    root = vmbkDigestFdTree(fd, path, size);
    close(fd);
    return root;
}
