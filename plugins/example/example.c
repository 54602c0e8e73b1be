/* vmbk example plugin: the smallest complete plugin, to copy from.
 *
 * Block level: for each disk, a text file TARGET.map with one line per extent it is given
 * ("data OFFSET LENGTH SUM" or "zero OFFSET LENGTH"), where SUM is a 32-bit sum of the bytes, so
 * a map shows what changed between two points.  File level: one file FS.list per filesystem with
 * the mode, size and path of each entry.
 *
 *   vmbk backup web01 -r /srv/vmbk --plugin example:zeroes=no
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmbk-plugin.h>

static int zeroes = 1; /* list zero extents too */

static int
example_config(const char *key, const char *value)
{
    if (strcmp(key, "zeroes") == 0) {
        if ((zeroes = vmbk_parse_bool(value)) < 0)
            return -1;
        return 0;
    }
    vmbk_error("unknown parameter '%s'", key);
    return -1;
}

struct handle {
    struct vmbk_sink *sink;
    struct vmbk_output *out;
};

static void *
example_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    struct handle *h = calloc(1, sizeof(*h));

    if (!h) {
        vmbk_error("out of memory");
        return NULL;
    }
    h->sink = sink;
    vmbk_debug("example: point %s of domain %s", point->id, point->domain);
    return h;
}

static int
example_printf(struct handle *h, const char *fmt, ...) VMBK_ATTRIBUTE_FORMAT_PRINTF(2, 3);

static int
example_printf(struct handle *h, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(line)) {
        vmbk_error("a line is too long");
        return -1;
    }
    return vmbk_output_write(h->out, line, n);
}

static int
example_close(void *handle)
{
    free(handle);
    return 0;
}

static void
example_abort(void *handle)
{
    free(handle);
}

static int
example_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    char name[64];

    snprintf(name, sizeof(name), "%s.map", disk->target);
    if (!(h->out = vmbk_output_open(h->sink, name, 0)))
        return -1;
    return example_printf(h, "# disk %s, %" PRIu64 " bytes, %s\n", disk->target, disk->size,
                          disk->parent ? "changes since its parent" : "whole");
}

static int
example_extent(void *handle, const struct vmbk_disk *disk, uint64_t offset, uint64_t length,
               int type)
{
    struct handle *h = handle;
    static unsigned char buf[1024 * 1024];
    uint32_t sum = 0;
    uint64_t done;

    if (type == VMBK_EXTENT_ZERO) {
        if (!zeroes)
            return 0;
        return example_printf(h, "zero %" PRIu64 " %" PRIu64 "\n", offset, length);
    }
    for (done = 0; done < length;) {
        uint32_t n = length - done < sizeof(buf) ? length - done : sizeof(buf);
        uint32_t i;

        if (vmbk_read(disk->source, buf, n, offset + done) < 0)
            return -1;
        for (i = 0; i < n; i++)
            sum += buf[i];
        done += n;
    }
    return example_printf(h, "data %" PRIu64 " %" PRIu64 " %08" PRIx32 "\n", offset, length, sum);
}

static int
example_disk_end(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    int r = vmbk_output_close(h->out);

    h->out = NULL;
    return r;
}

static int
example_fs_begin(void *handle, const struct vmbk_fs *fs)
{
    struct handle *h = handle;
    char name[160];

    snprintf(name, sizeof(name), "%s.list", fs->name);
    if (!(h->out = vmbk_output_open(h->sink, name, 0)))
        return -1;
    return example_printf(h, "# %s (%s) mounted at %s\n", fs->device, fs->type,
                          fs->mountpoint ? fs->mountpoint : "?");
}

static int
example_entry(void *handle, const struct vmbk_fs *fs, const struct vmbk_entry *e)
{
    struct handle *h = handle;
    char head[64];
    int n = snprintf(head, sizeof(head), "%06o %" PRIu64 " ", (unsigned int) e->mode, e->size);

    /* Paths may hold any byte: write them as they are, one per line, newlines escaped. */
    if (vmbk_output_write(h->out, head, n) < 0)
        return -1;
    for (const char *p = e->path; *p; p++) {
        if (*p == '\n' ? vmbk_output_write(h->out, "\\n", 2) < 0
                       : vmbk_output_write(h->out, p, 1) < 0)
            return -1;
    }
    return vmbk_output_write(h->out, "\n", 1);
}

static int
example_fs_end(void *handle, const struct vmbk_fs *fs)
{
    struct handle *h = handle;
    int r = vmbk_output_close(h->out);

    h->out = NULL;
    return r;
}

static struct vmbk_plugin plugin = {
    .name = "example",
    .version = PACKAGE_VERSION,
    .description = "extent maps of disks and file lists of filesystems (an example)",
    .config_help = "zeroes=BOOL  list zero extents too (default: yes)",
    .config = example_config,
    .open = example_open,
    .close = example_close,
    .abort = example_abort,
    .disk_begin = example_disk_begin,
    .extent = example_extent,
    .disk_end = example_disk_end,
    .fs_begin = example_fs_begin,
    .entry = example_entry,
    .fs_end = example_fs_end,
};

VMBK_REGISTER_PLUGIN(plugin)
