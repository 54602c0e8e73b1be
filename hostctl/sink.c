/* vmbk: where a plugin's outputs go (the vmbk_output_* functions of vmbk-plugin.h)
 *
 * An output is a file in the point's folder for the plugin, created here (O_EXCL, 0600, no
 * symlink followed), never by the plugin.  Closing one fsyncs it, so that once the runner exits
 * successfully the outputs are on disk.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "runner.h"
#include "repo.h"
#include "spawn.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

struct vmbk_output {
    struct vmbk_sink *sink;
    char *name;
    char *path;
    int fd;
    uint64_t offset; /* where vmbk_output_write appends */
    bool scratch;
};

struct vmbk_sink *
vmbkSinkNew(const char *dir, const char *parent_dir, const char *scratch_dir)
{
    struct vmbk_sink *sink = g_new0(struct vmbk_sink, 1);

    sink->dir = g_strdup(dir);
    sink->parent_dir = g_strdup(parent_dir);
    sink->scratch_dir = g_strdup(scratch_dir);
    sink->open = g_ptr_array_new();
    return sink;
}

static void
vmbkOutputFree(struct vmbk_output *out)
{
    if (out->fd >= 0)
        close(out->fd);
    if (out->scratch)
        g_unlink(out->path);
    g_free(out->name);
    g_free(out->path);
    g_free(out);
}

int
vmbkSinkFinish(struct vmbk_sink *sink, bool keep)
{
    int ret = 0;
    guint i;

    for (i = 0; i < sink->open->len; i++) {
        struct vmbk_output *out = g_ptr_array_index(sink->open, i);
        if (keep && !out->scratch && ret == 0) {
            vmbkError(VMBK_ERR_OPERATION, "the plugin left its output '%s' open", out->name);
            ret = -1;
        }
        vmbkOutputFree(out);
    }
    if (keep && ret == 0 && g_file_test(sink->dir, G_FILE_TEST_IS_DIR) &&
        vmbkRepoFsync(sink->dir) < 0)
        ret = -1;
    g_ptr_array_free(sink->open, TRUE);
    g_free(sink->dir);
    g_free(sink->parent_dir);
    g_free(sink->scratch_dir);
    g_free(sink);
    return ret;
}

static bool
vmbkOutputNameValid(const char *name)
{
    const char *p;

    if (!name || !*name || *name == '.' || strlen(name) > 200)
        return false;
    for (p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-' && *p != '_')
            return false;
    }
    return true;
}

/* Copy the parent's output into fd: a reflink if the filesystem can, else the data ranges
 * only, so that holes stay holes. */
static int
vmbkOutputCopy(const char *from, int fd, const char *name)
{
    vmbk_autoclose int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    g_autofree char *buf = NULL;
    struct stat sb;
    off_t data, hole;

    if (in < 0 || fstat(in, &sb) < 0) {
        vmbkErrorSystem(errno, "cannot open the parent's output '%s'", from);
        return -1;
    }
    if (ioctl(fd, FICLONE, in) == 0)
        return 0;
    if (ftruncate(fd, sb.st_size) < 0) {
        vmbkErrorSystem(errno, "cannot size the output '%s'", name);
        return -1;
    }
    buf = g_malloc(1024 * 1024);
    for (data = lseek(in, 0, SEEK_DATA); data >= 0 && data < sb.st_size;
         data = lseek(in, hole, SEEK_DATA)) {
        off_t at;

        if ((hole = lseek(in, data, SEEK_HOLE)) < 0)
            hole = sb.st_size;
        for (at = data; at < hole;) {
            ssize_t n = pread(in, buf, MIN(1024 * 1024, hole - at), at);
            if (n <= 0 || pwrite(fd, buf, n, at) != n) {
                vmbkErrorSystem(n < 0 ? errno : EIO, "cannot copy '%s' into the output '%s'",
                                from, name);
                return -1;
            }
            at += n;
        }
    }
    return 0;
}

int
vmbk_output_in_parent(struct vmbk_sink *sink, const char *name)
{
    g_autofree char *path = NULL;

    if (!vmbkOutputNameValid(name)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a valid output name", name ? name : "(null)");
        return -1;
    }
    if (!sink->parent_dir)
        return 0;
    path = g_build_filename(sink->parent_dir, name, NULL);
    return g_file_test(path, G_FILE_TEST_IS_REGULAR) ? 1 : 0;
}

struct vmbk_output *
vmbk_output_open(struct vmbk_sink *sink, const char *name, unsigned int flags)
{
    struct vmbk_output *out;
    bool scratch = flags & VMBK_OUTPUT_SCRATCH;
    g_autofree char *path = NULL;
    int fd;

    if (!vmbkOutputNameValid(name)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a valid output name (letters, digits, '.', "
                  "'-' and '_', not starting with '.')", name ? name : "(null)");
        return NULL;
    }
    if (flags & ~(VMBK_OUTPUT_FROM_PARENT | VMBK_OUTPUT_SCRATCH)) {
        vmbkError(VMBK_ERR_OPERATION, "output '%s': unknown flags 0x%x", name, flags);
        return NULL;
    }
    if ((flags & VMBK_OUTPUT_FROM_PARENT) && vmbk_output_in_parent(sink, name) != 1) {
        vmbkError(VMBK_ERR_OPERATION, "output '%s': the parent point has no such output of "
                  "this plugin", name);
        return NULL;
    }
    if (!scratch && g_mkdir(sink->dir, 0700) < 0 && errno != EEXIST) {
        vmbkErrorSystem(errno, "cannot create '%s'", sink->dir);
        return NULL;
    }
    path = g_build_filename(scratch ? sink->scratch_dir : sink->dir, name, NULL);
    if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        vmbkErrorSystem(errno, "cannot create the output '%s'", name);
        return NULL;
    }
    out = g_new0(struct vmbk_output, 1);
    out->sink = sink;
    out->name = g_strdup(name);
    out->path = g_steal_pointer(&path);
    out->fd = fd;
    out->scratch = scratch;
    g_ptr_array_add(sink->open, out);
    if (flags & VMBK_OUTPUT_FROM_PARENT) {
        g_autofree char *from = g_build_filename(sink->parent_dir, name, NULL);
        struct stat sb;

        if (vmbkOutputCopy(from, fd, name) < 0)
            return NULL;
        if (fstat(fd, &sb) == 0)
            out->offset = sb.st_size;
    }
    return out;
}

int
vmbk_output_pwrite(struct vmbk_output *out, const void *buf, size_t count, uint64_t offset)
{
    const char *p = buf;

    while (count > 0) {
        ssize_t n = pwrite(out->fd, p, count, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            vmbkErrorSystem(n < 0 ? errno : ENOSPC, "cannot write the output '%s'", out->name);
            return -1;
        }
        p += n;
        count -= n;
        offset += n;
    }
    return 0;
}

int
vmbk_output_write(struct vmbk_output *out, const void *buf, size_t count)
{
    if (vmbk_output_pwrite(out, buf, count, out->offset) < 0)
        return -1;
    out->offset += count;
    return 0;
}

int
vmbk_output_zero(struct vmbk_output *out, uint64_t offset, uint64_t count)
{
    struct stat sb;

    if (count == 0)
        return 0;
    if (fallocate(out->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, count) == 0) {
        /* A hole past the end does not make the file longer: a write would. */
        if (fstat(out->fd, &sb) == 0 && (uint64_t) sb.st_size < offset + count &&
            ftruncate(out->fd, offset + count) < 0) {
            vmbkErrorSystem(errno, "cannot extend the output '%s'", out->name);
            return -1;
        }
        return 0;
    }
    /* No holes here: write the zeroes. */
    {
        g_autofree char *zero = g_malloc0(1024 * 1024);
        while (count > 0) {
            size_t n = MIN(count, 1024 * 1024);
            if (vmbk_output_pwrite(out, zero, n, offset) < 0)
                return -1;
            offset += n;
            count -= n;
        }
    }
    return 0;
}

int
vmbk_output_truncate(struct vmbk_output *out, uint64_t size)
{
    if (ftruncate(out->fd, size) < 0) {
        vmbkErrorSystem(errno, "cannot set the size of the output '%s'", out->name);
        return -1;
    }
    return 0;
}

int
vmbk_output_convert(struct vmbk_output *raw, const char *name, const char *format,
                    const char *options)
{
    static const char *const formats[] = { "vmdk", "vpc", "vhdx", "qcow2", "raw", NULL };
    g_autofree char *path = NULL;
    struct vmbk_sink *sink = raw->sink;

    if (!format || !g_strv_contains(formats, format)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot convert to format '%s': vmbk converts to vmdk, "
                  "vpc, vhdx, qcow2 and raw", format ? format : "(null)");
        return -1;
    }
    if (!vmbkOutputNameValid(name)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a valid output name", name ? name : "(null)");
        return -1;
    }
    if (fsync(raw->fd) < 0) {
        vmbkErrorSystem(errno, "cannot flush the output '%s'", raw->name);
        return -1;
    }
    if (g_mkdir(sink->dir, 0700) < 0 && errno != EEXIST) {
        vmbkErrorSystem(errno, "cannot create '%s'", sink->dir);
        return -1;
    }
    path = g_build_filename(sink->dir, name, NULL);
    if (g_file_test(path, G_FILE_TEST_EXISTS) || g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
        vmbkError(VMBK_ERR_OPERATION, "the output '%s' exists already", name);
        return -1;
    }
    {
        const char *argv[] = { QEMU_IMG, "convert", "-q", "-f", "raw", "-O", format,
                               options && *options ? "-o" : raw->path,
                               options && *options ? options : NULL,
                               NULL, NULL, NULL };
        if (options && *options) {
            argv[9] = raw->path;
            argv[10] = path;
        } else {
            argv[8] = path;
        }
        if (vmbkRun(argv, NULL) < 0) {
            g_unlink(path);
            return -1;
        }
    }
    if (vmbkRepoFsync(path) < 0)
        return -1;
    return 0;
}

int
vmbk_output_close(struct vmbk_output *out)
{
    int ret = 0;

    if (!out)
        return 0;
    if (!out->scratch && fsync(out->fd) < 0) {
        vmbkErrorSystem(errno, "cannot write the output '%s'", out->name);
        ret = -1;
    }
    if (close(out->fd) < 0 && ret == 0) {
        vmbkErrorSystem(errno, "cannot write the output '%s'", out->name);
        ret = -1;
    }
    out->fd = -1;
    g_ptr_array_remove(out->sink->open, out);
    vmbkOutputFree(out);
    return ret;
}
