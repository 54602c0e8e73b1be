/* vmbk tar plugin: a POSIX (pax) tar archive of each filesystem at every point.
 *
 * Each filesystem of the point becomes one archive FS.tar in the point (FS.tar.gz, .tar.xz or
 * .tar.zst when compressed), written with libarchive as the runner walks the filesystem:
 * names relative to the filesystem's root, owners by number and name, times to the nanosecond,
 * symbolic and hard links, device nodes, extended attributes (SCHILY.xattr) and POSIX ACLs
 * (SCHILY.acl), so that GNU tar and bsdtar restore a file or a whole tree as it was:
 *
 *   tar --xattrs --xattrs-include='*' --acls -C /mnt -xpf sda1.tar
 *
 *   vmbk backup web01 -r /srv/vmbk --plugin tar:compress=zstd,exclude=/var/cache
 */
#include <config.h>

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include <vmbk-plugin.h>

#define BUFSIZE (1024 * 1024)
#define MAX_EXCLUDES 64

/* The compressions, as libarchive filters. */
struct compression {
    const char *name;
    const char *suffix;
    int (*add_filter)(struct archive *a);
};

static const struct compression compressions[] = {
    { "none", ".tar", NULL },
    { "gzip", ".tar.gz", archive_write_add_filter_gzip },
    { "xz", ".tar.xz", archive_write_add_filter_xz },
    { "zstd", ".tar.zst", archive_write_add_filter_zstd },
};

static const struct compression *compression = &compressions[0];

/* exclude= patterns: with a '/', anchored at the guest's root; else matching any name. */
static char *excludes[MAX_EXCLUDES];
static size_t nr_excludes;

static void
tar_unload(void)
{
    size_t i;

    for (i = 0; i < nr_excludes; i++)
        free(excludes[i]);
    nr_excludes = 0;
}

static int
tar_config_exclude(const char *value)
{
    size_t len = strlen(value);
    char *pattern;

    if (nr_excludes == MAX_EXCLUDES) {
        vmbk_error("the tar plugin takes at most %d exclude patterns", MAX_EXCLUDES);
        return -1;
    }
    /* "var/cache/" is "/var/cache"; "*.log" stays a name pattern. */
    while (len > 1 && value[len - 1] == '/')
        len--;
    if (len == 0 || (len == 1 && value[0] == '/')) {
        vmbk_error("exclude '%s' would leave out everything", value);
        return -1;
    }
    if (!(pattern = malloc(len + 2))) {
        vmbk_error("out of memory");
        return -1;
    }
    if (memchr(value, '/', len) && value[0] != '/')
        snprintf(pattern, len + 2, "/%.*s", (int) len, value);
    else
        snprintf(pattern, len + 1, "%.*s", (int) len, value);
    excludes[nr_excludes++] = pattern;
    return 0;
}

static int
tar_config(const char *key, const char *value)
{
    size_t i;

    if (strcmp(key, "compress") == 0) {
        for (i = 0; i < sizeof(compressions) / sizeof(compressions[0]); i++) {
            if (strcmp(value, compressions[i].name) == 0) {
                compression = &compressions[i];
                return 0;
            }
        }
        vmbk_error("unknown compression '%s'; use none, gzip, xz or zstd", value);
        return -1;
    }
    if (strcmp(key, "exclude") == 0)
        return tar_config_exclude(value);
    vmbk_error("unknown parameter '%s': the tar plugin takes compress and exclude", key);
    return -1;
}

/* Fail now, before any point is taken, if this libarchive cannot compress as asked. */
static int
tar_config_complete(void)
{
    struct archive *a;
    int r = 0;

    if (!compression->add_filter)
        return 0;
    if (!(a = archive_write_new())) {
        vmbk_error("out of memory");
        return -1;
    }
    if (compression->add_filter(a) < ARCHIVE_WARN) {
        vmbk_error("the tar plugin cannot compress with %s here: %s", compression->name,
                   archive_error_string(a));
        r = -1;
    }
    archive_write_free(a);
    return r;
}

struct handle {
    struct vmbk_sink *sink;
    struct vmbk_output *out; /* the current filesystem's archive */
    char name[256];          /* its name */
    struct archive *a;
    struct archive_entry *ae;
    int out_failed;          /* a vmbk_output_write failed, and has said why */
    uint64_t nr_entries, nr_excluded;
    unsigned char *buf;
};

static void *
tar_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    struct handle *h = calloc(1, sizeof(*h));

    if (!h || !(h->buf = malloc(BUFSIZE)) || !(h->ae = archive_entry_new())) {
        if (h)
            free(h->buf);
        free(h);
        vmbk_error("out of memory");
        return NULL;
    }
    h->sink = sink;
    return h;
}

static void
tar_free(struct handle *h)
{
    if (h->a) {
        /* Nothing more reaches the output: it is thrown away. */
        archive_write_fail(h->a);
        archive_write_free(h->a);
    }
    archive_entry_free(h->ae);
    free(h->buf);
    free(h);
}

static int
tar_close(void *handle)
{
    tar_free(handle);
    return 0;
}

static void
tar_abort(void *handle)
{
    tar_free(handle);
}

/* libarchive's output callback. */
static la_ssize_t
tar_write(struct archive *a, void *opaque, const void *buf, size_t len)
{
    struct handle *h = opaque;

    if (vmbk_output_write(h->out, buf, len) < 0) {
        h->out_failed = 1;
        archive_set_error(a, EIO, "cannot write the output");
        return -1;
    }
    return len;
}

static int
tar_fs_begin(void *handle, const struct vmbk_fs *fs)
{
    struct handle *h = handle;

    if ((size_t) snprintf(h->name, sizeof(h->name), "%s%s", fs->name, compression->suffix) >=
        sizeof(h->name)) {
        vmbk_error("filesystem name '%s' is too long", fs->name);
        return -1;
    }
    if (!(h->out = vmbk_output_open(h->sink, h->name, 0)))
        return -1;
    h->out_failed = 0;
    h->nr_entries = h->nr_excluded = 0;
    if (!(h->a = archive_write_new())) {
        vmbk_error("out of memory");
        return -1;
    }
    /* pax: any path length, sub-second times, xattrs and ACLs.  Xattrs only as SCHILY.xattr,
     * which GNU tar reads too (it warns about LIBARCHIVE.xattr).  Not padded past the end, as
     * the output is a file. */
    if (archive_write_set_format_pax(h->a) != ARCHIVE_OK ||
        archive_write_set_format_option(h->a, "pax", "xattrheader", "SCHILY") < ARCHIVE_WARN ||
        (compression->add_filter && compression->add_filter(h->a) < ARCHIVE_WARN) ||
        archive_write_set_bytes_in_last_block(h->a, 1) != ARCHIVE_OK ||
        archive_write_open(h->a, h, NULL, tar_write, NULL) != ARCHIVE_OK) {
        if (!h->out_failed)
            vmbk_error("cannot start the archive '%s': %s", h->name, archive_error_string(h->a));
        return -1;
    }
    return 0;
}

/* Does pattern match path (which starts with '/') or a directory above it? */
static int
tar_match_path(const char *pattern, char *path)
{
    char *p;
    int r;

    for (p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        if (*p == '\0')
            return fnmatch(pattern, path, FNM_PATHNAME) == 0;
        *p = '\0';
        r = fnmatch(pattern, path, FNM_PATHNAME);
        *p = '/';
        if (r == 0)
            return 1;
    }
}

/* Does pattern match a name along path? */
static int
tar_match_name(const char *pattern, const char *path)
{
    char name[256];
    const char *p, *end;

    for (p = path; *p; p = *end ? end + 1 : end) {
        size_t len;

        if (!(end = strchr(p, '/')))
            end = p + strlen(p);
        len = end - p;
        if (len == 0 || len >= sizeof(name))
            continue;
        memcpy(name, p, len);
        name[len] = '\0';
        if (fnmatch(pattern, name, 0) == 0)
            return 1;
    }
    return 0;
}

/* Is the entry at path of fs excluded?  1, 0, or -1 on error. */
static int
tar_excluded(const struct vmbk_fs *fs, const char *path)
{
    const char *mnt = fs->mountpoint && strcmp(fs->mountpoint, "/") != 0 ? fs->mountpoint : "";
    char *guest;
    size_t i;
    int r = 0;

    if (nr_excludes == 0)
        return 0;
    /* The guest's path of the entry: "/srv/data/x" for "data/x" of the filesystem on /srv. */
    if (!(guest = malloc(strlen(mnt) + strlen(path) + 2))) {
        vmbk_error("out of memory");
        return -1;
    }
    sprintf(guest, "%s/%s", mnt, path);
    for (i = 0; i < nr_excludes && !r; i++) {
        if (excludes[i][0] == '/')
            r = tar_match_path(excludes[i], guest);
        else
            r = tar_match_name(excludes[i], path);
    }
    free(guest);
    return r;
}

/* Copy the entry's data into the archive, read in order. */
static int
tar_copy_data(struct handle *h, const struct vmbk_entry *e, const char *path)
{
    uint64_t done;

    for (done = 0; done < e->size;) {
        uint32_t n = e->size - done < BUFSIZE ? e->size - done : BUFSIZE;
        la_ssize_t w;

        if (vmbk_read(e->source, h->buf, n, done) < 0)
            return -1;
        w = archive_write_data(h->a, h->buf, n);
        if (w != (la_ssize_t) n) {
            if (!h->out_failed)
                vmbk_error("cannot write the data of '%s' into '%s': %s", path, h->name,
                           w < 0 ? archive_error_string(h->a) : "short write");
            return -1;
        }
        done += n;
    }
    return 0;
}

/* Set the entry's ACL of type from its text form. */
static int
tar_set_acl(struct handle *h, const char *path, const char *text, int type)
{
    if (archive_entry_acl_from_text(h->ae, text, type) != ARCHIVE_OK) {
        vmbk_error("cannot read the %s ACL of '%s': '%s'",
                   type == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT ? "default" : "access", path, text);
        return -1;
    }
    return 0;
}

static int
tar_entry(void *handle, const struct vmbk_fs *fs, const struct vmbk_entry *e)
{
    struct handle *h = handle;
    struct archive_entry *ae = h->ae;
    const char *path = e->path[0] ? e->path : "."; /* the root */
    size_t i;
    int r;

    if ((r = tar_excluded(fs, e->path)) != 0 ||
        (e->hardlink && e->link && (r = tar_excluded(fs, e->link)) != 0)) {
        /* A hard link to an excluded file goes too: the archive has no data for it. */
        h->nr_excluded++;
        return r < 0 ? -1 : 0;
    }
    if (S_ISSOCK(e->mode)) {
        vmbk_debug("tar: %s: '%s' is a socket, which tar cannot hold", fs->name, path);
        return 0;
    }

    archive_entry_clear(ae);
    archive_entry_set_pathname(ae, path);
    archive_entry_set_mode(ae, e->mode);
    archive_entry_set_uid(ae, e->uid);
    archive_entry_set_gid(ae, e->gid);
    if (e->uname)
        archive_entry_set_uname(ae, e->uname);
    if (e->gname)
        archive_entry_set_gname(ae, e->gname);
    archive_entry_set_mtime(ae, e->mtime, e->mtime_nsec);
    archive_entry_set_atime(ae, e->atime, e->atime_nsec);
    archive_entry_set_ctime(ae, e->ctime, e->ctime_nsec);
    if (e->hardlink) {
        archive_entry_set_hardlink(ae, e->link);
        archive_entry_set_size(ae, 0);
    } else if (S_ISLNK(e->mode)) {
        archive_entry_set_symlink(ae, e->link ? e->link : "");
    } else if (S_ISREG(e->mode)) {
        archive_entry_set_size(ae, e->size);
    } else if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) {
        archive_entry_set_rdevmajor(ae, e->rdev_major);
        archive_entry_set_rdevminor(ae, e->rdev_minor);
    }
    for (i = 0; i < e->nr_xattrs; i++) {
        const struct vmbk_xattr *x = &e->xattrs[i];

        /* The ACLs go as text (SCHILY.acl), which tar restores; not twice. */
        if ((e->acl_access && strcmp(x->name, "system.posix_acl_access") == 0) ||
            (e->acl_default && strcmp(x->name, "system.posix_acl_default") == 0))
            continue;
        archive_entry_xattr_add_entry(ae, x->name, x->value, x->len);
    }
    /* After the mode: the owner, group and other entries of the ACL are mode bits. */
    if ((e->acl_access && tar_set_acl(h, path, e->acl_access, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) < 0) ||
        (e->acl_default &&
         tar_set_acl(h, path, e->acl_default, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) < 0))
        return -1;

    r = archive_write_header(h->a, ae);
    if (r == ARCHIVE_WARN) {
        /* A name not in the locale's charset is stored as it is (hdrcharset=BINARY). */
        vmbk_debug("tar: %s: '%s': %s", h->name, path, archive_error_string(h->a));
    } else if (r != ARCHIVE_OK) {
        if (!h->out_failed)
            vmbk_error("cannot write '%s' into '%s': %s", path, h->name,
                       archive_error_string(h->a));
        return -1;
    }
    h->nr_entries++;
    if (S_ISREG(e->mode) && !e->hardlink && e->size > 0)
        return tar_copy_data(h, e, path);
    return 0;
}

static int
tar_fs_end(void *handle, const struct vmbk_fs *fs)
{
    struct handle *h = handle;
    int r = 0;

    /* The end of the archive, and what the compressor holds. */
    if (archive_write_close(h->a) != ARCHIVE_OK) {
        if (!h->out_failed)
            vmbk_error("cannot finish the archive '%s': %s", h->name,
                       archive_error_string(h->a));
        r = -1;
    }
    archive_write_free(h->a);
    h->a = NULL;
    if (vmbk_output_close(h->out) < 0)
        r = -1;
    h->out = NULL;
    vmbk_debug("tar: %s: %llu entries, %llu excluded", h->name,
               (unsigned long long) h->nr_entries, (unsigned long long) h->nr_excluded);
    return r;
}

static struct vmbk_plugin plugin = {
    .name = "tar",
    .version = PACKAGE_VERSION,
    .description = "a POSIX tar archive of each filesystem at every point",
    .config_help =
        "compress=none|gzip|xz|zstd  compress the archives (default: none)\n"
        "exclude=PATTERN  leave out what matches (/var/cache/*, *.tmp); may be repeated",
    .unload = tar_unload,
    .config = tar_config,
    .config_complete = tar_config_complete,
    .open = tar_open,
    .close = tar_close,
    .abort = tar_abort,
    .fs_begin = tar_fs_begin,
    .entry = tar_entry,
    .fs_end = tar_fs_end,
};

VMBK_REGISTER_PLUGIN(plugin)
