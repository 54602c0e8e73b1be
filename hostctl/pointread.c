/* vmbk: reading a point's disk back, checked against its digest */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "digest.h"
#include "nbdcopy.h"
#include "pointread.h"
#include "qemunbd.h"
#include "spawn.h"
#include "vmbk-error.h"

/* qemu-img info of one image (not its chain): its backing file as written in it, or NULL. */
static int
vmbkImageBacking(const char *path, char **backing)
{
    const char *argv[] = { QEMU_IMG, "info", "-U", "--output=json", "-f", "qcow2", path, NULL };
    g_autofree char *out = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *obj;

    *backing = NULL;
    if (vmbkRun(argv, &out) < 0)
        return -1;
    if (!json_parser_load_from_data(parser, out, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot parse what qemu-img says of '%s'", path);
        return -1;
    }
    obj = json_node_get_object(json_parser_get_root(parser));
    if (json_object_has_member(obj, "backing-filename"))
        *backing = g_strdup(json_object_get_string_member(obj, "backing-filename"));
    return 0;
}

int
vmbkPointCheckChain(GPtrArray *points, const vmbkPoint *point, const vmbkPointDisk *disk)
{
    const vmbkPoint *p = point;
    const vmbkPointDisk *d = disk;

    for (;;) {
        g_autofree char *image = vmbkPointImagePath(p, d);
        g_autofree char *backing = NULL;
        g_autofree char *expect = NULL;
        const vmbkPoint *parent = NULL;
        guint i;

        if (access(image, R_OK) < 0) {
            vmbkErrorSystem(errno, "point %s of domain '%s', disk '%s': cannot read the image "
                            "'%s' of point %s", point->id, point->domain, disk->target, image,
                            p->id);
            return -1;
        }
        {
            const char *argv[] = { QEMU_IMG, "check", "-q", "-U", "-f", "qcow2", image, NULL };
            if (vmbkRun(argv, NULL) < 0) {
                g_autofree char *why = g_strdup(vmbkErrorMessage());
                vmbkErrorReset();
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the image "
                          "'%s' is damaged: %s", point->id, point->domain, disk->target, image,
                          why);
                return -1;
            }
        }
        if (vmbkImageBacking(image, &backing) < 0)
            return -1;
        if (!p->parent) {
            if (backing) {
                vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the full "
                          "point %s's image has a backing file '%s'", point->id, point->domain,
                          disk->target, p->id, backing);
                return -1;
            }
            return 0;
        }
        for (i = 0; i < points->len; i++) {
            vmbkPoint *q = g_ptr_array_index(points, i);
            if (g_str_equal(q->id, p->parent))
                parent = q;
        }
        if (!parent || !(d = vmbkPointFindDisk(parent, disk->target))) {
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': its parent point "
                      "%s is missing", point->id, point->domain, disk->target, p->parent);
            return -1;
        }
        expect = g_strdup_printf("../%s/%s", parent->id, d->image);
        if (g_strcmp0(backing, expect) != 0) {
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s', disk '%s': the image of "
                      "point %s is backed by '%s', not by its parent's '%s'", point->id,
                      point->domain, disk->target, p->id, backing ? backing : "nothing",
                      expect);
            return -1;
        }
        p = parent;
    }
}

static void
vmbkReadProgress(void *opaque, uint64_t done, uint64_t total)
{
    fprintf(stderr, "\r%s: %3d%%", (const char *) opaque,
            total ? (int) (done * 100 / total) : 100);
    if (done == total)
        fputc('\n', stderr);
}

int
vmbkPointReadDisk(const vmbkPoint *point, const vmbkPointDisk *disk, const char *dst,
                  const char *dst_format, bool progress)
{
    g_autofree char *image = vmbkPointImagePath(point, disk);
    g_autofree char *what = g_strdup_printf("disk '%s' of point %s of domain '%s'", disk->target,
                                            point->id, point->domain);
    g_autofree char *tmp = NULL;
    g_autofree char *root = NULL;
    g_autoptr(vmbkQemuNbd) src = NULL;
    g_autoptr(vmbkQemuNbd) out = NULL;
    g_autoptr(GError) err = NULL;
    vmbkCopy copy = { 0 };
    bool created = false;
    int ret = -1;

    if (!(tmp = g_dir_make_tmp("vmbk-read-XXXXXX", &err))) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create a temporary directory: %s", err->message);
        return -1;
    }
    if (dst) {
        g_autofree char *size = g_strdup_printf("%" PRIu64, disk->virtual_size);
        const char *argv[] = { QEMU_IMG, "create", "-q", "-f", dst_format, dst, size, NULL };

        if (g_file_test(dst, G_FILE_TEST_EXISTS)) {
            vmbkError(VMBK_ERR_OPERATION, "'%s' exists; remove it or choose another file", dst);
            goto cleanup;
        }
        if (vmbkRun(argv, NULL) < 0)
            goto cleanup;
        created = true;
        if (!(out = vmbkQemuNbdStart(dst, dst_format, false, vmbkCopyDefaultThreads(), tmp)))
            goto cleanup;
    }
    if (!(src = vmbkQemuNbdStart(image, "qcow2", true, vmbkCopyDefaultThreads(), tmp)))
        goto cleanup;

    copy.what = what;
    copy.src_socket = src->socket;
    copy.src_export = "";
    copy.dst_socket = out ? out->socket : NULL;
    copy.dst_fresh = true;
    copy.threads = vmbkCopyDefaultThreads();
    if (progress) {
        copy.progress = vmbkReadProgress;
        copy.progress_opaque = disk->target;
    }
    if (vmbkCopyRun(&copy) < 0)
        goto cleanup;
    g_clear_pointer(&out, vmbkQemuNbdStop);
    if (copy.size != disk->virtual_size) {
        vmbkError(VMBK_ERR_OPERATION, "%s has %" PRIu64 " bytes, its manifest says %" PRIu64
                  "; the point is damaged", what, copy.size, disk->virtual_size);
        goto cleanup;
    }
    if (!(root = vmbkDigestRoot(copy.digest)))
        goto cleanup;
    if (!g_str_equal(root, disk->digest)) {
        g_autofree char *leaves = g_strdup_printf("%s/%s.leaves", point->dir, disk->target);
        g_autoptr(vmbkDigest) saved = vmbkDigestOpen(leaves, disk->virtual_size);
        g_autofree char *saved_root = saved ? vmbkDigestRoot(saved) : NULL;
        int64_t leaf;

        vmbkErrorReset();
        if (saved_root && g_str_equal(saved_root, disk->digest) &&
            (leaf = vmbkDigestFirstDifference(saved, copy.digest)) >= 0) {
            vmbkError(VMBK_ERR_OPERATION, "%s does not match its digest: the 64 KiB block at "
                      "offset %" PRIu64 " differs; the repository is damaged", what,
                      (uint64_t) leaf * VMBK_DIGEST_LEAF_SIZE);
        } else {
            vmbkError(VMBK_ERR_OPERATION, "%s does not match its digest; the repository is "
                      "damaged", what);
        }
        goto cleanup;
    }
    ret = 0;

 cleanup:
    vmbkDigestFree(copy.digest);
    g_clear_pointer(&out, vmbkQemuNbdStop);
    g_clear_pointer(&src, vmbkQemuNbdStop);
    g_rmdir(tmp);
    if (ret < 0 && created)
        g_unlink(dst); /* never leave a wrong disk behind */
    return ret;
}
