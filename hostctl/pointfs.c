/* vmbk: a point's filesystems through libguestfs (its qcow2 chain, read-only), or a live view
 *
 * One handle per command, launched once: under TCG a launch takes 20-30 s.  Guest filesystems
 * are only ever mounted inside the appliance, never on the host.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "domxml.h"
#include "pointfs.h"
#include "vmbk-error.h"

#define VMBK_ACCEL_TIMEOUT_MS 5000

/* The KVM probe, once per process. */
bool
vmbkGuestfsNeedTcg(void)
{
    static int tcg = -1;
    g_autofree char *notice = NULL;
    vmbkAccel accel;

    if (tcg < 0) {
        if (vmbkAccelProbe(VMBK_ACCEL_TIMEOUT_MS, &accel, &notice) < 0) {
            vmbkErrorReset(); /* qemu will say it better if it cannot run */
            accel = VMBK_ACCEL_TCG;
        }
        tcg = accel == VMBK_ACCEL_TCG;
    }
    return tcg;
}

guestfs_h *
vmbkGuestfsNew(void)
{
    guestfs_h *g = guestfs_create();

    if (!g) {
        vmbkError(VMBK_ERR_GUESTFS, "cannot create a libguestfs handle");
        return NULL;
    }
    guestfs_set_error_handler(g, NULL, NULL);
    if (!g_getenv("LIBGUESTFS_BACKEND") && guestfs_set_backend(g, "direct") < 0) {
        vmbkErrorGuestfs(g, "cannot select the libguestfs backend 'direct'");
        guestfs_close(g);
        return NULL;
    }
    if (!g_getenv("LIBGUESTFS_BACKEND_SETTINGS") && vmbkGuestfsNeedTcg()) {
        char *settings[] = { (char *) "force_tcg", NULL };
        if (guestfs_set_backend_settings(g, settings) < 0) {
            vmbkErrorGuestfs(g, "cannot set the libguestfs backend setting force_tcg");
            guestfs_close(g);
            return NULL;
        }
    }
    return g;
}

int
vmbkGuestfsAddPoint(guestfs_h *g, const vmbkPoint *point)
{
    guint i;

    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *disk = g_ptr_array_index(point->disks, i);
        g_autofree char *image = vmbkPointImagePath(point, disk);

        if (guestfs_add_drive_opts(g, image, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
                                   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1, -1) < 0) {
            vmbkErrorGuestfs(g, "cannot open disk '%s' of point %s of domain '%s'",
                             disk->target, point->id, point->domain);
            return -1;
        }
    }
    return 0;
}

int
vmbkGuestfsLaunch(guestfs_h *g, const char *what)
{
    fprintf(stderr, "%s: starting the libguestfs appliance to read %s (this can take a "
            "while)...\n", vmbk_progname, what);
    vmbkDebug("guestfs launch");
    if (guestfs_launch(g) < 0) {
        vmbkErrorGuestfs(g, "cannot start the libguestfs appliance to read %s", what);
        return -1;
    }
    vmbkDebug("guestfs launched");
    return 0;
}

int
vmbkGuestfsMountRo(guestfs_h *g, const vmbkGuestFs *fs, const char *mp, const char *what)
{
    const char *fallback = NULL;
    g_autofree char *first = NULL;

    if (guestfs_mount_ro(g, fs->device, mp) == 0)
        return 0;
    /* mount(8)'s message spans lines: make it one. */
    if (guestfs_last_error(g)) {
        g_auto(GStrv) words = g_strsplit_set(guestfs_last_error(g), " \t\n", -1);
        g_autoptr(GString) flat = g_string_new(NULL);
        size_t i;

        for (i = 0; words[i]; i++) {
            if (*words[i])
                g_string_append_printf(flat, "%s%s", flat->len ? " " : "", words[i]);
        }
        first = g_string_free(g_steal_pointer(&flat), FALSE);
    }
    if (g_str_equal(fs->type, "xfs"))
        fallback = "ro,norecovery";
    else if (g_str_equal(fs->type, "ext3") || g_str_equal(fs->type, "ext4"))
        fallback = "ro,noload";
    if (fallback && guestfs_mount_options(g, fallback, fs->device, mp) == 0)
        return 0;
    vmbkError(VMBK_ERR_OPERATION, "the %s filesystem '%s' of %s cannot be mounted: %s",
              fs->type, fs->device, what, first ? first : "unknown error");
    return -1;
}

void
vmbkSourceClose(vmbkSource *src)
{
    if (!src)
        return;
    if (src->g) {
        guestfs_shutdown(src->g);
        guestfs_close(src->g);
    }
    if (src->job)
        vmbkBackupEnd(src->dom, src->job);
    if (src->dom)
        virDomainFree(src->dom);
    if (src->conn)
        virConnectClose(src->conn);
    vmbkInspectionFree(src->insp);
    g_free(src->what);
    g_free(src->device);
    g_free(src);
}

/* --point live: a pull-mode backup job without checkpoint, its exports added as NBD drives. */
static int
vmbkSourceOpenLive(vmbkSource *src, vmbkGlobal *global, const char *domain)
{
    g_autofree char *xml = NULL;
    g_autoptr(GPtrArray) disks = NULL;
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    g_autofree char *server = NULL;
    char uuid[VIR_UUID_STRING_BUFLEN];
    guint i;

    if (!(src->conn = vmbkConnect(global)) || !(src->dom = vmbkLookupDomain(src->conn, domain)))
        return -1;
    if (virDomainIsActive(src->dom) != 1) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' is not running; --point live browses a "
                  "running domain", domain);
        return -1;
    }
    if (vmbkBackupCleanStale(src->dom, domain) < 0)
        return -1;
    if (!(xml = virDomainGetXMLDesc(src->dom, 0)) || virDomainGetUUIDString(src->dom, uuid) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", domain);
        return -1;
    }
    if (!(disks = vmbkDomainDisks(xml, domain)))
        return -1;
    for (i = 0; i < disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(disks, i);
        g_ptr_array_add(all, disk->target);
        if (!vmbkDiskCheckpointProblem(disk))
            g_ptr_array_add(targets, disk->target);
    }
    if (targets->len == 0) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no disk that can be exported live",
                  domain);
        return -1;
    }
    if (!(src->job = vmbkBackupBegin(src->dom, domain, uuid, targets, all, NULL, NULL, NULL,
                                     "browse", NULL, NULL)))
        return -1;
    server = g_strdup_printf("unix:%s", src->job->socket);
    for (i = 0; i < src->job->disks->len; i++) {
        vmbkBackupJobDisk *d = g_ptr_array_index(src->job->disks, i);
        char *servers[] = { server, NULL };

        if (guestfs_add_drive_opts(src->g, d->export, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
                                   GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                                   GUESTFS_ADD_DRIVE_OPTS_PROTOCOL, "nbd",
                                   GUESTFS_ADD_DRIVE_OPTS_SERVER, servers, -1) < 0) {
            vmbkErrorGuestfs(src->g, "cannot add the live export of disk '%s' of domain '%s'",
                             d->target, domain);
            return -1;
        }
    }
    return 0;
}

vmbkSource *
vmbkSourceOpen(vmbkGlobal *global, const char *repo_path, const char *domain, const char *id)
{
    g_autoptr(vmbkSource) src = g_new0(vmbkSource, 1);
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    g_autofree char *launch_what = NULL;
    vmbkPoint *point = NULL;

    if (g_strcmp0(id, "live") != 0) {
        if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, domain)) ||
            !(point = vmbkRepoFindPoint(repo, points, domain, id)))
            return NULL;
        src->what = g_strdup_printf("point %s of domain '%s'", point->id, domain);
        launch_what = g_strdup_printf("point %s", point->id);
    } else {
        src->what = g_strdup_printf("the running domain '%s'", domain);
        launch_what = g_strdup_printf("domain '%s' live", domain);
    }
    if (!(src->g = vmbkGuestfsNew()))
        return NULL;
    if (point) {
        bool absent;
        if (vmbkGuestfsAddPoint(src->g, point) < 0)
            return NULL;
        src->insp = vmbkInspectionLoad(point->dir, &absent);
        if (!src->insp && !absent)
            return NULL;
    } else if (vmbkSourceOpenLive(src, global, domain) < 0) {
        return NULL;
    }
    if (vmbkGuestfsLaunch(src->g, launch_what) < 0)
        return NULL;
    if (!src->insp && !(src->insp = vmbkInspect(src->g, src->what)))
        return NULL;
    return g_steal_pointer(&src);
}

static int
vmbkSourceMountTree(vmbkSource *src)
{
    guint i;

    if (src->tree)
        return 0;
    for (i = 0; i < src->insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(src->insp->filesystems, i);
        if (fs->mountpoint && vmbkGuestfsMountRo(src->g, fs, fs->mountpoint, src->what) < 0)
            return -1;
    }
    src->tree = true;
    return 0;
}

static int
vmbkSourceMountDevice(vmbkSource *src, vmbkGuestFs *fs)
{
    if (src->device && g_str_equal(src->device, fs->device))
        return 0;
    if (src->device || src->tree) {
        vmbkError(VMBK_ERR_USAGE, "cannot address '%s' of %s together with its other "
                  "filesystems in one command; run one command per filesystem", fs->device,
                  src->what);
        return -1;
    }
    if (vmbkGuestfsMountRo(src->g, fs, "/", src->what) < 0)
        return -1;
    src->device = g_strdup(fs->device);
    return 0;
}

char *
vmbkSourceResolve(vmbkSource *src, const char *arg)
{
    const char *colon = g_str_has_prefix(arg, "/dev/") ? strchr(arg, ':') : NULL;
    g_autofree char *device = NULL;
    const char *path = arg;
    vmbkGuestFs *fs = NULL;
    guint i;

    if (colon) {
        g_autofree char *given = g_strndup(arg, colon - arg);
        path = *(colon + 1) ? colon + 1 : "/";
        if (!(device = guestfs_canonical_device_name(src->g, given)))
            device = g_strdup(given);
        if (!(fs = vmbkInspectionFindFs(src->insp, device)) || !vmbkGuestFsMountable(fs)) {
            g_autofree char *list = vmbkInspectionFsList(src->insp);
            vmbkError(VMBK_ERR_OPERATION, "%s has no filesystem '%s'; it has: %s", src->what,
                      given, *list ? list : "none");
            return NULL;
        }
    }
    if (path[0] != '/') {
        vmbkError(VMBK_ERR_USAGE, "'%s' is not an absolute guest path; give /PATH or "
                  "DEVICE:/PATH", arg);
        return NULL;
    }

    if (fs) {
        if (fs->mountpoint && vmbkInspectionHasTree(src->insp) && !src->device) {
            if (vmbkSourceMountTree(src) < 0)
                return NULL;
            return vmbkGuestPathJoin(fs->mountpoint, path);
        }
        if (vmbkSourceMountDevice(src, fs) < 0)
            return NULL;
        return g_strdup(path);
    }
    if (vmbkInspectionHasTree(src->insp) && !src->device) {
        if (vmbkSourceMountTree(src) < 0)
            return NULL;
        return g_strdup(path);
    }
    for (i = 0; i < src->insp->filesystems->len; i++) {
        vmbkGuestFs *f = g_ptr_array_index(src->insp->filesystems, i);
        if (vmbkGuestFsMountable(f)) {
            if (fs) {
                g_autofree char *list = vmbkInspectionFsList(src->insp);
                vmbkError(VMBK_ERR_USAGE, "%s has no operating system vmbk could inspect and "
                          "several filesystems (%s); address one as DEVICE:%s", src->what, list,
                          path);
                return NULL;
            }
            fs = f;
        }
    }
    if (!fs) {
        vmbkError(VMBK_ERR_OPERATION, "%s has no filesystem that can be mounted", src->what);
        return NULL;
    }
    if (vmbkSourceMountDevice(src, fs) < 0)
        return NULL;
    return g_strdup(path);
}

int
vmbkSourceStat(vmbkSource *src, const char *arg, const char *path, bool follow,
               struct guestfs_statns **st)
{
    int err;

    *st = follow ? guestfs_statns(src->g, path) : guestfs_lstatns(src->g, path);
    if (*st)
        return 0;
    err = guestfs_last_errno(src->g);
    if (follow && err == ELOOP) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' at %s is a symlink that never resolves (a loop, or "
                  "too many levels of symbolic links)", arg, src->what);
        return -1;
    }
    if (err == ENOENT || err == ENOTDIR) {
        g_autofree char *target = NULL;
        struct guestfs_statns *lst;

        /* A dangling symlink exists: say where it points (resolved in the guest, never on the
         * host). */
        if (follow && (lst = guestfs_lstatns(src->g, path))) {
            bool link = S_ISLNK(lst->st_mode);
            guestfs_free_statns(lst);
            if (link && (target = guestfs_readlink(src->g, path))) {
                vmbkError(VMBK_ERR_OPERATION, "'%s' is a symlink to '%s', which does not exist "
                          "at %s", arg, target, src->what);
                return -1;
            }
        }
        vmbkError(VMBK_ERR_OPERATION, "'%s' does not exist at %s", arg, src->what);
        return -1;
    }
    vmbkErrorGuestfs(src->g, "cannot read '%s' at %s", arg, src->what);
    return -1;
}

typedef struct _vmbkWalkDir vmbkWalkDir;
struct _vmbkWalkDir {
    char *rel;        /* relative to the walk's top, "" for the top itself */
    GPtrArray *names; /* its entries' names */
};

static void
vmbkWalkDirFree(vmbkWalkDir *d)
{
    g_free(d->rel);
    g_ptr_array_free(d->names, TRUE);
    g_free(d);
}

static void
vmbkFreeLinks(char **links)
{
    size_t i;

    for (i = 0; links && links[i]; i++)
        free(links[i]);
    free(links);
}

int
vmbkGuestfsWalk(guestfs_h *g, const char *top, bool links, vmbkWalkFunc fn, void *opaque,
                const char *what)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *tmp = NULL;
    g_autofree char *data = NULL;
    g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkWalkDirFree);
    g_autoptr(GHashTable) byrel = g_hash_table_new(g_str_hash, g_str_equal);
    gsize len, i, start;
    guint k, j;
    int fd;

    if ((fd = g_file_open_tmp("vmbk-find0-XXXXXX", &tmp, &err)) < 0) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create a temporary file: %s", err->message);
        return -1;
    }
    close(fd);
    if (guestfs_find0(g, top, tmp) < 0) {
        vmbkErrorGuestfs(g, "cannot list the files under '%s' of %s", top, what);
        unlink(tmp);
        return -1;
    }
    if (!g_file_get_contents(tmp, &data, &len, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot read '%s': %s", tmp, err->message);
        unlink(tmp);
        return -1;
    }
    unlink(tmp);

    /* find lists a directory before what is in it, so the directories are grouped in an order
     * where a parent comes first. */
    for (i = start = 0; i < len; i++) {
        const char *name, *slash;
        g_autofree char *rel = NULL;
        vmbkWalkDir *d;

        if (data[i] != '\0')
            continue;
        name = data + start;
        start = i + 1;
        if (!*name)
            continue;
        slash = strrchr(name, '/');
        rel = slash ? g_strndup(name, slash - name) : g_strdup("");
        if (!(d = g_hash_table_lookup(byrel, rel))) {
            d = g_new0(vmbkWalkDir, 1);
            d->rel = g_steal_pointer(&rel);
            d->names = g_ptr_array_new_with_free_func(g_free);
            g_ptr_array_add(dirs, d);
            g_hash_table_insert(byrel, d->rel, d);
        }
        g_ptr_array_add(d->names, g_strdup(slash ? slash + 1 : name));
    }

    for (k = 0; k < dirs->len; k++) {
        vmbkWalkDir *d = g_ptr_array_index(dirs, k);
        g_autofree char *gdir = *d->rel ? g_build_filename(top, d->rel, NULL) : g_strdup(top);

        for (j = 0; j < d->names->len; j += VMBK_WALK_BATCH) {
            guint n = MIN(VMBK_WALK_BATCH, d->names->len - j);
            g_autofree char **batch = g_new0(char *, n + 1);
            struct guestfs_statns_list *sts;
            char **lnk = NULL;
            int r;

            memcpy(batch, d->names->pdata + j, n * sizeof(char *));
            if (!(sts = guestfs_lstatnslist(g, gdir, batch)) ||
                (links && !(lnk = guestfs_readlinklist(g, gdir, batch)))) {
                vmbkErrorGuestfs(g, "cannot read the metadata of the files in '%s' of %s", gdir,
                                 what);
                if (sts)
                    guestfs_free_statns_list(sts);
                return -1;
            }
            if (sts->len != n) {
                guestfs_free_statns_list(sts);
                vmbkFreeLinks(lnk);
                vmbkError(VMBK_ERR_GUESTFS, "libguestfs returned %u results for %u names in '%s'",
                          sts->len, n, gdir);
                return -1;
            }
            r = fn(opaque, d->rel, batch, sts, lnk);
            guestfs_free_statns_list(sts);
            vmbkFreeLinks(lnk);
            if (r < 0)
                return -1;
        }
    }
    return 0;
}
