/* vmbk: rebuilding a disk from the stream plugin's files (see streamrestore.h) */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gnutls/crypto.h>

#include "digest.h"
#include "streamfmt.h"
#include "streamrestore.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

#define BUFSIZE (4 * 1024 * 1024)
#define ZERO_BLOCK ((size_t) 64 * 1024) /* zeroes in data records this long become holes */
#define STREAM_DIR "stream" /* the plugin's name: its outputs' directory in a point */

/* One stream being read, front to back. */
typedef struct _vmbkStreamReader vmbkStreamReader;
struct _vmbkStreamReader {
    char *what;     /* "the stream 'FILE'", for messages */
    int fd;
    bool own_fd;    /* not standard input */
    gnutls_hash_hd_t hash;
    uint64_t pos;   /* bytes read */
};

/* The output being rebuilt. */
typedef struct _vmbkStreamOut vmbkStreamOut;
struct _vmbkStreamOut {
    const char *path;
    int fd;
    uint64_t size;
    bool fresh; /* only holes so far: zeroes need no writing */
    bool punch; /* the filesystem can punch holes */
    unsigned char *buf;
    unsigned char *zeroes; /* ZERO_BLOCK of them, where holes cannot be punched */
};

void
vmbkStreamInfoFree(vmbkStreamInfo *info)
{
    if (!info)
        return;
    g_free(info->target);
    g_free(info->point);
    g_free(info->parent);
    g_free(info->uuid);
    g_free(info->domain);
    g_free(info->time);
    g_free(info);
}

static char *
vmbkStreamWhat(const char *path)
{
    if (g_str_equal(path, "-"))
        return g_strdup("the stream on standard input");
    return g_strdup_printf("the stream '%s'", path);
}

static int
vmbkStreamOpen(vmbkStreamReader *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->what = vmbkStreamWhat(path);
    if (g_str_equal(path, "-")) {
        r->fd = STDIN_FILENO;
    } else if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        vmbkErrorSystem(errno, "cannot open the stream '%s'", path);
        return -1;
    } else {
        r->own_fd = true;
    }
    if (gnutls_hash_init(&r->hash, GNUTLS_DIG_SHA256) < 0) {
        r->hash = NULL;
        vmbkError(VMBK_ERR_INTERNAL, "cannot compute SHA-256 digests (gnutls)");
        return -1;
    }
    return 0;
}

static void
vmbkStreamClose(vmbkStreamReader *r)
{
    if (r->own_fd && r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->hash)
        gnutls_hash_deinit(r->hash, NULL);
    r->hash = NULL;
    g_clear_pointer(&r->what, g_free);
}

/* Read exactly n bytes (the stream ending first is an error), hashed with hash. */
static int
vmbkStreamRead(vmbkStreamReader *r, void *buf, size_t n, bool hash)
{
    size_t done = 0;

    while (done < n) {
        ssize_t k = read(r->fd, (char *) buf + done, n - done);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            vmbkErrorSystem(errno, "cannot read %s at byte %" PRIu64, r->what, r->pos + done);
            return -1;
        }
        if (k == 0) {
            vmbkError(VMBK_ERR_OPERATION, "%s ends at byte %" PRIu64 ", before its trailer: "
                      "it is truncated", r->what, r->pos + done);
            return -1;
        }
        done += k;
    }
    if (hash && gnutls_hash(r->hash, buf, n) < 0) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot compute the SHA-256 of %s", r->what);
        return -1;
    }
    r->pos += n;
    return 0;
}

/* Check a header (in the file's byte order) and turn it into a vmbkStreamInfo. */
static vmbkStreamInfo *
vmbkStreamParseHeader(const char *what, struct vmbk_stream_header *hdr, uint32_t *flags)
{
    g_autoptr(vmbkStreamInfo) info = g_new0(vmbkStreamInfo, 1);

    if (memcmp(hdr->magic, VMBK_STREAM_MAGIC, sizeof(hdr->magic)) != 0) {
        vmbkError(VMBK_ERR_OPERATION, "%s is not a vmbk stream: it does not start with '%s'",
                  what, VMBK_STREAM_MAGIC);
        return NULL;
    }
    vmbk_stream_header_swap(hdr);
    if (hdr->version != VMBK_STREAM_VERSION) {
        vmbkError(VMBK_ERR_OPERATION, "%s is in stream format version %" PRIu32 "; this vmbk "
                  "reads version %d", what, hdr->version, VMBK_STREAM_VERSION);
        return NULL;
    }
    if (hdr->flags & ~VMBK_STREAM_FLAG_DIGEST) {
        vmbkError(VMBK_ERR_OPERATION, "%s has header flags 0x%" PRIx32 " this vmbk does not "
                  "know", what, hdr->flags);
        return NULL;
    }
    if (!vmbk_stream_field_ok(hdr->target, sizeof(hdr->target)) || !hdr->target[0] ||
        !vmbk_stream_field_ok(hdr->point, sizeof(hdr->point)) || !hdr->point[0] ||
        !vmbk_stream_field_ok(hdr->parent, sizeof(hdr->parent)) ||
        !vmbk_stream_field_ok(hdr->uuid, sizeof(hdr->uuid)) ||
        !vmbk_stream_field_ok(hdr->time, sizeof(hdr->time)) ||
        !vmbk_stream_field_ok(hdr->domain, sizeof(hdr->domain))) {
        vmbkError(VMBK_ERR_OPERATION, "%s is damaged: its header's names are not terminated or "
                  "lack the disk or the point", what);
        return NULL;
    }
    info->target = g_strdup(hdr->target);
    info->point = g_strdup(hdr->point);
    info->parent = g_strdup(hdr->parent);
    info->uuid = g_strdup(hdr->uuid);
    info->domain = g_strdup(hdr->domain);
    info->time = g_strdup(hdr->time);
    info->disk_size = hdr->disk_size;
    if (flags)
        *flags = hdr->flags;
    return g_steal_pointer(&info);
}

vmbkStreamInfo *
vmbkStreamReadInfo(const char *path)
{
    vmbkStreamReader r = { .fd = -1 };
    struct vmbk_stream_header hdr;
    vmbkStreamInfo *info = NULL;

    if (vmbkStreamOpen(&r, path) == 0 && vmbkStreamRead(&r, &hdr, sizeof(hdr), false) == 0)
        info = vmbkStreamParseHeader(r.what, &hdr, NULL);
    vmbkStreamClose(&r);
    return info;
}

static int
vmbkStreamOutPwrite(vmbkStreamOut *out, const unsigned char *buf, size_t len, uint64_t offset)
{
    size_t done = 0;

    while (done < len) {
        ssize_t k = pwrite(out->fd, buf + done, len - done, offset + done);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            vmbkErrorSystem(k < 0 ? errno : EIO, "cannot write to '%s' at offset %" PRIu64,
                            out->path, offset + done);
            return -1;
        }
        done += k;
    }
    return 0;
}

/* Make [offset, offset + length) of the output read as zeroes. */
static int
vmbkStreamOutZero(vmbkStreamOut *out, uint64_t offset, uint64_t length)
{
    if (out->fresh)
        return 0;
    if (out->punch) {
        if (fallocate(out->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0)
            return 0;
        if (errno != EOPNOTSUPP) {
            vmbkErrorSystem(errno, "cannot write zeroes to '%s' at offset %" PRIu64, out->path,
                            offset);
            return -1;
        }
        out->punch = false;
    }
    /* No holes here: write zeroes (not from buf, which may hold data still to write). */
    if (!out->zeroes)
        out->zeroes = g_malloc0(ZERO_BLOCK);
    while (length > 0) {
        size_t n = MIN(length, (uint64_t) ZERO_BLOCK);

        if (vmbkStreamOutPwrite(out, out->zeroes, n, offset) < 0)
            return -1;
        offset += n;
        length -= n;
    }
    return 0;
}

static bool
vmbkStreamIsZero(const unsigned char *buf, size_t len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* Write len bytes of out->buf at offset; runs of 64 KiB blocks of zeroes stay holes, as the qcow2
 * chain keeps them. */
static int
vmbkStreamOutWrite(vmbkStreamOut *out, size_t len, uint64_t offset)
{
    size_t start = 0;

    while (start < len) {
        size_t end = start;
        bool zero = vmbkStreamIsZero(out->buf + start, MIN(len - start, ZERO_BLOCK));

        while (end < len &&
               vmbkStreamIsZero(out->buf + end, MIN(len - end, ZERO_BLOCK)) == zero)
            end += MIN(len - end, ZERO_BLOCK);
        if (zero ? vmbkStreamOutZero(out, offset + start, end - start) < 0
                 : vmbkStreamOutPwrite(out, out->buf + start, end - start, offset + start) < 0)
            return -1;
        start = end;
    }
    return 0;
}

/* Apply the records of one stream whose header r has read, up to and including its trailer. */
static int
vmbkStreamApplyRecords(vmbkStreamReader *r, const vmbkStreamInfo *info, uint32_t flags,
                       vmbkStreamOut *out)
{
    struct vmbk_stream_trailer trl;
    uint8_t sha256[VMBK_STREAM_HASH_SIZE];
    uint64_t next = 0, data_records = 0, zero_records = 0, data_bytes = 0, zero_bytes = 0;
    uint64_t stream_bytes;

    for (;;) {
        struct vmbk_stream_record rec;
        uint64_t at = r->pos, done;

        if (vmbkStreamRead(r, rec.type, sizeof(rec.type), false) < 0)
            return -1;
        if (memcmp(rec.type, VMBK_STREAM_TRAILER, sizeof(rec.type)) == 0)
            break;
        if (gnutls_hash(r->hash, rec.type, sizeof(rec.type)) < 0 ||
            vmbkStreamRead(r, (char *) &rec + sizeof(rec.type), sizeof(rec) - sizeof(rec.type),
                           true) < 0)
            return -1;
        vmbk_stream_record_swap(&rec);
        if (memcmp(rec.type, VMBK_STREAM_DATA, sizeof(rec.type)) != 0 &&
            memcmp(rec.type, VMBK_STREAM_ZERO, sizeof(rec.type)) != 0) {
            vmbkError(VMBK_ERR_OPERATION, "%s is damaged: the record at byte %" PRIu64 " is of "
                      "no known type", r->what, at);
            return -1;
        }
        if (rec.length == 0 || rec.offset < next || rec.offset > info->disk_size ||
            rec.length > info->disk_size - rec.offset) {
            vmbkError(VMBK_ERR_OPERATION, "%s is damaged: the record at byte %" PRIu64 " (offset "
                      "%" PRIu64 ", %" PRIu64 " bytes) is out of order or beyond the disk's %"
                      PRIu64 " bytes", r->what, at, rec.offset, rec.length, info->disk_size);
            return -1;
        }
        next = rec.offset + rec.length;

        if (rec.type[0] == 'Z') {
            zero_records++;
            zero_bytes += rec.length;
            if (vmbkStreamOutZero(out, rec.offset, rec.length) < 0)
                return -1;
            continue;
        }
        data_records++;
        data_bytes += rec.length;
        for (done = 0; done < rec.length;) {
            size_t n = MIN(rec.length - done, (uint64_t) BUFSIZE);

            if (vmbkStreamRead(r, out->buf, n, true) < 0 ||
                vmbkStreamOutWrite(out, n, rec.offset + done) < 0)
                return -1;
            done += n;
        }
    }

    stream_bytes = r->pos - sizeof(trl.type);
    memcpy(trl.type, VMBK_STREAM_TRAILER, sizeof(trl.type));
    if (vmbkStreamRead(r, (char *) &trl + sizeof(trl.type), sizeof(trl) - sizeof(trl.type),
                       false) < 0)
        return -1;
    vmbk_stream_trailer_swap(&trl);
    gnutls_hash_output(r->hash, sha256);
    if (trl.data_records != data_records || trl.zero_records != zero_records ||
        trl.data_bytes != data_bytes || trl.zero_bytes != zero_bytes ||
        trl.stream_bytes != stream_bytes) {
        vmbkError(VMBK_ERR_OPERATION, "%s is damaged: its trailer counts %" PRIu64 " data and %"
                  PRIu64 " zero records in %" PRIu64 " bytes, but it holds %" PRIu64 " and %"
                  PRIu64 " in %" PRIu64 " bytes", r->what, trl.data_records, trl.zero_records,
                  trl.stream_bytes, data_records, zero_records, stream_bytes);
        return -1;
    }
    if ((flags & VMBK_STREAM_FLAG_DIGEST) && memcmp(trl.sha256, sha256, sizeof(sha256)) != 0) {
        vmbkError(VMBK_ERR_OPERATION, "%s is damaged: its SHA-256 does not match the one in its "
                  "trailer", r->what);
        return -1;
    }
    vmbkDebug("%s: point %s on %s: %" PRIu64 " data records (%" PRIu64 " bytes), %" PRIu64
              " zero records (%" PRIu64 " bytes)", r->what, info->point,
              *info->parent ? info->parent : "nothing", data_records, data_bytes, zero_records,
              zero_bytes);
    return 0;
}

/* Check that the stream info can follow prev (the stream before it, or NULL: the first). */
static int
vmbkStreamCheckOrder(const char *what, const vmbkStreamInfo *info, const vmbkStreamInfo *prev)
{
    if (!prev) {
        if (*info->parent) {
            vmbkError(VMBK_ERR_OPERATION, "%s is a redo file of point %s on point %s, not a full; "
                      "give the full stream first", what, info->point, info->parent);
            return -1;
        }
        return 0;
    }
    if (!*info->parent) {
        vmbkError(VMBK_ERR_OPERATION, "%s is a full stream of point %s, but only the first stream "
                  "may be a full; give one full, then its redo files in order", what,
                  info->point);
        return -1;
    }
    if (!g_str_equal(info->parent, prev->point)) {
        vmbkError(VMBK_ERR_OPERATION, "%s is the redo file of point %s on point %s, but it "
                  "follows the stream of point %s; give the redo files in order", what,
                  info->point, info->parent, prev->point);
        return -1;
    }
    if (!g_str_equal(info->target, prev->target) || info->disk_size != prev->disk_size) {
        vmbkError(VMBK_ERR_OPERATION, "%s is of disk '%s' (%" PRIu64 " bytes), but the streams "
                  "before it are of disk '%s' (%" PRIu64 " bytes)", what, info->target,
                  info->disk_size, prev->target, prev->disk_size);
        return -1;
    }
    if (*info->uuid && *prev->uuid && !g_str_equal(info->uuid, prev->uuid)) {
        vmbkError(VMBK_ERR_OPERATION, "%s is of domain '%s' (%s), but the streams before it are "
                  "of domain '%s' (%s)", what, info->domain, info->uuid, prev->domain,
                  prev->uuid);
        return -1;
    }
    return 0;
}

/* Check the output against a sha256-tree-64k root. */
static int
vmbkStreamCheckDigest(vmbkStreamOut *out, const vmbkStreamInfo *last, const char *expect)
{
    const uint64_t batch = BUFSIZE / VMBK_DIGEST_LEAF_SIZE;
    g_autoptr(vmbkDigest) digest = vmbkDigestCreate(NULL, NULL, out->size);
    g_autofree char *root = NULL;
    bool zero[BUFSIZE / VMBK_DIGEST_LEAF_SIZE];
    uint64_t first;

    if (!digest)
        return -1;
    for (first = 0; first < digest->nleaves; first += batch) {
        uint64_t n = MIN(batch, digest->nleaves - first);
        size_t len = MIN(n * VMBK_DIGEST_LEAF_SIZE, out->size - first * VMBK_DIGEST_LEAF_SIZE);
        size_t done = 0;

        while (done < len) {
            ssize_t k = pread(out->fd, out->buf + done, len - done,
                              first * VMBK_DIGEST_LEAF_SIZE + done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                vmbkErrorSystem(k < 0 ? errno : EIO, "cannot read back '%s'", out->path);
                return -1;
            }
            done += k;
        }
        if (vmbkDigestHashLeaves(digest, first, n, out->buf, zero) < 0)
            return -1;
    }
    if (!(root = vmbkDigestRoot(digest)))
        return -1;
    if (!g_str_equal(root, expect)) {
        vmbkError(VMBK_ERR_OPERATION, "disk '%s' rebuilt from the streams does not match the "
                  "digest of point %s; the streams or the repository are damaged", last->target,
                  last->point);
        return -1;
    }
    return 0;
}

int
vmbkStreamRestore(const char *const *paths, const char *dst, const char *digest)
{
    g_autoptr(vmbkStreamInfo) prev = NULL;
    g_autofree unsigned char *buf = NULL;
    vmbkStreamOut out = { .path = dst, .fd = -1, .fresh = true, .punch = true };
    vmbkStreamReader r = { .fd = -1 };
    bool created = false;
    guint i, nstdin = 0;
    int ret = -1;

    for (i = 0; paths[i]; i++)
        nstdin += g_str_equal(paths[i], "-");
    if (i == 0 || nstdin > 1) {
        vmbkError(VMBK_ERR_USAGE, "restore: %s", i == 0 ? "give at least one --stream FILE"
                  : "standard input ('-') can give one stream only");
        return -1;
    }
    if (g_file_test(dst, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' exists; remove it or choose another file", dst);
        return -1;
    }
    out.buf = buf = g_malloc(BUFSIZE);

    for (i = 0; paths[i]; i++) {
        struct vmbk_stream_header hdr;
        g_autoptr(vmbkStreamInfo) info = NULL;
        uint32_t flags;

        if (vmbkStreamOpen(&r, paths[i]) < 0 ||
            vmbkStreamRead(&r, &hdr, sizeof(hdr), true) < 0 ||
            !(info = vmbkStreamParseHeader(r.what, &hdr, &flags)) ||
            vmbkStreamCheckOrder(r.what, info, prev) < 0)
            goto cleanup;
        if (!created) {
            if ((out.fd = open(dst, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) < 0) {
                vmbkErrorSystem(errno, "cannot create '%s'", dst);
                goto cleanup;
            }
            created = true;
            out.size = info->disk_size;
            if (ftruncate(out.fd, out.size) < 0) {
                vmbkErrorSystem(errno, "cannot make '%s' %" PRIu64 " bytes", dst, out.size);
                goto cleanup;
            }
        }
        if (vmbkStreamApplyRecords(&r, info, flags, &out) < 0)
            goto cleanup;
        vmbkStreamClose(&r);
        out.fresh = false;
        g_clear_pointer(&prev, vmbkStreamInfoFree);
        prev = g_steal_pointer(&info);
    }
    if (fdatasync(out.fd) < 0) {
        vmbkErrorSystem(errno, "cannot write '%s'", dst);
        goto cleanup;
    }
    if (digest && vmbkStreamCheckDigest(&out, prev, digest) < 0)
        goto cleanup;
    ret = 0;

 cleanup:
    vmbkStreamClose(&r);
    if (out.fd >= 0 && close(out.fd) < 0 && ret == 0) {
        vmbkErrorSystem(errno, "cannot write '%s'", dst);
        ret = -1;
    }
    g_free(out.zeroes);
    if (ret < 0 && created)
        g_unlink(dst); /* never leave a wrong disk behind */
    return ret;
}

GStrv
vmbkStreamChain(GPtrArray *points, const vmbkPoint *point, const char *target)
{
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *name = g_strconcat(target, VMBK_STREAM_SUFFIX, NULL);
    const vmbkPoint *p = point;
    guint pos;

    /* Points are oldest first, and a parent comes before its children. */
    for (pos = 0; pos < points->len && g_ptr_array_index(points, pos) != point; pos++)
        ;
    for (;;) {
        g_autofree char *path = g_build_filename(p->dir, STREAM_DIR, name, NULL);
        g_autoptr(vmbkStreamInfo) info = NULL;
        const vmbkPoint *parent = NULL;
        guint i;

        if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
            if (p == point)
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' has no stream of disk "
                          "'%s' ('%s'); back the domain up with --plugin stream", point->id,
                          point->domain, target, path);
            else
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the stream "
                          "'%s' of point %s it builds on is missing", point->id, point->domain,
                          target, path, p->id);
            return NULL;
        }
        if (!(info = vmbkStreamReadInfo(path)))
            return NULL;
        if (!g_str_equal(info->point, p->id) || !g_str_equal(info->target, target)) {
            vmbkError(VMBK_ERR_OPERATION, "the stream '%s' holds disk '%s' of point %s, not disk "
                      "'%s' of point %s; the repository is damaged", path, info->target,
                      info->point, target, p->id);
            return NULL;
        }
        g_ptr_array_insert(chain, 0, g_steal_pointer(&path));
        if (!*info->parent)
            break;
        /* Only older points: that also ends a loop. */
        for (i = 0; i < pos; i++) {
            vmbkPoint *q = g_ptr_array_index(points, i);
            if (g_str_equal(q->id, info->parent)) {
                parent = q;
                pos = i;
                break;
            }
        }
        if (!parent) {
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the stream of "
                      "point %s builds on point %s, which is not in the repository", point->id,
                      point->domain, target, p->id, info->parent);
            return NULL;
        }
        p = parent;
    }
    g_ptr_array_add(chain, NULL);
    return (GStrv) g_ptr_array_free(g_steal_pointer(&chain), FALSE);
}
