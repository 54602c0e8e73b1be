/* vmbk stream plugin: one sequential file per disk per point, for tape.
 *
 * A full point writes TARGET.stream holding the whole disk; a later point (one whose parent has
 * this plugin's output) writes a "redo" file holding only what changed since the parent, zeroes
 * the guest wrote included.  Each file is written front to back with vmbk_output_write and never
 * revisited, so it can go straight to a tape or a pipe; 'vmbk restore --stream' rebuilds a disk
 * from a full and its redo files, reading each the same way.  The format is in
 * common/streamfmt.h and vmbk-stream-plugin(1).
 *
 *   vmbk backup web01 -r /srv/vmbk --plugin stream
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include <vmbk-plugin.h>

#include "streamfmt.h"

#define BUFSIZE (4 * 1024 * 1024)

static int digest = 1; /* the trailer holds a SHA-256 of the stream */

struct handle {
    struct vmbk_sink *sink;
    char *point, *uuid, *time, *domain;

    /* The disk being written. */
    struct vmbk_output *out;
    gnutls_hash_hd_t hash;
    unsigned char *buf; /* what is not written yet */
    size_t used;
    uint64_t next;      /* where the next extent may start */
    struct vmbk_stream_trailer trailer;
};

static int
stream_config(const char *key, const char *value)
{
    if (strcmp(key, "digest") == 0) {
        if ((digest = vmbk_parse_bool(value)) < 0)
            return -1;
        return 0;
    }
    vmbk_error("unknown parameter '%s': the stream plugin takes digest=yes|no", key);
    return -1;
}

static char *
stream_strdup(const char *s)
{
    return strdup(s ? s : "");
}

static void
stream_free(struct handle *h)
{
    if (h->hash)
        gnutls_hash_deinit(h->hash, NULL);
    free(h->buf);
    free(h->point);
    free(h->uuid);
    free(h->time);
    free(h->domain);
    free(h);
}

static void *
stream_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    struct handle *h = calloc(1, sizeof(*h));

    if (!h) {
        vmbk_error("out of memory");
        return NULL;
    }
    h->sink = sink;
    h->point = stream_strdup(point->id);
    h->uuid = stream_strdup(point->uuid);
    h->time = stream_strdup(point->time);
    h->domain = stream_strdup(point->domain);
    if (!(h->buf = malloc(BUFSIZE)) || !h->point || !h->uuid || !h->time || !h->domain) {
        stream_free(h);
        vmbk_error("out of memory");
        return NULL;
    }
    return h;
}

static int
stream_close(void *handle)
{
    stream_free(handle);
    return 0;
}

static void
stream_abort(void *handle)
{
    /* vmbk throws the outputs away, the one being written too. */
    stream_free(handle);
}

/* Hand what is buffered to the output (and the hash). */
static int
stream_flush(struct handle *h)
{
    if (h->used == 0)
        return 0;
    if (h->hash && gnutls_hash(h->hash, h->buf, h->used) < 0) {
        vmbk_error("cannot compute the stream's SHA-256");
        return -1;
    }
    if (vmbk_output_write(h->out, h->buf, h->used) < 0)
        return -1;
    h->trailer.stream_bytes += h->used;
    h->used = 0;
    return 0;
}

static int
stream_append(struct handle *h, const void *data, size_t len)
{
    if (h->used + len > BUFSIZE && stream_flush(h) < 0)
        return -1;
    memcpy(h->buf + h->used, data, len);
    h->used += len;
    return 0;
}

/* Copy s into a field of size bytes, NUL-padded.  With cut, a longer s is cut short on a UTF-8
 * character boundary; without, it is an error. */
static int
stream_field(char *field, size_t size, const char *s, const char *what, int cut)
{
    size_t len = strlen(s);

    if (len >= size) {
        if (!cut) {
            vmbk_error("the %s '%s' is longer than the stream format's %zu bytes", what, s,
                       size - 1);
            return -1;
        }
        len = size - 1;
        while (len > 0 && ((unsigned char) s[len] & 0xc0) == 0x80)
            len--;
    }
    memset(field, 0, size);
    memcpy(field, s, len);
    return 0;
}

static int
stream_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    struct vmbk_stream_header hdr;
    char name[128];

    memset(&hdr, 0, sizeof(hdr));
    memcpy(hdr.magic, VMBK_STREAM_MAGIC, sizeof(hdr.magic));
    hdr.version = VMBK_STREAM_VERSION;
    hdr.flags = digest ? VMBK_STREAM_FLAG_DIGEST : 0;
    hdr.disk_size = disk->size;
    if (stream_field(hdr.target, sizeof(hdr.target), disk->target, "disk target", 0) < 0 ||
        stream_field(hdr.point, sizeof(hdr.point), h->point, "point id", 0) < 0 ||
        stream_field(hdr.parent, sizeof(hdr.parent), disk->parent ? disk->parent : "",
                     "parent point id", 0) < 0 ||
        stream_field(hdr.uuid, sizeof(hdr.uuid), h->uuid, "domain uuid", 0) < 0 ||
        stream_field(hdr.time, sizeof(hdr.time), h->time, "point time", 0) < 0 ||
        stream_field(hdr.domain, sizeof(hdr.domain), h->domain, "domain name", 1) < 0)
        return -1;
    vmbk_stream_header_swap(&hdr);

    memset(&h->trailer, 0, sizeof(h->trailer));
    h->used = 0;
    h->next = 0;
    if (digest && gnutls_hash_init(&h->hash, GNUTLS_DIG_SHA256) < 0) {
        h->hash = NULL;
        vmbk_error("cannot compute SHA-256 digests (gnutls)");
        return -1;
    }
    snprintf(name, sizeof(name), "%s%s", disk->target, VMBK_STREAM_SUFFIX);
    /* A redo file is only good on top of its parent's stream of the same disk. */
    if (disk->parent && vmbk_output_in_parent(h->sink, name) != 1) {
        vmbk_error("disk '%s': the parent point %s has no stream of it to build a redo file "
                   "on; take a full backup", disk->target, disk->parent);
        return -1;
    }
    if (!(h->out = vmbk_output_open(h->sink, name, 0)))
        return -1;
    vmbk_debug("stream: %s, %s", name, disk->parent ? "a redo" : "a full");
    return stream_append(h, &hdr, sizeof(hdr));
}

static int
stream_record(struct handle *h, const char *type, uint64_t offset, uint64_t length)
{
    struct vmbk_stream_record rec;

    memset(&rec, 0, sizeof(rec));
    memcpy(rec.type, type, sizeof(rec.type));
    rec.offset = offset;
    rec.length = length;
    vmbk_stream_record_swap(&rec);
    return stream_append(h, &rec, sizeof(rec));
}

static int
stream_extent(void *handle, const struct vmbk_disk *disk, uint64_t offset, uint64_t length,
              int type)
{
    struct handle *h = handle;
    uint64_t done;

    /* The format promises records in order, within the disk: hold the runner to it. */
    if (length == 0)
        return 0;
    if (offset < h->next || offset > disk->size || length > disk->size - offset) {
        vmbk_error("disk '%s': extent at %" PRIu64 " (%" PRIu64 " bytes) is out of order or "
                   "beyond the disk's %" PRIu64 " bytes", disk->target, offset, length,
                   disk->size);
        return -1;
    }
    h->next = offset + length;

    if (type == VMBK_EXTENT_ZERO) {
        h->trailer.zero_records++;
        h->trailer.zero_bytes += length;
        return stream_record(h, VMBK_STREAM_ZERO, offset, length);
    }
    h->trailer.data_records++;
    h->trailer.data_bytes += length;
    if (stream_record(h, VMBK_STREAM_DATA, offset, length) < 0)
        return -1;
    /* Read straight into the free end of the buffer. */
    for (done = 0; done < length;) {
        uint32_t n;

        if (h->used == BUFSIZE && stream_flush(h) < 0)
            return -1;
        n = length - done < BUFSIZE - h->used ? length - done : BUFSIZE - h->used;
        if (vmbk_read(disk->source, h->buf + h->used, n, offset + done) < 0)
            return -1;
        h->used += n;
        done += n;
    }
    return 0;
}

static int
stream_disk_end(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    struct vmbk_stream_trailer *t = &h->trailer;
    int r;

    if (stream_flush(h) < 0)
        return -1;
    memcpy(t->type, VMBK_STREAM_TRAILER, sizeof(t->type));
    if (h->hash) {
        gnutls_hash_deinit(h->hash, t->sha256);
        h->hash = NULL;
    }
    vmbk_debug("stream: disk '%s': %" PRIu64 " data records (%" PRIu64 " bytes), %" PRIu64
               " zero records (%" PRIu64 " bytes)", disk->target, t->data_records,
               t->data_bytes, t->zero_records, t->zero_bytes);
    vmbk_stream_trailer_swap(t);
    r = vmbk_output_write(h->out, t, sizeof(*t));
    if (vmbk_output_close(h->out) < 0)
        r = -1;
    h->out = NULL;
    return r;
}

static struct vmbk_plugin plugin = {
    .name = "stream",
    .version = PACKAGE_VERSION,
    .description = "a sequential full or redo file of each disk at every point, for tape",
    .config_help = "digest=BOOL  end each file with a SHA-256 of it (default: yes)",
    .block_view = VMBK_VIEW_CHANGED,
    .config = stream_config,
    .open = stream_open,
    .close = stream_close,
    .abort = stream_abort,
    .disk_begin = stream_disk_begin,
    .extent = stream_extent,
    .disk_end = stream_disk_end,
};

VMBK_REGISTER_PLUGIN(plugin)
