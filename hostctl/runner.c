/* vmbk plugin-run: the child process a plugin runs in (internal; see plugin.h)
 *
 *   vmbk plugin-run --plugin SO [--config K=V]... --check
 *       load the plugin and configure it; print "NAME VERSION", then "kind=block|file|block,file"
 *       and "view=changed|full"
 *   vmbk plugin-run --plugin SO [--config K=V]... --domain D --uuid U --id ID --level L
 *       --time T --consistency C --dir POINTDIR [--parent ID --parent-dir DIR]
 *       --disk TARGET=IMAGE...
 *       run it on the point: block level on each disk's image (served read-only by qemu-nbd, so
 *       qemu:allocation-depth says what the point changed), file level on each filesystem
 *       (fswalk.c); its outputs go to POINTDIR/NAME/
 *
 * The parent (plugin.c) reports our last stderr line as the plugin's failure.  The same code is
 * what the appliance's agent runs.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "backupjob.h"
#include "plugin.h"
#include "qemunbd.h"
#include "repo.h"
#include "runner.h"
#include "vmbk.h"

static volatile int interrupted;

static void
vmbkRunnerSignal(int sig)
{
    interrupted = sig;
}

/* --- what vmbk-plugin.h promises plugins: vmbk_read (the rest is in common/pluginapi.c) ------- */

int
vmbk_read(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset)
{
    char *p = buf;

    if (!source) {
        vmbk_error("vmbk_read: no source");
        return -1;
    }
    if (source->ar)
        return vmbkFsWalkRead(source, buf, count, offset);
    if (offset > source->size || count > source->size - offset) {
        vmbk_error("read of %" PRIu32 " bytes at %" PRIu64 " is past the end of %s",
                   count, offset, source->what);
        return -1;
    }
    while (count > 0) {
        uint32_t n = MIN(count, VMBK_RUNNER_MAX_EXTENT);
        if (nbd_pread(source->nbd, p, n, offset, 0) < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot read %s at %" PRIu64, source->what, offset);
            return -1;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* --- the block walk --------------------------------------------------------------------------- */

typedef struct {
    GArray *alloc; /* uint32 pairs of base:allocation: length, flags */
    GArray *depth; /* of qemu:allocation-depth */
} vmbkExtents;

static int
vmbkRunnerExtentCb(void *opaque, const char *metacontext, uint64_t offset, uint32_t *entries,
                   size_t nr_entries, int *error)
{
    vmbkExtents *ex = opaque;
    GArray *to = NULL;

    if (g_str_equal(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION))
        to = ex->alloc;
    else if (g_str_equal(metacontext, "qemu:allocation-depth"))
        to = ex->depth;
    if (to)
        g_array_append_vals(to, entries, nr_entries);
    return 0;
}

typedef struct {
    vmbkExtentFn fn;
    void *opaque;
    const char *target;
    volatile int *interrupted;
    uint64_t start, length; /* the extent being gathered */
    int type;
} vmbkPending;

static int
vmbkRunnerFlush(vmbkPending *p)
{
    if (p->length == 0)
        return 0;
    if (p->interrupted && *p->interrupted) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *p->interrupted);
        return -1;
    }
    if (p->fn(p->opaque, p->start, p->length, p->type) < 0)
        return -1;
    p->length = 0;
    return 0;
}

static int
vmbkRunnerAdd(vmbkPending *p, uint64_t offset, uint64_t length, int type)
{
    while (length > 0) {
        uint64_t n;

        if (p->length && (p->start + p->length != offset || p->type != type ||
                          p->length == VMBK_RUNNER_MAX_EXTENT)) {
            if (vmbkRunnerFlush(p) < 0)
                return -1;
        }
        if (p->length == 0) {
            p->start = offset;
            p->type = type;
        }
        n = MIN(length, VMBK_RUNNER_MAX_EXTENT - p->length);
        p->length += n;
        offset += n;
        length -= n;
    }
    return 0;
}

int
vmbkRunnerExtents(struct nbd_handle *nbd, const char *target, uint64_t size, bool changed,
                  vmbkExtentFn fn, void *opaque, volatile int *stop)
{
    vmbkPending p = { .fn = fn, .opaque = opaque, .target = target,
                      .interrupted = stop };
    uint64_t offset = 0;

    if (changed && nbd_can_meta_context(nbd, "qemu:allocation-depth") != 1) {
        vmbkError(VMBK_ERR_INTERNAL, "qemu-nbd does not tell the allocation depth of disk '%s'",
                  target);
        return -1;
    }
    while (offset < size) {
        vmbkExtents ex = { g_array_new(FALSE, FALSE, sizeof(uint32_t)),
                           g_array_new(FALSE, FALSE, sizeof(uint32_t)) };
        uint64_t len = MIN(size - offset, (uint64_t) 1 << 30);
        uint64_t a = offset, d = offset, end;
        guint ia = 0, id = 0;
        int r = 0;

        if (stop && *stop) {
            vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *stop);
            r = -1;
        } else if (nbd_block_status(nbd, len, offset,
                                    (nbd_extent_callback) { .callback = vmbkRunnerExtentCb,
                                                            .user_data = &ex },
                                    0) < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot get the extents of disk '%s'", target);
            r = -1;
        } else if (ex.alloc->len < 2 || (changed && ex.depth->len < 2)) {
            vmbkError(VMBK_ERR_INTERNAL, "qemu-nbd returned no extents for disk '%s' at %"
                      PRIu64, target, offset);
            r = -1;
        }
        /* Walk both lists at once: each piece is a run with one flags value in each. */
        while (r == 0 && ia + 1 < ex.alloc->len && (!changed || id + 1 < ex.depth->len)) {
            uint64_t aend = a + g_array_index(ex.alloc, uint32_t, ia);
            uint64_t dend = changed ? d + g_array_index(ex.depth, uint32_t, id) : aend;
            uint32_t flags = g_array_index(ex.alloc, uint32_t, ia + 1);
            uint32_t depth = changed ? g_array_index(ex.depth, uint32_t, id + 1) : 1;
            uint64_t from = MAX(a, d), to = MIN(aend, dend);

            if (!changed)
                from = a;
            if (to > from && depth == 1)
                r = vmbkRunnerAdd(&p, from, to - from,
                                  flags & LIBNBD_STATE_ZERO ? VMBK_EXTENT_ZERO : VMBK_EXTENT_DATA);
            if (aend <= to) {
                a = aend;
                ia += 2;
            }
            if (changed && dend <= to) {
                d = dend;
                id += 2;
            }
        }
        end = changed ? MIN(a, d) : a;
        g_array_free(ex.alloc, TRUE);
        g_array_free(ex.depth, TRUE);
        if (r < 0)
            return -1;
        if (end <= offset) {
            vmbkError(VMBK_ERR_INTERNAL, "qemu-nbd's extents of disk '%s' make no progress at %"
                      PRIu64, target, offset);
            return -1;
        }
        offset = end;
    }
    return vmbkRunnerFlush(&p);
}

typedef struct {
    vmbkPluginLoaded *pl;
    void *handle;
    struct vmbk_disk *disk;
} vmbkRunnerBlockCtx;

/* An extent, to the plugin. */
static int
vmbkRunnerExtent(void *opaque, uint64_t offset, uint64_t length, int type)
{
    vmbkRunnerBlockCtx *c = opaque;

    if (c->pl->p.extent && c->pl->p.extent(c->handle, c->disk, offset, length, type) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "extent failed on disk '%s' at %" PRIu64
                      " without saying why", c->disk->target, offset);
        return -1;
    }
    return 0;
}

/* Serve one disk image read-only and run the plugin's block level on it. */
static int
vmbkRunnerBlock(vmbkPluginLoaded *pl, void *handle, const char *jobdir, const char *target,
                const char *image, const char *parent)
{
    g_autoptr(vmbkQemuNbd) srv = NULL;
    g_autoptr(vmbkNbd) nbd = NULL;
    g_autofree char *what = g_strdup_printf("disk '%s'", target);
    struct vmbk_source source = { .what = what };
    struct vmbk_disk disk = { ._struct_size = sizeof(disk), .target = target,
                              .source = &source };
    bool changed = parent && pl->p.block_view == VMBK_VIEW_CHANGED;
    int64_t size;

    if (!(srv = vmbkQemuNbdStart(image, "qcow2", true, 1, jobdir)))
        return -1;
    if (!(nbd = nbd_create()) ||
        nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        nbd_add_meta_context(nbd, "qemu:allocation-depth") < 0 ||
        nbd_connect_unix(nbd, srv->socket) < 0 || (size = nbd_get_size(nbd)) < 0) {
        vmbkError(VMBK_ERR_NBD, "cannot read the image of disk '%s'", target);
        return -1;
    }
    source.nbd = nbd;
    source.size = disk.size = size;
    disk.parent = changed ? parent : NULL;
    vmbkDebug("plugin %s: disk %s, %s", pl->p.name, target, changed ? "changes" : "whole");

    if (pl->p.disk_begin(handle, &disk) < 0 ||
        vmbkRunnerExtents(nbd, target, disk.size, changed, vmbkRunnerExtent,
                          &(vmbkRunnerBlockCtx) { pl, handle, &disk }, &interrupted) < 0 ||
        (pl->p.disk_end && pl->p.disk_end(handle, &disk) < 0)) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "it failed on disk '%s' without saying why", target);
        return -1;
    }
    nbd_shutdown(nbd, 0);
    return 0;
}

/* --- the file walk's glue ---------------------------------------------------------------------- */

typedef struct {
    vmbkPluginLoaded *pl;
    void *handle;
} vmbkRunnerFiles;

static int
vmbkRunnerFsBegin(void *opaque, const struct vmbk_fs *fs)
{
    vmbkRunnerFiles *rf = opaque;
    return rf->pl->p.fs_begin(rf->handle, fs);
}

static int
vmbkRunnerEntry(void *opaque, const struct vmbk_fs *fs, const struct vmbk_entry *entry)
{
    vmbkRunnerFiles *rf = opaque;
    return rf->pl->p.entry ? rf->pl->p.entry(rf->handle, fs, entry) : 0;
}

static int
vmbkRunnerFsEnd(void *opaque, const struct vmbk_fs *fs)
{
    vmbkRunnerFiles *rf = opaque;
    return rf->pl->p.fs_end ? rf->pl->p.fs_end(rf->handle, fs) : 0;
}

/* --- the command ------------------------------------------------------------------------------- */

/* Run the loaded, configured plugin on the point. */
static int
vmbkRunnerPoint(vmbkPluginLoaded *pl, const struct vmbk_point *point, const char *dir,
                const char *parent, const char *parent_dir, char **disks, const char *jobdir)
{
    g_autofree char *outdir = g_build_filename(dir, pl->p.name, NULL);
    g_autofree char *pdir = parent_dir ? g_build_filename(parent_dir, pl->p.name, NULL) : NULL;
    g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func(g_free);
    struct vmbk_sink *sink;
    void *handle = NULL;
    int ret = -1;
    size_t i;

    if (g_file_test(outdir, G_FILE_TEST_EXISTS) || g_file_test(outdir, G_FILE_TEST_IS_SYMLINK)) {
        vmbkError(VMBK_ERR_OPERATION, "the point has outputs of a plugin named '%s' already",
                  pl->p.name);
        return -1;
    }
    /* Only a parent that has our outputs is one to build on. */
    if (pdir && !g_file_test(pdir, G_FILE_TEST_IS_DIR))
        parent = NULL;
    sink = vmbkSinkNew(outdir, parent ? pdir : NULL, jobdir);

    if (pl->p.open && !(handle = pl->p.open(sink, point))) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "open failed without saying why");
        goto out;
    }
    for (i = 0; disks[i]; i++) {
        g_autofree char *target = g_strdup(disks[i]);
        char *eq = strchr(target, '=');

        if (!eq) {
            vmbkError(VMBK_ERR_USAGE, "--disk %s: not TARGET=IMAGE", disks[i]);
            goto out;
        }
        *eq = '\0';
        g_ptr_array_add(images, g_strdup(eq + 1));
        if (pl->p.disk_begin &&
            vmbkRunnerBlock(pl, handle, jobdir, target, eq + 1, parent) < 0)
            goto out;
    }
    if (pl->p.fs_begin) {
        vmbkRunnerFiles rf = { pl, handle };
        vmbkFsVisitor v = { vmbkRunnerFsBegin, vmbkRunnerEntry, vmbkRunnerFsEnd, &rf,
                            &interrupted };
        if (vmbkFsWalk(images, &v) < 0)
            goto out;
    }
    if (pl->p.close && pl->p.close(handle) < 0) {
        handle = NULL;
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "close failed without saying why");
        goto out;
    }
    handle = NULL;
    ret = 0;

 out:
    if (ret < 0 && handle && pl->p.abort)
        pl->p.abort(handle);
    if (vmbkSinkFinish(sink, ret == 0) < 0)
        ret = -1;
    return ret;
}

VMBK_COMMAND(vmbkCmdPluginRun)
{
    const char *path = NULL, *dir = NULL, *parent = NULL, *parent_dir = NULL, *jobdir_arg = NULL;
    struct vmbk_point point = { ._struct_size = sizeof(point) };
    g_auto(GStrv) config = NULL;
    g_auto(GStrv) disks = NULL;
    gboolean check = FALSE;
    GOptionEntry entries[] = {
        { "plugin", 0, 0, G_OPTION_ARG_FILENAME, &path, "the plugin's shared object", "SO" },
        { "config", 0, 0, G_OPTION_ARG_STRING_ARRAY, &config, "a parameter", "KEY=VALUE" },
        { "check", 0, 0, G_OPTION_ARG_NONE, &check, "load and configure only", NULL },
        { "domain", 0, 0, G_OPTION_ARG_STRING, &point.domain, "", "NAME" },
        { "uuid", 0, 0, G_OPTION_ARG_STRING, &point.uuid, "", "UUID" },
        { "id", 0, 0, G_OPTION_ARG_STRING, &point.id, "", "ID" },
        { "level", 0, 0, G_OPTION_ARG_STRING, &point.level, "", "LEVEL" },
        { "time", 0, 0, G_OPTION_ARG_STRING, &point.time, "", "TIME" },
        { "consistency", 0, 0, G_OPTION_ARG_STRING, &point.consistency, "", "C" },
        { "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "the point's directory", "DIR" },
        { "parent", 0, 0, G_OPTION_ARG_STRING, &parent, "", "ID" },
        { "parent-dir", 0, 0, G_OPTION_ARG_FILENAME, &parent_dir, "", "DIR" },
        { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &disks, "", "TARGET=IMAGE" },
        { "jobdir", 0, 0, G_OPTION_ARG_FILENAME, &jobdir_arg, "for sockets and scratch files "
          "(made and removed by the caller, who stops what a crash leaves there)", "DIR" },
        { NULL },
    };
    g_autoptr(vmbkPluginLoaded) pl = NULL;
    g_autofree char *jobdir = NULL;
    struct sigaction sa = { .sa_handler = vmbkRunnerSignal };
    int ret;

    /* Die with vmbk. */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() == 1)
        return -1;
    if (vmbkParseOptions(cmd, entries, NULL, &argc, &argv, 0, 0) < 0)
        return -1;
    if (!path) {
        vmbkError(VMBK_ERR_USAGE, "plugin-run: no --plugin");
        return -1;
    }
    if (!(pl = vmbkPluginLoad(path))) {
        /* A plugin vmbk cannot use is a bad --plugin. */
        g_autofree char *why = g_strdup(vmbkErrorMessage());
        vmbkErrorReset();
        vmbkError(VMBK_ERR_USAGE, "%s", why);
        return -1;
    }
    if (vmbkPluginConfigure(pl, config) < 0)
        return -1;
    if (check) {
        printf("%s %s\nkind=%s\nview=%s\n", pl->p.name, pl->p.version, vmbkPluginKind(&pl->p),
               pl->p.block_view == VMBK_VIEW_FULL ? "full" : "changed");
        return 0;
    }
    if (!dir || !point.id || !point.domain || !point.level || !disks || (parent && !parent_dir)) {
        vmbkError(VMBK_ERR_USAGE, "plugin-run: --dir, --id, --domain, --level and --disk are "
                  "needed (and --parent-dir with --parent)");
        return -1;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (!jobdir_arg && !(jobdir = vmbkJobDirCreate(point.uuid ? point.uuid : "none", "plugin")))
        return -1;
    ret = vmbkRunnerPoint(pl, &point, dir, parent, parent_dir, disks,
                          jobdir_arg ? jobdir_arg : jobdir);
    if (jobdir)
        vmbkJobDirRemove(jobdir);
    if (ret == 0 && interrupted) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) interrupted);
        ret = -1;
    }
    if (ret < 0) {
        g_autofree char *outdir = g_build_filename(dir, pl->p.name, NULL);
        vmbkRepoRemoveTree(outdir);
    }
    return ret;
}
