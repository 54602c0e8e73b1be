/* vmbk: the repository of points (layout in repo.h) */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "repo.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

#define REPO_MARKER ".vmbk-repo"
#define REPO_VERSION 1

void
vmbkRepoFree(vmbkRepo *repo)
{
    if (!repo)
        return;
    g_free(repo->path);
    g_free(repo->id);
    g_free(repo);
}

void
vmbkPointDiskFree(vmbkPointDisk *disk)
{
    if (!disk)
        return;
    g_free(disk->target);
    g_free(disk->image);
    g_free(disk->source);
    g_free(disk->source_format);
    g_free(disk->digest);
    g_free(disk);
}

void
vmbkPointOutputFree(vmbkPointOutput *out)
{
    if (!out)
        return;
    g_free(out->name);
    g_free(out->digest);
    g_free(out);
}

void
vmbkPointPluginFree(vmbkPointPlugin *pp)
{
    if (!pp)
        return;
    g_free(pp->name);
    g_free(pp->version);
    if (pp->config)
        g_ptr_array_free(pp->config, TRUE);
    if (pp->outputs)
        g_ptr_array_free(pp->outputs, TRUE);
    g_free(pp);
}

void
vmbkPointFree(vmbkPoint *point)
{
    if (!point)
        return;
    g_free(point->dir);
    g_free(point->domain);
    g_free(point->uuid);
    g_free(point->id);
    g_free(point->parent);
    g_free(point->level);
    g_free(point->time);
    g_free(point->method);
    g_free(point->checkpoint);
    g_free(point->consistency);
    if (point->disks)
        g_ptr_array_unref(point->disks);
    if (point->plugins)
        g_ptr_array_unref(point->plugins);
    g_free(point);
}

static int
vmbkRepoCreate(const char *path)
{
    g_autofree char *marker = g_build_filename(path, REPO_MARKER, NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;

    if (g_mkdir_with_parents(path, 0700) < 0) {
        vmbkErrorSystem(errno, "cannot create the repository '%s'", path);
        return -1;
    }
    text = g_strdup_printf("version=%d\nid=%08x\n", REPO_VERSION, g_random_int());
    if (!g_file_set_contents(marker, text, -1, &err)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot create the repository '%s': %s", path,
                  err->message);
        return -1;
    }
    return 0;
}

static bool
vmbkDirIsEmpty(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);

    return dir && g_dir_read_name(dir) == NULL;
}

vmbkRepo *
vmbkRepoOpen(const char *path, bool create)
{
    g_autoptr(vmbkRepo) repo = g_new0(vmbkRepo, 1);
    g_autofree char *marker = NULL;
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    struct stat sb;
    size_t i;

    if (!path || !*path) {
        vmbkError(VMBK_ERR_USAGE, "no repository given; pass -r REPO");
        return NULL;
    }
    repo->path = g_canonicalize_filename(path, NULL);
    marker = g_build_filename(repo->path, REPO_MARKER, NULL);

    if (stat(repo->path, &sb) < 0) {
        if (errno != ENOENT || !create) {
            vmbkErrorSystem(errno, "cannot open the repository '%s'", path);
            return NULL;
        }
        if (vmbkRepoCreate(repo->path) < 0)
            return NULL;
    } else if (!S_ISDIR(sb.st_mode)) {
        vmbkError(VMBK_ERR_OPERATION, "the repository '%s' is not a directory", path);
        return NULL;
    } else if (access(marker, F_OK) < 0) {
        if (!create || !vmbkDirIsEmpty(repo->path)) {
            vmbkError(VMBK_ERR_OPERATION, "'%s' is not a vmbk repository (it has no %s); "
                      "give an empty or new directory", path, REPO_MARKER);
            return NULL;
        }
        if (chmod(repo->path, 0700) < 0 || vmbkRepoCreate(repo->path) < 0) {
            vmbkErrorSystem(errno, "cannot create the repository '%s'", path);
            return NULL;
        }
    }
    if (create && access(repo->path, W_OK) < 0) {
        vmbkErrorSystem(errno, "the repository '%s' is not writable", path);
        return NULL;
    }

    if (!g_file_get_contents(marker, &text, NULL, NULL)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read '%s'", marker);
        return NULL;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "id="))
            repo->id = g_strdup(lines[i] + 3);
        else if (g_str_has_prefix(lines[i], "version=") && atoi(lines[i] + 8) != REPO_VERSION) {
            vmbkError(VMBK_ERR_OPERATION, "the repository '%s' has format version %s; this vmbk "
                      "knows version %d", path, lines[i] + 8, REPO_VERSION);
            return NULL;
        }
    }
    if (!repo->id || strlen(repo->id) != 8) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' has no valid repository id", marker);
        return NULL;
    }
    return g_steal_pointer(&repo);
}

char *
vmbkRepoDomainDir(vmbkRepo *repo, const char *domain, bool create)
{
    g_autofree char *dir = NULL;
    g_autofree char *points = NULL;

    if (!*domain || domain[0] == '.' || strchr(domain, '/')) {
        vmbkError(VMBK_ERR_OPERATION, "domain name '%s' cannot name a directory in a repository",
                  domain);
        return NULL;
    }
    dir = g_build_filename(repo->path, domain, NULL);
    points = g_build_filename(dir, "points", NULL);
    if (create && g_mkdir_with_parents(points, 0700) < 0) {
        vmbkErrorSystem(errno, "cannot create '%s'", points);
        return NULL;
    }
    return g_steal_pointer(&dir);
}

int
vmbkRepoLock(vmbkRepo *repo, const char *domain)
{
    g_autofree char *dir = vmbkRepoDomainDir(repo, domain, true);
    g_autofree char *path = NULL;
    int fd;

    if (!dir)
        return -1;
    path = g_build_filename(dir, ".lock", NULL);
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        vmbkErrorSystem(errno, "cannot open the lock '%s'", path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            vmbkError(VMBK_ERR_OPERATION, "another vmbk is backing up domain '%s' into '%s' "
                      "(it holds '%s'); wait for it to finish", domain, repo->path, path);
        } else {
            vmbkErrorSystem(e, "cannot lock '%s'", path);
        }
        return -1;
    }
    return fd;
}

static gint
vmbkPointCompare(gconstpointer a, gconstpointer b)
{
    const vmbkPoint *pa = *(vmbkPoint *const *) a;
    const vmbkPoint *pb = *(vmbkPoint *const *) b;

    return strcmp(pa->id, pb->id);
}

static bool
vmbkIsPointId(const char *name)
{
    size_t i;

    for (i = 0; name[i]; i++) {
        if (!g_ascii_isdigit(name[i]))
            return false;
    }
    return i > 0;
}

/* REPO/DOMAIN/points: its path in *pdir, and in *d the directory opened, or NULL when it does
 * not exist yet.  -1 (reported) for a domain name that cannot name a directory. */
static int
vmbkRepoOpenPoints(vmbkRepo *repo, const char *domain, char **pdir, GDir **d)
{
    g_autofree char *dir = vmbkRepoDomainDir(repo, domain, false);

    if (!dir)
        return -1;
    *pdir = g_build_filename(dir, "points", NULL);
    *d = g_dir_open(*pdir, 0, NULL);
    return 0;
}

GPtrArray *
vmbkRepoPoints(vmbkRepo *repo, const char *domain)
{
    g_autofree char *pdir = NULL;
    g_autoptr(GPtrArray) points = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointFree);
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (vmbkRepoOpenPoints(repo, domain, &pdir, &d) < 0)
        return NULL;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        vmbkPoint *point;

        if (!vmbkIsPointId(name))
            continue;
        path = g_build_filename(pdir, name, NULL);
        if (!(point = vmbkPointLoad(path))) {
            /* One damaged point must not hide the others: verify names it. */
            fprintf(stderr, "%s: warning: leaving out point %s of domain '%s': %s; "
                    "'vmbk verify' checks it\n", vmbk_progname, name, domain, vmbkErrorMessage());
            vmbkErrorReset();
            continue;
        }
        g_ptr_array_add(points, point);
    }
    g_ptr_array_sort(points, vmbkPointCompare);
    return g_steal_pointer(&points);
}

int
vmbkRepoCheckManifests(vmbkRepo *repo, const char *domain)
{
    g_autofree char *pdir = NULL;
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (vmbkRepoOpenPoints(repo, domain, &pdir, &d) < 0)
        return -1;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        g_autoptr(vmbkPoint) point = NULL;

        if (!vmbkIsPointId(name))
            continue;
        path = g_build_filename(pdir, name, NULL);
        if (!(point = vmbkPointLoad(path))) {
            g_autofree char *why = g_strdup(vmbkErrorMessage());
            vmbkErrorReset();
            vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' is damaged: %s", name, domain,
                      why);
            return -1;
        }
    }
    return 0;
}

GPtrArray *
vmbkRepoDomains(vmbkRepo *repo)
{
    g_autoptr(GPtrArray) domains = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (!(d = g_dir_open(repo->path, 0, NULL))) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read the repository '%s'", repo->path);
        return NULL;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *points = g_build_filename(repo->path, name, "points", NULL);

        if (name[0] != '.' && g_file_test(points, G_FILE_TEST_IS_DIR))
            g_ptr_array_add(domains, g_strdup(name));
    }
    g_ptr_array_sort(domains, (GCompareFunc) g_strcmp0);
    return g_steal_pointer(&domains);
}

/* --point ID, a point that vmbkRepoPoints left out because its manifest does not load: report
 * that it is damaged (and return true), rather than let it look like a point that is not there. */
static bool
vmbkRepoDamagedPoint(vmbkRepo *repo, GPtrArray *points, const char *domain, const char *id)
{
    g_autofree char *dir = NULL;
    g_autofree char *pdir = NULL;
    g_autoptr(GDir) d = NULL;
    const char *name;
    guint i;

    if (!*id || id[strspn(id, "0123456789")])
        return false;
    for (i = 0; i < points->len; i++) {
        if (atoi(((vmbkPoint *) g_ptr_array_index(points, i))->id) == atoi(id))
            return false;
    }
    if (!(dir = vmbkRepoDomainDir(repo, domain, false)))
        return true;
    pdir = g_build_filename(dir, "points", NULL);
    if (!(d = g_dir_open(pdir, 0, NULL)))
        return false;
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        g_autoptr(vmbkPoint) point = NULL;
        g_autofree char *why = NULL;

        if (!g_ascii_isdigit(name[0]) || atoi(name) != atoi(id))
            continue;
        path = g_build_filename(pdir, name, NULL);
        if ((point = vmbkPointLoad(path)))
            return false;
        why = g_strdup(vmbkErrorMessage());
        vmbkErrorReset();
        vmbkError(VMBK_ERR_OPERATION, "point %s of domain '%s' is damaged: %s", name, domain,
                  why);
        return true;
    }
    return false;
}

vmbkPoint *
vmbkRepoFindPoint(vmbkRepo *repo, GPtrArray *points, const char *domain, const char *id)
{
    guint i;

    /* Point ids are numbers: anything else is a typo, not a point that went missing. */
    if (id && !g_str_equal(id, "latest") && !vmbkIsPointId(id)) {
        vmbkError(VMBK_ERR_USAGE, "'%s' is not a point id; give --point a number from 'vmbk "
                  "list', or latest", id);
        return NULL;
    }
    if (id && !g_str_equal(id, "latest") && vmbkRepoDamagedPoint(repo, points, domain, id))
        return NULL;
    if (points->len == 0) {
        vmbkError(VMBK_ERR_OPERATION, "the repository has no point of domain '%s'; run "
                  "'vmbk backup %s' first", domain, domain);
        return NULL;
    }
    if (!id || g_str_equal(id, "latest"))
        return g_ptr_array_index(points, points->len - 1);
    for (i = 0; i < points->len; i++) {
        vmbkPoint *point = g_ptr_array_index(points, i);
        if (g_str_equal(point->id, id) ||
            (vmbkIsPointId(id) && atoi(point->id) == atoi(id)))
            return point;
    }
    vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no point '%s'; 'vmbk list' shows its points",
              domain, id);
    return NULL;
}

int
vmbkRepoCleanPartial(vmbkRepo *repo, const char *domain)
{
    g_autofree char *pdir = NULL;
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (vmbkRepoOpenPoints(repo, domain, &pdir, &d) < 0)
        return -1;
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;

        if (!g_str_has_prefix(name, ".tmp-"))
            continue;
        path = g_build_filename(pdir, name, NULL);
        if (vmbkRepoRemoveTree(path) < 0)
            return -1;
        fprintf(stderr, "%s: removed the partial point '%s' of an interrupted backup\n",
                vmbk_progname, path);
    }
    return 0;
}

char *
vmbkRepoBeginPoint(vmbkRepo *repo, const char *domain, GPtrArray *points, char **id)
{
    g_autofree char *dir = vmbkRepoDomainDir(repo, domain, true);
    g_autofree char *tmpl = NULL;
    int next = 1;

    if (!dir)
        return NULL;
    if (points->len > 0)
        next = atoi(((vmbkPoint *) g_ptr_array_index(points, points->len - 1))->id) + 1;
    /* A damaged point is left out of points but keeps its number. */
    {
        g_autofree char *pdir = NULL;
        g_autoptr(GDir) d = NULL;
        const char *name;

        if (vmbkRepoOpenPoints(repo, domain, &pdir, &d) < 0)
            return NULL;

        while (d && (name = g_dir_read_name(d))) {
            if (vmbkIsPointId(name) && atoi(name) >= next)
                next = atoi(name) + 1;
        }
    }
    *id = g_strdup_printf("%04d", next);
    tmpl = g_strdup_printf("%s/points/.tmp-%s-XXXXXX", dir, *id);
    if (!g_mkdtemp_full(tmpl, 0700)) {
        vmbkErrorSystem(errno, "cannot create a new point in '%s'", dir);
        return NULL;
    }
    return g_steal_pointer(&tmpl);
}

int
vmbkRepoFsync(const char *path)
{
    vmbk_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0) {
        vmbkErrorSystem(errno, "cannot sync '%s' to disk", path);
        return -1;
    }
    return 0;
}

int
vmbkRepoCommitPoint(const char *tmpdir, vmbkPoint *point)
{
    g_autoptr(GDir) d = g_dir_open(tmpdir, 0, NULL);
    g_autofree char *parent = g_path_get_dirname(tmpdir);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(tmpdir, name, NULL);
        if (vmbkRepoFsync(path) < 0)
            return -1;
    }
    /* The manifest last: a point without one is not a point. */
    if (vmbkPointWriteManifest(point, tmpdir) < 0)
        return -1;
    if (vmbkRepoFsync(tmpdir) < 0)
        return -1;
    if (rename(tmpdir, point->dir) < 0) {
        vmbkErrorSystem(errno, "cannot commit point '%s'", point->dir);
        return -1;
    }
    return vmbkRepoFsync(parent);
}

static int
vmbkRepoRemoveOne(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (remove(path) < 0 && errno != ENOENT) {
        vmbkErrorSystem(errno, "cannot remove '%s'", path);
        return -1;
    }
    return 0;
}

int
vmbkRepoRemoveTree(const char *dir)
{
    if (!dir || (access(dir, F_OK) < 0 && errno == ENOENT))
        return 0;
    /* Depth first, never following a symlink, never leaving the filesystem. */
    return nftw(dir, vmbkRepoRemoveOne, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : -1;
}

int
vmbkRepoReplaceFile(const char *tmp, const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);

    if (vmbkRepoFsync(tmp) < 0)
        return -1;
    if (rename(tmp, path) < 0) {
        vmbkErrorSystem(errno, "cannot rename '%s' to '%s'", tmp, path);
        return -1;
    }
    return vmbkRepoFsync(dir);
}
