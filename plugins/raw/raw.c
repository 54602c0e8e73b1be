/* vmbk raw plugin: a sparse raw image of each disk at every point.
 *
 * A full point writes TARGET.raw from scratch; a later point starts from a copy of its parent's
 * (reflinked where the filesystem can) and applies the extents that changed, so every point
 * holds the whole disk as a plain file any tool can read, at the cost of the space a copy takes
 * where reflinks are not available.  Zero extents become holes.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmbk-plugin.h>

#define BUFSIZE (4 * 1024 * 1024)

struct handle {
    struct vmbk_sink *sink;
    struct vmbk_output *out;
    unsigned char *buf;
};

static int
raw_config(const char *key, const char *value)
{
    vmbk_error("unknown parameter '%s': the raw plugin takes none", key);
    return -1;
}

static void *
raw_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    struct handle *h = calloc(1, sizeof(*h));

    if (!h || !(h->buf = malloc(BUFSIZE))) {
        free(h);
        vmbk_error("out of memory");
        return NULL;
    }
    h->sink = sink;
    return h;
}

static void
raw_free(struct handle *h)
{
    free(h->buf);
    free(h);
}

static int
raw_close(void *handle)
{
    raw_free(handle);
    return 0;
}

static void
raw_abort(void *handle)
{
    raw_free(handle);
}

static int
raw_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    char name[64];

    snprintf(name, sizeof(name), "%s.raw", disk->target);
    /* The runner gives a parent only when the parent point has our output. */
    if (!(h->out = vmbk_output_open(h->sink, name, disk->parent ? VMBK_OUTPUT_FROM_PARENT : 0)))
        return -1;
    return vmbk_output_truncate(h->out, disk->size);
}

static int
raw_extent(void *handle, const struct vmbk_disk *disk, uint64_t offset, uint64_t length,
           int type)
{
    struct handle *h = handle;
    uint64_t done;

    if (type == VMBK_EXTENT_ZERO)
        return vmbk_output_zero(h->out, offset, length);
    for (done = 0; done < length;) {
        uint32_t n = length - done < BUFSIZE ? length - done : BUFSIZE;

        if (vmbk_read(disk->source, h->buf, n, offset + done) < 0 ||
            vmbk_output_pwrite(h->out, h->buf, n, offset + done) < 0)
            return -1;
        done += n;
    }
    return 0;
}

static int
raw_disk_end(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    int r = vmbk_output_close(h->out);

    h->out = NULL;
    return r;
}

static struct vmbk_plugin plugin = {
    .name = "raw",
    .version = PACKAGE_VERSION,
    .description = "a sparse raw image of each disk at every point",
    .config = raw_config,
    .open = raw_open,
    .close = raw_close,
    .abort = raw_abort,
    .disk_begin = raw_disk_begin,
    .extent = raw_extent,
    .disk_end = raw_disk_end,
};

VMBK_REGISTER_PLUGIN(plugin)
