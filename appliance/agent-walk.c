/* vmbk-agent: the file walk of a file-level plugin in the appliance
 *
 * The entries are the host runner's (hostctl/fswalk.c), which parses GNU tar's stream of the
 * filesystem (tar-out: --numeric-owner --xattrs --acls): the same order and the same fields, so
 * that a plugin's outputs are the same whichever runner made them.  So:
 *   - the root first, as "."; then each directory's entries in the order readdir gives them
 *     (GNU tar's --sort=none), a directory's contents right after it;
 *   - sockets are left out (GNU tar ignores them);
 *   - a non-directory with more than one link is a hard link (link: the path of its first entry,
 *     size 0, mode: the permission bits only) from its second entry on, without xattrs or ACLs,
 *     as GNU tar writes it and libarchive reads it;
 *   - owners by number only (uname, gname NULL), times to the nanosecond, rdev of device nodes;
 *   - every xattr (system.posix_acl_* too), in name order; the ACLs in the text libarchive makes
 *     of tar's (access: "user::", "group::", "other::" then the named entries and the mask;
 *     default: as it is), only when not trivial; and, as libarchive keeps the mode in the ACL, an
 *     access ACL's user::, group:: and other:: entries are the mode's permission bits.
 * Nothing of the guest is followed: each directory is opened relative to its parent's fd with
 * O_NOFOLLOW, a file is opened at its first vmbk_read with O_NOFOLLOW | O_NONBLOCK (a FIFO never
 * blocks) and must still be the regular file its entry said.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent.h"
#include "agent-plugin.h"
#include "vmbk-error.h"

typedef struct {
    vmbkPluginLoaded *pl;
    void *handle;
    struct vmbk_fs fs;
    GHashTable *links; /* inode -> the path of its first entry */
    volatile int *stop;
} vmbkWalk;

/* The POSIX ACL xattr (linux/posix_acl_xattr.h): a version, then entries of tag, perm, id. */
#define ACL_XATTR_VERSION 2
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20

static void
vmbkWalkAclEntry(GString *s, const char *tag, const char *qual, unsigned int perm)
{
    g_string_append_printf(s, "%s%s:%s:%c%c%c", s->len ? "," : "", tag, qual,
                           perm & 4 ? 'r' : '-', perm & 2 ? 'w' : '-', perm & 1 ? 'x' : '-');
}

/* The ACL text the host's runner gives for the xattr value, or NULL (a trivial ACL). */
static char *
vmbkWalkAclText(const uint8_t *v, size_t len, bool access, int *mode)
{
    g_autoptr(GString) head = g_string_new(NULL);
    g_autoptr(GString) rest = g_string_new(NULL);
    size_t n, i;
    bool named = false;
    int bits = 0;

    if (len < 4 || (len - 4) % 8 != 0 || vmbkAgentGet32(v) != ACL_XATTR_VERSION)
        return NULL;
    n = (len - 4) / 8;
    for (i = 0; i < n; i++) {
        const uint8_t *e = v + 4 + 8 * i;
        unsigned int tag = e[0] | e[1] << 8, perm = e[2] | e[3] << 8;
        uint32_t id = vmbkAgentGet32(e + 4);
        g_autofree char *q = g_strdup_printf("%u", id);
        GString *to = rest;

        if (access && (tag == ACL_USER_OBJ || tag == ACL_GROUP_OBJ || tag == ACL_OTHER)) {
            to = head;
            bits |= (perm & 7) << (tag == ACL_USER_OBJ ? 6 : tag == ACL_GROUP_OBJ ? 3 : 0);
        }
        switch (tag) {
        case ACL_USER_OBJ: vmbkWalkAclEntry(to, "user", "", perm); break;
        case ACL_GROUP_OBJ: vmbkWalkAclEntry(to, "group", "", perm); break;
        case ACL_OTHER: vmbkWalkAclEntry(to, "other", "", perm); break;
        case ACL_MASK: vmbkWalkAclEntry(to, "mask", "", perm); break;
        /* GNU tar names an id its appliance knows: only root. */
        case ACL_USER: vmbkWalkAclEntry(to, "user", id == 0 ? "root" : q, perm); named = true;
            break;
        case ACL_GROUP: vmbkWalkAclEntry(to, "group", id == 0 ? "root" : q, perm); named = true;
            break;
        default: return NULL;
        }
    }
    if (access && !named)
        return NULL;
    if (access)
        *mode = bits;
    if (head->len && rest->len)
        g_string_append_c(head, ',');
    g_string_append(head, rest->str);
    return head->len ? g_string_free(g_steal_pointer(&head), FALSE) : NULL;
}

typedef struct {
    GArray *xattrs; /* of struct vmbk_xattr, pointing into the two below */
    GPtrArray *names;
    GPtrArray *values;
    char *acl_access, *acl_default;
    int acl_mode; /* the access ACL's user::, group::, other:: as mode bits, or -1 */
} vmbkWalkXattrs;

static void
vmbkWalkXattrsClear(vmbkWalkXattrs *x)
{
    if (x->xattrs)
        g_array_unref(x->xattrs);
    if (x->names)
        g_ptr_array_unref(x->names);
    if (x->values)
        g_ptr_array_unref(x->values);
    g_free(x->acl_access);
    g_free(x->acl_default);
}

static gint
vmbkWalkXattrCompare(gconstpointer a, gconstpointer b)
{
    return strcmp(((const struct vmbk_xattr *) a)->name, ((const struct vmbk_xattr *) b)->name);
}

/* listxattr and getxattr of name in the directory dirfd, never following it (at: its path
 * through /proc/self/fd), or (at NULL) of the directory dirfd itself. */
static ssize_t
vmbkWalkList(int dirfd, const char *at, char *list, size_t size)
{
    return at ? llistxattr(at, list, size) : flistxattr(dirfd, list, size);
}

static ssize_t
vmbkWalkGet(int dirfd, const char *at, const char *xn, void *value, size_t size)
{
    return at ? lgetxattr(at, xn, value, size) : fgetxattr(dirfd, xn, value, size);
}

/* The xattrs of name in the directory dirfd (never following it), or (name NULL) of dirfd
 * itself, and the ACLs they hold. */
static int
vmbkWalkGetXattrs(int dirfd, const char *name, const char *path, bool dir, vmbkWalkXattrs *x)
{
    g_autofree char *at = name ? g_strdup_printf("/proc/self/fd/%d/%s", dirfd, name) : NULL;
    g_autofree char *list = NULL;
    ssize_t len, i;

    x->acl_mode = -1;
    x->xattrs = g_array_new(FALSE, FALSE, sizeof(struct vmbk_xattr));
    x->names = g_ptr_array_new_with_free_func(g_free);
    x->values = g_ptr_array_new_with_free_func(g_free);
    for (;;) {
        if ((len = vmbkWalkList(dirfd, at, NULL, 0)) < 0) {
            if (errno == ENOTSUP)
                return 0;
            vmbkErrorSystem(errno, "cannot list the xattrs of '%s'", path);
            return -1;
        }
        g_free(list);
        list = g_malloc(len + 1);
        if ((len = vmbkWalkList(dirfd, at, list, len)) >= 0)
            break;
        if (errno != ERANGE) {
            vmbkErrorSystem(errno, "cannot list the xattrs of '%s'", path);
            return -1;
        }
    }
    for (i = 0; i < len; i += strlen(list + i) + 1) {
        const char *xn = list + i;
        g_autofree uint8_t *v = NULL;
        struct vmbk_xattr e;
        ssize_t vlen;

        for (;;) {
            if ((vlen = vmbkWalkGet(dirfd, at, xn, NULL, 0)) < 0)
                break;
            g_free(v);
            v = g_malloc(vlen + 1);
            if ((vlen = vmbkWalkGet(dirfd, at, xn, v, vlen)) >= 0 || errno != ERANGE)
                break;
        }
        if (vlen < 0) {
            if (errno == ENODATA)
                continue;
            vmbkErrorSystem(errno, "cannot read xattr '%s' of '%s'", xn, path);
            return -1;
        }
        if (g_str_equal(xn, "system.posix_acl_access"))
            x->acl_access = vmbkWalkAclText(v, vlen, true, &x->acl_mode);
        else if (dir && g_str_equal(xn, "system.posix_acl_default"))
            x->acl_default = vmbkWalkAclText(v, vlen, false, NULL);
        e.name = g_strdup(xn);
        e.value = v;
        e.len = vlen;
        g_ptr_array_add(x->names, (char *) e.name);
        g_ptr_array_add(x->values, g_steal_pointer(&v));
        g_array_append_val(x->xattrs, e);
    }
    /* In name order, as GNU tar writes them. */
    g_array_sort(x->xattrs, vmbkWalkXattrCompare);
    return 0;
}

int
vmbkAgentWalkRead(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset)
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
    if (source->fd < 0 && count > 0) {
        struct stat st;

        source->fd = openat(source->dirfd, source->name,
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (source->fd < 0 || fstat(source->fd, &st) < 0) {
            vmbkErrorSystem(errno, "cannot open %s", source->what);
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            vmbkError(VMBK_ERR_OPERATION, "cannot read %s: not a regular file", source->what);
            return -1;
        }
    }
    while (count > 0) {
        ssize_t r = read(source->fd, p, count);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read %s at %" PRIu64, source->what,
                            source->pos);
            return -1;
        }
        p += r;
        count -= r;
        source->pos += r;
    }
    return 0;
}

static int vmbkWalkDir(vmbkWalk *w, int dirfd, const char *rel);

/* One entry: name in dirfd (NULL: dirfd itself, the root), at path. */
static int
vmbkWalkEntry(vmbkWalk *w, int dirfd, const char *name, const char *path)
{
    struct vmbk_entry e = { ._struct_size = sizeof(e) };
    vmbkWalkXattrs x = { 0 };
    g_autofree char *what = NULL;
    g_autofree char *target = NULL;
    struct vmbk_source src = { .fd = -1, .file = true, .dirfd = dirfd, .name = name };
    struct stat st;
    int ret = -1;

    if (w->stop && *w->stop) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *w->stop);
        return -1;
    }
    if (fstatat(dirfd, name ? name : "", &st, AT_SYMLINK_NOFOLLOW | (name ? 0 : AT_EMPTY_PATH))
        < 0) {
        vmbkErrorSystem(errno, "cannot stat '%s' of filesystem '%s'", path, w->fs.device);
        return -1;
    }
    if (S_ISSOCK(st.st_mode))
        return 0;
    e.path = path;
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
    e.mtime = st.st_mtim.tv_sec;
    e.mtime_nsec = st.st_mtim.tv_nsec;
    e.atime = st.st_atim.tv_sec;
    e.atime_nsec = st.st_atim.tv_nsec;
    e.ctime = st.st_ctim.tv_sec;
    e.ctime_nsec = st.st_ctim.tv_nsec;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        e.rdev_major = major(st.st_rdev);
        e.rdev_minor = minor(st.st_rdev);
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        gpointer ino = g_memdup2(&st.st_ino, sizeof(st.st_ino));
        const char *first = g_hash_table_lookup(w->links, ino);

        if (first) {
            g_free(ino);
            e.link = first;
            e.hardlink = 1;
            e.size = 0;
            /* A tar hard link has no file type: libarchive gives its permission bits only. */
            e.mode = st.st_mode & 07777;
            goto call;
        }
        g_hash_table_insert(w->links, ino, g_strdup(path));
    }
    if (S_ISLNK(st.st_mode)) {
        g_autofree char *buf = g_malloc(st.st_size + 2);
        ssize_t r = readlinkat(dirfd, name, buf, st.st_size + 1);

        if (r < 0 || r > st.st_size) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read the symlink '%s' of filesystem "
                            "'%s'", path, w->fs.device);
            return -1;
        }
        buf[r] = '\0';
        e.link = target = g_steal_pointer(&buf);
    }
    if (vmbkWalkGetXattrs(dirfd, name, path, S_ISDIR(st.st_mode), &x) < 0)
        goto out;
    e.xattrs = (const struct vmbk_xattr *) (void *) x.xattrs->data;
    e.nr_xattrs = x.xattrs->len;
    e.acl_access = x.acl_access;
    e.acl_default = x.acl_default;
    /* libarchive keeps the mode in the ACL: tar's access ACL sets its permission bits (group:
     * the owning group's entry, not the mask st_mode shows). */
    if (x.acl_mode >= 0)
        e.mode = (e.mode & ~(mode_t) 0777) | x.acl_mode;
    if (S_ISREG(st.st_mode)) {
        what = g_strdup_printf("'%s' of filesystem '%s'", path, w->fs.device);
        src.size = e.size;
        src.what = what;
        e.source = &src;
    }
 call:
    if (w->pl->p.entry && w->pl->p.entry(w->handle, &w->fs, &e) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "entry failed on '%s' of filesystem '%s' without "
                      "saying why", path, w->fs.device);
        goto out;
    }
    if (src.fd >= 0) {
        close(src.fd);
        src.fd = -1;
    }
    if (S_ISDIR(st.st_mode) && name) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK |
                        O_CLOEXEC);
        if (fd < 0) {
            vmbkErrorSystem(errno, "cannot open the directory '%s' of filesystem '%s'", path,
                            w->fs.device);
            goto out;
        }
        ret = vmbkWalkDir(w, fd, path);
        close(fd);
        goto out;
    }
    ret = 0;
 out:
    if (src.fd >= 0)
        close(src.fd);
    vmbkWalkXattrsClear(&x);
    return ret;
}

/* The entries of the directory dirfd, at rel ("." for the root), in readdir's order. */
static int
vmbkWalkDir(vmbkWalk *w, int dirfd, const char *rel)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    struct dirent *de;
    DIR *d;
    int fd;
    guint i;

    if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        !(d = fdopendir(fd))) {
        vmbkErrorSystem(errno, "cannot list the directory '%s' of filesystem '%s'", rel,
                        w->fs.device);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((errno = 0, de = readdir(d))) {
        if (!g_str_equal(de->d_name, ".") && !g_str_equal(de->d_name, ".."))
            g_ptr_array_add(names, g_strdup(de->d_name));
    }
    if (errno) {
        vmbkErrorSystem(errno, "cannot list the directory '%s' of filesystem '%s'", rel,
                        w->fs.device);
        closedir(d);
        return -1;
    }
    closedir(d);
    for (i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        g_autofree char *path = g_str_equal(rel, ".") ? g_strdup(name)
                                                      : g_strconcat(rel, "/", name, NULL);

        if (vmbkWalkEntry(w, dirfd, name, path) < 0)
            return -1;
    }
    return 0;
}

int
vmbkAgentWalk(vmbkPluginLoaded *pl, void *handle, const vmbkAgentRunFs *f, volatile int *stop)
{
    g_autoptr(GHashTable) links = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                                        g_free);
    vmbkWalk w = { .pl = pl, .handle = handle, .links = links, .stop = stop };
    int rootfd, ret;

    w.fs = (struct vmbk_fs) { ._struct_size = sizeof(w.fs), .name = f->name,
                              .device = f->device, .type = f->type,
                              .mountpoint = f->mountpoint && *f->mountpoint ? f->mountpoint
                                                                            : NULL };
    if (!f->dir) {
        g_autofree char *msg = g_strdup_printf("skipped: %s", f->skipped ? f->skipped : "?");
        return vmbkAgentChildWarn(msg);
    }
    if ((rootfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        vmbkErrorSystem(errno, "cannot open the filesystem '%s' (%s)", f->device, f->dir);
        return -1;
    }
    if (pl->p.fs_begin(handle, &w.fs) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "fs_begin failed on '%s' without saying why",
                      f->device);
        close(rootfd);
        return -1;
    }
    ret = vmbkWalkEntry(&w, rootfd, NULL, ".");
    if (ret == 0)
        ret = vmbkWalkDir(&w, rootfd, ".");
    close(rootfd);
    if (ret == 0 && pl->p.fs_end && pl->p.fs_end(handle, &w.fs) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "fs_end failed on '%s' without saying why",
                      f->device);
        ret = -1;
    }
    return ret;
}
