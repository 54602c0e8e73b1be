/* vmbk copy-out: files and directories of a point onto the host, with their metadata
 *
 * A guest is not trusted: its names are written only as single components below DEST (never
 * "", "." or ".."), every directory is opened with O_NOFOLLOW and every file created with O_EXCL,
 * so nothing is written outside DEST or through a symlink, and nothing existing is overwritten.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliancefs.h"
#include "pointfs.h"
#include "vmbk.h"

typedef struct _vmbkCopyOut vmbkCopyOut;
struct _vmbkCopyOut {
    vmbkSource *src;      /* --via host */
    vmbkApplFs *afs;      /* --via appliance */
    const char *dest;
    int destfd;
    bool owner;           /* running as root: restore uid/gid */
    unsigned int skipped; /* devices, fifos, sockets */
    GPtrArray *dirs;      /* relative paths of the directories made, to finish last */
    GPtrArray *dirst;     /* and their guestfs_statns */
};

/* Open the directory rel (components separated by '/') below DEST without following symlinks;
 * "" is DEST. */
static int
vmbkOpenBelow(vmbkCopyOut *c, const char *rel)
{
    g_auto(GStrv) parts = g_strsplit(rel, "/", -1);
    int fd = dup(c->destfd);
    size_t i;

    for (i = 0; fd >= 0 && parts[i]; i++) {
        int next;
        if (!*parts[i])
            continue;
        next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    if (fd < 0)
        vmbkErrorSystem(errno, "cannot open '%s/%s'", c->dest, rel);
    return fd;
}

static bool
vmbkSafeName(const char *name)
{
    return *name && !g_str_equal(name, ".") && !g_str_equal(name, "..") && !strchr(name, '/');
}

static void
vmbkTimes(const struct guestfs_statns *st, struct timespec ts[2])
{
    ts[0].tv_sec = st->st_atime_sec;
    ts[0].tv_nsec = st->st_atime_nsec;
    ts[1].tv_sec = st->st_mtime_sec;
    ts[1].tv_nsec = st->st_mtime_nsec;
}

/* One entry: gpath in the guest, rel below DEST (its last component is created in its parent). */
static int
vmbkCopyEntry(vmbkCopyOut *c, const char *gpath, const char *rel,
              const struct guestfs_statns *st, const char *link)
{
    g_autofree char *parent = g_path_get_dirname(rel);
    g_autofree char *name = g_path_get_basename(rel);
    vmbk_autoclose int pfd = -1;
    vmbk_autoclose int fd = -1;
    struct timespec ts[2];

    if (!vmbkSafeName(name)) {
        vmbkError(VMBK_ERR_OPERATION, "refusing the guest file name '%s' in '%s'", name, gpath);
        return -1;
    }
    if ((pfd = vmbkOpenBelow(c, g_str_equal(parent, ".") ? "" : parent)) < 0)
        return -1;
    vmbkTimes(st, ts);
    if (S_ISDIR(st->st_mode)) {
        if (mkdirat(pfd, name, 0700) < 0) {
            vmbkErrorSystem(errno, "cannot create '%s/%s'", c->dest, rel);
            return -1;
        }
        g_ptr_array_add(c->dirs, g_strdup(rel));
        g_ptr_array_add(c->dirst, g_memdup2(st, sizeof(*st)));
        return 0;
    }
    if (S_ISLNK(st->st_mode)) {
        if (symlinkat(link ? link : "", pfd, name) < 0) {
            vmbkErrorSystem(errno, "cannot create the symlink '%s/%s'", c->dest, rel);
            return -1;
        }
        if (c->owner)
            fchownat(pfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
        utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    if (!S_ISREG(st->st_mode)) {
        c->skipped++;
        return 0;
    }
    if ((fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        vmbkErrorSystem(errno, "cannot create '%s/%s'", c->dest, rel);
        return -1;
    }
    if (c->afs) {
        /* Holes stay holes: a guest's huge sparse file costs what it holds. */
        if (vmbkApplFsRead(c->afs, gpath, gpath, false, true, fd) < 0)
            return -1;
    } else {
        g_autofree char *fdpath = g_strdup_printf("/dev/fd/%d", fd);
        if (guestfs_download(c->src->g, gpath, fdpath) < 0) {
            vmbkErrorGuestfs(c->src->g, "cannot copy '%s' of %s", gpath, c->src->what);
            return -1;
        }
    }
    if ((c->owner && fchown(fd, st->st_uid, st->st_gid) < 0) ||
        fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, ts) < 0) {
        vmbkErrorSystem(errno, "cannot set the metadata of '%s/%s'", c->dest, rel);
        return -1;
    }
    return 0;
}

typedef struct _vmbkCopyTreeArg vmbkCopyTreeArg;
struct _vmbkCopyTreeArg {
    vmbkCopyOut *c;
    const char *gtop; /* the guest directory walked */
    const char *rel;  /* where it goes below DEST */
};

static int
vmbkCopyBatch(void *opaque, const char *rel, char **names, struct guestfs_statns_list *sts,
              char **links)
{
    vmbkCopyTreeArg *a = opaque;
    guint j;

    for (j = 0; j < sts->len; j++) {
        g_autofree char *gpath = g_build_filename(a->gtop, rel, names[j], NULL);
        g_autofree char *sub = g_build_filename(a->rel, rel, names[j], NULL);

        if (sts->val[j].st_ino < 0)
            continue;
        if (vmbkCopyEntry(a->c, gpath, sub, &sts->val[j], links[j]) < 0)
            return -1;
    }
    return 0;
}

/* A directory's contents: one find0, then lstat and readlink per directory. */
static int
vmbkCopyTree(vmbkCopyOut *c, const char *gdir, const char *rel)
{
    vmbkCopyTreeArg a = { c, gdir, rel };

    return vmbkGuestfsWalk(c->src->g, gdir, true, vmbkCopyBatch, &a, c->src->what);
}

/* The same through the appliance: one FILES_LS per directory. */
static int
vmbkCopyTreeAppliance(vmbkCopyOut *c, const char *gdir, const char *rel)
{
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GArray) sts = NULL;
    g_autoptr(GPtrArray) links = NULL;
    guint j;

    if (vmbkApplFsList(c->afs, gdir, gdir, &names, &sts, &links) < 0)
        return -1;
    for (j = 0; j < names->len; j++) {
        const struct guestfs_statns *st = &g_array_index(sts, struct guestfs_statns, j);
        const char *name = g_ptr_array_index(names, j);
        g_autofree char *gpath = g_build_filename(gdir, name, NULL);
        g_autofree char *sub = g_build_filename(rel, name, NULL);

        if (vmbkApplFsInterrupted) {
            vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) vmbkApplFsInterrupted);
            return -1;
        }
        if (st->st_ino < 0)
            continue;
        if (vmbkCopyEntry(c, gpath, sub, st, g_ptr_array_index(links, j)) < 0)
            return -1;
        if (S_ISDIR(st->st_mode) && vmbkSafeName(name) && vmbkCopyTreeAppliance(c, gpath, sub) < 0)
            return -1;
    }
    return 0;
}

/* Directories get their mode, owner and times last, deepest first. */
static int
vmbkFinishDirs(vmbkCopyOut *c)
{
    guint i;

    for (i = c->dirs->len; i > 0; i--) {
        const char *rel = g_ptr_array_index(c->dirs, i - 1);
        const struct guestfs_statns *st = g_ptr_array_index(c->dirst, i - 1);
        vmbk_autoclose int fd = vmbkOpenBelow(c, rel);
        struct timespec ts[2];

        if (fd < 0)
            return -1;
        vmbkTimes(st, ts);
        if ((c->owner && fchown(fd, st->st_uid, st->st_gid) < 0) ||
            fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, ts) < 0) {
            vmbkErrorSystem(errno, "cannot set the metadata of '%s/%s'", c->dest, rel);
            return -1;
        }
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdCopyOut)
{
    const char *repo_path = NULL, *point_id = NULL, *via = "host";
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', latest (the default), or live", "ID" },
        { "via", 0, 0, G_OPTION_ARG_STRING, &via, "host (a libguestfs appliance launched for "
          "the command; the default) or appliance (the warm backup appliance VM)", "RUNNER" },
        { NULL },
    };
    g_autoptr(vmbkSource) src = NULL;
    g_autoptr(vmbkApplFs) afs = NULL;
    g_autoptr(GPtrArray) links = g_ptr_array_new_with_free_func(g_free);
    bool appliance;
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) stats = g_ptr_array_new_with_free_func(
        (GDestroyNotify) guestfs_free_statns);
    g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) dirst = g_ptr_array_new_with_free_func(g_free);
    vmbk_autoclose int destfd = -1;
    vmbkCopyOut c = { 0 };
    const char *dest;
    int i;

    if (vmbkParseOptions(cmd, entries,
                         "Copies each PATH (a file, a directory with everything in it, a symlink\n"
                         "as a symlink) into the existing directory DEST, keeping mode, mtime and\n"
                         "atime, and owner when run as root.  Nothing in DEST is overwritten;\n"
                         "device files, fifos and sockets are skipped.",
                         &argc, &argv, 3, -1) < 0)
        return -1;
    if (!repo_path && g_strcmp0(point_id, "live") != 0) {
        vmbkError(VMBK_ERR_USAGE, "copy-out: no repository given; pass -r REPO");
        return -1;
    }
    if (!g_str_equal(via, "host") && !g_str_equal(via, "appliance")) {
        vmbkError(VMBK_ERR_USAGE, "copy-out: unknown --via '%s'; use host or appliance", via);
        return -1;
    }
    appliance = g_str_equal(via, "appliance");
    dest = argv[argc - 1];
    if ((destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        vmbkErrorSystem(errno, "copy-out: DEST '%s' must be an existing directory", dest);
        return -1;
    }
    if (appliance ? !(afs = vmbkApplFsOpen(global, repo_path, argv[1], point_id))
                  : !(src = vmbkSourceOpen(global, repo_path, argv[1], point_id)))
        return -1;
    /* Every PATH must exist before anything is written. */
    for (i = 2; i < argc - 1; i++) {
        struct guestfs_statns *st;
        char *link = NULL;
        char *path = appliance ? vmbkApplFsResolve(afs, argv[i]) : vmbkSourceResolve(src, argv[i]);

        if (!path)
            return -1;
        g_ptr_array_add(paths, path);
        if (appliance ? vmbkApplFsStat(afs, argv[i], path, false, &st, &link) < 0
                      : vmbkSourceStat(src, argv[i], path, false, &st) < 0)
            return -1;
        g_ptr_array_add(stats, st);
        g_ptr_array_add(links, link);
    }

    c.src = src;
    c.afs = afs;
    c.dest = dest;
    c.destfd = destfd;
    c.owner = geteuid() == 0;
    c.dirs = dirs;
    c.dirst = dirst;
    for (i = 0; i < (int) paths->len; i++) {
        const char *path = g_ptr_array_index(paths, i);
        const struct guestfs_statns *st = g_ptr_array_index(stats, i);
        g_autofree char *name = g_path_get_basename(path);
        g_autofree char *link = NULL;

        if (g_str_equal(path, "/")) {
            /* A whole filesystem: its contents go into DEST. */
            if ((appliance ? vmbkCopyTreeAppliance(&c, "/", "") : vmbkCopyTree(&c, "/", "")) < 0)
                return -1;
            continue;
        }
        if (appliance) {
            link = g_strdup(g_ptr_array_index(links, i));
            if (S_ISDIR(st->st_mode)) {
                if (vmbkCopyEntry(&c, path, name, st, link) < 0 ||
                    vmbkCopyTreeAppliance(&c, path, name) < 0)
                    return -1;
                continue;
            }
        } else if (S_ISLNK(st->st_mode) && !(link = guestfs_readlink(src->g, path))) {
            vmbkErrorGuestfs(src->g, "cannot read the symlink '%s' of %s", path, src->what);
            return -1;
        }
        if (vmbkCopyEntry(&c, path, name, st, link) < 0)
            return -1;
        if (S_ISDIR(st->st_mode) && vmbkCopyTree(&c, path, name) < 0)
            return -1;
    }
    if (vmbkFinishDirs(&c) < 0)
        return -1;
    if (c.skipped)
        fprintf(stderr, "%s: skipped %u device file(s), fifo(s) or socket(s)\n", vmbk_progname,
                c.skipped);
    return 0;
}
