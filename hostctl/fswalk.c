/* vmbk: the file-level walk of the plugin runner
 *
 * The point's images go read-only into one libguestfs appliance; each filesystem there is
 * mounted read-only and streamed out with tar-out (GNU tar inside the appliance: xattrs, ACLs,
 * numeric owners), and the stream is parsed here with libarchive into the entries a plugin sees.
 * So guest filesystems are only ever parsed by the appliance's kernel, the walk is one sequential
 * stream whatever the number of files, and a file's data is read once, in order.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "pointfs.h"
#include "runner.h"
#include "vmbk-error.h"

typedef struct {
    guestfs_h *g;
    int fd;   /* the pipe's write end, closed when tar-out ends */
    int r;    /* tar-out's result */
    char *error;
} vmbkTarOut;

static gpointer
vmbkTarOutThread(gpointer opaque)
{
    vmbkTarOut *t = opaque;
    g_autofree char *path = g_strdup_printf("/dev/fd/%d", t->fd);

    t->r = guestfs_tar_out_opts(t->g, "/", path, GUESTFS_TAR_OUT_OPTS_NUMERICOWNER, 1,
                                GUESTFS_TAR_OUT_OPTS_XATTRS, 1, GUESTFS_TAR_OUT_OPTS_ACLS, 1, -1);
    if (t->r < 0)
        t->error = g_strdup(guestfs_last_error(t->g));
    close(t->fd);
    return NULL;
}

int
vmbkFsWalkRead(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset)
{
    char *p = buf;

    if (offset != source->pos) {
        vmbk_error("%s: reads of a file must go in order: asked for offset %" PRIu64 " after %"
                   PRIu64, source->what, offset, source->pos);
        return -1;
    }
    if (count > source->size - source->pos) {
        vmbk_error("%s: read of %" PRIu32 " bytes at %" PRIu64 " is past its end (%" PRIu64 ")",
                   source->what, count, offset, source->size);
        return -1;
    }
    while (count > 0) {
        la_ssize_t n = archive_read_data(source->ar, p, count);
        if (n <= 0) {
            vmbkError(VMBK_ERR_OPERATION, "cannot read %s: %s", source->what,
                      n < 0 ? archive_error_string(source->ar) : "it ends early");
            return -1;
        }
        p += n;
        count -= n;
        source->pos += n;
    }
    return 0;
}

/* GNU tar's "./etc/x" and "./etc/" as the plugin API has them: "etc/x", "etc", and "." for the
 * root. */
static char *
vmbkFsWalkPath(const char *path)
{
    size_t len;

    if (!path)
        return NULL;
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    while (path[0] == '/')
        path++;
    len = strlen(path);
    while (len > 0 && path[len - 1] == '/')
        len--;
    if (len == 0 || (len == 1 && path[0] == '.'))
        return g_strdup(".");
    return g_strndup(path, len);
}

char *
vmbkFsWalkName(const char *device)
{
    char *name = g_strdup(g_str_has_prefix(device, "/dev/") ? device + 5 : device);
    char *p;

    if (g_str_has_prefix(name, "mapper/"))
        memmove(name, name + 7, strlen(name + 7) + 1);
    for (p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
            *p = '-';
    }
    if (*name == '.' || !*name) {
        g_autofree char *old = name;
        name = g_strdup_printf("fs%s", old);
    }
    return name;
}

/* Stream one mounted filesystem to the visitor. */
static int
vmbkFsWalkOne(guestfs_h *g, const struct vmbk_fs *fs, const vmbkFsVisitor *v)
{
    vmbkTarOut t = { .g = g };
    struct archive *ar = archive_read_new();
    struct archive_entry *ae;
    GThread *thread;
    int fds[2];
    int ret = 0, r;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        vmbkErrorSystem(errno, "cannot make a pipe");
        archive_read_free(ar);
        return -1;
    }
    t.fd = fds[1];
    thread = g_thread_new("tar-out", vmbkTarOutThread, &t);
    archive_read_support_format_tar(ar);
    if (archive_read_open_fd(ar, fds[0], 256 * 1024) != ARCHIVE_OK) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read the filesystem '%s': %s", fs->device,
                  archive_error_string(ar));
        ret = -1;
    }
    if (ret == 0 && v->fs_begin(v->opaque, fs) < 0)
        ret = -1;
    /* ARCHIVE_WARN is a complete entry too: a name that is not valid UTF-8 (GNU tar writes
     * the guest's bytes as they are) cannot be converted to our locale, and is kept as bytes. */
    while (ret == 0 && ((r = archive_read_next_header(ar, &ae)) == ARCHIVE_OK ||
                        r == ARCHIVE_WARN)) {
        struct vmbk_entry e = { ._struct_size = sizeof(e) };
        g_autoptr(GArray) xattrs = g_array_new(FALSE, FALSE, sizeof(struct vmbk_xattr));
        g_autofree char *what = NULL;
        g_autofree char *acl_a = NULL;
        g_autofree char *acl_d = NULL;
        g_autofree char *path = NULL;
        g_autofree char *hardlink = NULL;
        struct vmbk_source src = { .ar = ar };
        const char *name;
        const void *value;
        size_t len;

        if (v->interrupted && *v->interrupted) {
            vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *v->interrupted);
            ret = -1;
            break;
        }
        if (r == ARCHIVE_WARN)
            vmbkDebug("fswalk: %s: %s", fs->device, archive_error_string(ar));
        if (!(e.path = path = vmbkFsWalkPath(archive_entry_pathname(ae))))
            continue;
        e.mode = archive_entry_mode(ae);
        e.uid = archive_entry_uid(ae);
        e.gid = archive_entry_gid(ae);
        e.size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
        e.mtime = archive_entry_mtime(ae);
        e.mtime_nsec = archive_entry_mtime_nsec(ae);
        e.atime = archive_entry_atime(ae);
        e.atime_nsec = archive_entry_atime_nsec(ae);
        e.ctime = archive_entry_ctime(ae);
        e.ctime_nsec = archive_entry_ctime_nsec(ae);
        e.rdev_major = archive_entry_rdevmajor(ae);
        e.rdev_minor = archive_entry_rdevminor(ae);
        if (archive_entry_hardlink(ae)) {
            e.link = hardlink = vmbkFsWalkPath(archive_entry_hardlink(ae));
            e.hardlink = 1;
            e.size = 0;
        } else if (archive_entry_symlink(ae)) {
            e.link = archive_entry_symlink(ae);
        }
        archive_entry_xattr_reset(ae);
        while (archive_entry_xattr_next(ae, &name, &value, &len) == ARCHIVE_OK) {
            struct vmbk_xattr x = { name, value, len };
            g_array_append_val(xattrs, x);
        }
        e.xattrs = (const struct vmbk_xattr *) (void *) xattrs->data;
        e.nr_xattrs = xattrs->len;
        if (archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) > 0)
            e.acl_access = acl_a = archive_entry_acl_to_text(
                ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_STYLE_SEPARATOR_COMMA);
        if (archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) > 0)
            e.acl_default = acl_d = archive_entry_acl_to_text(
                ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT | ARCHIVE_ENTRY_ACL_STYLE_SEPARATOR_COMMA);
        if (S_ISREG(e.mode) && !e.hardlink) {
            what = g_strdup_printf("'%s' of filesystem '%s'", e.path, fs->device);
            src.size = e.size;
            src.what = what;
            e.source = &src;
        }
        if (v->entry(v->opaque, fs, &e) < 0) {
            if (!vmbkErrorMessage())
                vmbkError(VMBK_ERR_OPERATION, "entry failed on '%s' of filesystem '%s' "
                          "without saying why", e.path, fs->device);
            ret = -1;
        }
    }
    if (ret == 0 && r != ARCHIVE_EOF) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read the filesystem '%s': %s", fs->device,
                  archive_error_string(ar));
        ret = -1;
    }
    /* After the end-of-archive blocks GNU tar still writes the padding of its last record:
     * read it, or tar-out fails on a closed pipe.  Closing our end stops a tar-out we no
     * longer read. */
    while (ret == 0) {
        char pad[4096];
        ssize_t n = read(fds[0], pad, sizeof(pad));

        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    archive_read_free(ar);
    close(fds[0]);
    g_thread_join(thread);
    if (ret == 0 && t.r < 0) {
        vmbkError(VMBK_ERR_GUESTFS, "cannot read the filesystem '%s': %s", fs->device,
                  t.error ? t.error : "tar-out failed");
        ret = -1;
    }
    g_free(t.error);
    if (ret == 0 && v->fs_end(v->opaque, fs) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "fs_end failed on '%s' without saying why",
                      fs->device);
        ret = -1;
    }
    return ret;
}

/* A libguestfs handle on the images (qcow2, read-only), launched; NULL (reported). */
static guestfs_h *
vmbkFsWalkLaunch(GPtrArray *images)
{
    guestfs_h *g;
    guint i;

    if (!(g = vmbkGuestfsNew()))
        return NULL;
    for (i = 0; i < images->len; i++) {
        if (guestfs_add_drive_opts(g, g_ptr_array_index(images, i),
                                   GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
                                   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0) {
            vmbkErrorGuestfs(g, "cannot open the image '%s'",
                             (char *) g_ptr_array_index(images, i));
            guestfs_close(g);
            return NULL;
        }
    }
    vmbkDebug("fswalk: guestfs launch");
    if (guestfs_launch(g) < 0) {
        vmbkErrorGuestfs(g, "cannot start the libguestfs appliance");
        guestfs_close(g);
        return NULL;
    }
    return g;
}

vmbkInspection *
vmbkFsWalkInspect(GPtrArray *images)
{
    vmbkInspection *insp;
    guestfs_h *g;

    if (!(g = vmbkFsWalkLaunch(images)))
        return NULL;
    insp = vmbkInspect(g, "the new point");
    guestfs_shutdown(g);
    guestfs_close(g);
    return insp;
}

int
vmbkFsWalk(GPtrArray *images, const vmbkFsVisitor *v)
{
    g_autoptr(vmbkInspection) insp = NULL;
    guestfs_h *g;
    guint i;
    int ret = -1;

    if (!(g = vmbkFsWalkLaunch(images)))
        return -1;
    if (!(insp = vmbkInspect(g, "the new point")))
        goto out;
    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *gfs = g_ptr_array_index(insp->filesystems, i);
        g_autofree char *name = NULL;
        struct vmbk_fs fs = { ._struct_size = sizeof(fs) };

        if (!vmbkGuestFsMountable(gfs))
            continue;
        if (vmbkGuestfsMountRo(g, gfs, "/", "the new point") < 0) {
            /* A filesystem the appliance cannot mount is skipped, said, not fatal. */
            fprintf(stderr, "%s: warning: skipped: %s\n", vmbk_progname, vmbkErrorMessage());
            vmbkErrorReset();
            continue;
        }
        name = vmbkFsWalkName(gfs->device);
        fs.name = name;
        fs.device = gfs->device;
        fs.type = gfs->type;
        fs.mountpoint = gfs->mountpoint;
        vmbkDebug("fswalk: %s (%s)", gfs->device, gfs->type);
        if (vmbkFsWalkOne(g, &fs, v) < 0)
            goto out;
        if (guestfs_umount_all(g) < 0) {
            vmbkErrorGuestfs(g, "cannot unmount '%s'", gfs->device);
            goto out;
        }
    }
    ret = 0;
 out:
    guestfs_shutdown(g);
    guestfs_close(g);
    return ret;
}
