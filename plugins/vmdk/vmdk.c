/* vmbk vmdk plugin: a VMware VMDK image of each disk at every point.
 *
 * The plugin asks for the whole disk at every point (VMBK_VIEW_FULL), writes it into a sparse
 * raw scratch file TARGET.raw (zero extents become holes), then has qemu-img convert that into
 * TARGET.vmdk, streamOptimized by default: the subformat VMware's OVF/OVA import, vSphere's
 * upload and most other hypervisors' importers take.  The scratch file is not part of the point.
 *
 *   vmbk backup web01 -r /srv/vmbk --plugin vmdk:adapter_type=lsilogic
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vmbk-plugin.h>

#define BUFSIZE (4 * 1024 * 1024)

/* The subformats written as one self-contained file (the flat and 2 GB split ones are not). */
static const char *const subformats[] = { "streamOptimized", "monolithicSparse", NULL };
/* qemu-img's vmdk adapter_type values. */
static const char *const adapter_types[] = { "ide", "lsilogic", "buslogic", "legacyESX", NULL };

static const char *subformat = "streamOptimized";
static const char *adapter_type; /* NULL: qemu-img's default, ide */

/* The canonical spelling of value in names, matched ignoring case, or NULL. */
static const char *
vmdk_lookup(const char *const *names, const char *value)
{
    size_t i;

    for (i = 0; names[i]; i++) {
        if (strcasecmp(names[i], value) == 0)
            return names[i];
    }
    return NULL;
}

static int
vmdk_config(const char *key, const char *value)
{
    if (strcmp(key, "subformat") == 0) {
        if (!(subformat = vmdk_lookup(subformats, value))) {
            vmbk_error("unknown subformat '%s'; use streamOptimized or monolithicSparse",
                       value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "adapter_type") == 0) {
        if (!(adapter_type = vmdk_lookup(adapter_types, value))) {
            vmbk_error("unknown adapter_type '%s'; use ide, lsilogic, buslogic or legacyESX",
                       value);
            return -1;
        }
        return 0;
    }
    vmbk_error("unknown parameter '%s': the vmdk plugin takes subformat and adapter_type", key);
    return -1;
}

struct handle {
    struct vmbk_sink *sink;
    struct vmbk_output *scratch; /* TARGET.raw, while a disk is being written */
    char name[64];               /* TARGET.vmdk */
    unsigned char *buf;
};

static void *
vmdk_open(struct vmbk_sink *sink, const struct vmbk_point *point)
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
vmdk_free(struct handle *h)
{
    free(h->buf);
    free(h);
}

static int
vmdk_close(void *handle)
{
    vmdk_free(handle);
    return 0;
}

/* The runner throws away the point's outputs, the scratch one included. */
static void
vmdk_abort(void *handle)
{
    vmdk_free(handle);
}

static int
vmdk_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    char scratch[64];

    /* With VMBK_VIEW_FULL the runner hands every disk over whole. */
    if (disk->parent) {
        vmbk_error("disk '%s' comes as changes since point %s; the vmdk plugin needs the "
                   "whole disk", disk->target, disk->parent);
        return -1;
    }
    if ((size_t) snprintf(h->name, sizeof(h->name), "%s.vmdk", disk->target) >=
        sizeof(h->name)) {
        vmbk_error("disk target '%s' is too long", disk->target);
        return -1;
    }
    snprintf(scratch, sizeof(scratch), "%s.raw", disk->target);
    if (!(h->scratch = vmbk_output_open(h->sink, scratch, VMBK_OUTPUT_SCRATCH)))
        return -1;
    /* Sized first: what no extent writes reads as zeroes, a hole. */
    return vmbk_output_truncate(h->scratch, disk->size);
}

static int
vmdk_extent(void *handle, const struct vmbk_disk *disk, uint64_t offset, uint64_t length,
            int type)
{
    struct handle *h = handle;
    uint64_t done;

    if (type == VMBK_EXTENT_ZERO)
        return vmbk_output_zero(h->scratch, offset, length);
    for (done = 0; done < length;) {
        uint32_t n = length - done < BUFSIZE ? length - done : BUFSIZE;

        if (vmbk_read(disk->source, h->buf, n, offset + done) < 0 ||
            vmbk_output_pwrite(h->scratch, h->buf, n, offset + done) < 0)
            return -1;
        done += n;
    }
    return 0;
}

static int
vmdk_disk_end(void *handle, const struct vmbk_disk *disk)
{
    struct handle *h = handle;
    char options[128];
    int r;

    if (adapter_type)
        snprintf(options, sizeof(options), "subformat=%s,adapter_type=%s", subformat,
                 adapter_type);
    else
        snprintf(options, sizeof(options), "subformat=%s", subformat);
    r = vmbk_output_convert(h->scratch, h->name, "vmdk", options);
    /* Closed after a failure too: the scratch file goes either way. */
    if (vmbk_output_close(h->scratch) < 0)
        r = -1;
    h->scratch = NULL;
    return r;
}

static struct vmbk_plugin plugin = {
    .name = "vmdk",
    .version = PACKAGE_VERSION,
    .description = "a VMware VMDK image (streamOptimized) of each disk at every point",
    .config_help =
        "subformat=streamOptimized|monolithicSparse  VMDK subformat (default: streamOptimized)\n"
        "adapter_type=ide|lsilogic|buslogic|legacyESX  disk adapter (default: ide)",
    .block_view = VMBK_VIEW_FULL,
    .config = vmdk_config,
    .open = vmdk_open,
    .close = vmdk_close,
    .abort = vmdk_abort,
    .disk_begin = vmdk_disk_begin,
    .extent = vmdk_extent,
    .disk_end = vmdk_disk_end,
};

VMBK_REGISTER_PLUGIN(plugin)
