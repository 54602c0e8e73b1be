/* vmbk: a point's filesystems through the warm backup appliance
 *
 * The point's images are exported read-only by qemu-nbd and hotplugged into the running
 * appliance (vmbkApplianceAttachImages); its agent mounts the filesystems the point's saved
 * inspection names (FILES_MOUNT), and lists and reads them (FILES_LS, FILES_READ; see
 * common/agentproto.h).  No libguestfs launch: the appliance is already up.  The guest devices
 * the inspection names (/dev/sda1: the first disk of the point's manifest, partition 1) are
 * mapped to the hotplugged disks by position.  Whatever happens (an error, SIGINT, SIGTERM, a
 * closed pipe), vmbkApplFsClose unmounts and detaches; after a kill -9 the next vmbk command's
 * sweep does.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliancefs.h"
#include "backupjob.h"

#define AGENT_TIMEOUT_MS (120 * 1000)
#define DISK_TIMEOUT_S 30

volatile int vmbkApplFsInterrupted;

static void
vmbkApplFsSignal(int sig)
{
    vmbkApplFsInterrupted = sig;
}

vmbkApplFs *
vmbkApplFsOpen(vmbkGlobal *global, const char *repo_path, const char *domain, const char *id)
{
    g_autoptr(vmbkApplFs) fs = g_new0(vmbkApplFs, 1);
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    struct sigaction sa = { .sa_handler = vmbkApplFsSignal }, ign = { .sa_handler = SIG_IGN };
    vmbkPoint *point;
    guint i;
    bool absent;

    sigemptyset(&sa.sa_mask);
    sigemptyset(&ign.sa_mask);
    vmbkApplFsInterrupted = 0;
    sigaction(SIGINT, &sa, &fs->old_int);
    sigaction(SIGTERM, &sa, &fs->old_term);
    sigaction(SIGHUP, &sa, &fs->old_hup);
    sigaction(SIGPIPE, &ign, &fs->old_pipe);

    if (g_strcmp0(id, "live") == 0) {
        vmbkError(VMBK_ERR_USAGE, "--point live cannot be read --via appliance yet (the live "
                  "export is not hotplugged into the appliance); use --via host");
        return NULL;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, domain)) ||
        !(point = vmbkRepoFindPoint(repo, points, domain, id)))
        return NULL;
    for (i = 0; i < points->len; i++) {
        if (g_ptr_array_index(points, i) == point) {
            fs->point = g_ptr_array_steal_index(points, i);
            break;
        }
    }
    if (!fs->point) {
        vmbkError(VMBK_ERR_INTERNAL, "point %s of domain '%s' went missing", point->id, domain);
        return NULL;
    }
    fs->what = g_strdup_printf("point %s of domain '%s'", fs->point->id, domain);
    fs->insp = vmbkInspectionLoad(fs->point->dir, &absent);
    if (!fs->insp && !absent)
        return NULL;
    if (!(fs->conn = vmbkConnect(global)))
        return NULL;
    return g_steal_pointer(&fs);
}

void
vmbkApplFsClose(vmbkApplFs *fs)
{
    if (!fs)
        return;
    if (fs->mount) {
        g_autofree char *req = g_strdup_printf("mount=%s\n", fs->mount);
        g_autofree char *r = vmbkAgentRequest(fs->s->agent, VMBK_AGENT_MSG_FILES_UMOUNT, req,
                                              AGENT_TIMEOUT_MS, NULL);
        if (!r) {
            /* The detach below takes the disks away; the agent then unmounts by itself. */
            fprintf(stderr, "%s: warning: %s\n", vmbk_progname, vmbkErrorMessage());
        }
        g_free(fs->mount);
    }
    if (fs->disks)
        vmbkApplianceDetachImages(fs->s, g_steal_pointer(&fs->disks));
    if (fs->jobdir)
        vmbkJobDirRemove(fs->jobdir);
    g_free(fs->jobdir);
    vmbkApplianceClose(fs->s);
    if (fs->conn)
        virConnectClose(fs->conn);
    vmbkInspectionFree(fs->insp);
    vmbkPointFree(fs->point);
    g_free(fs->what);
    g_free(fs->device);
    g_free(fs->probe.device);
    sigaction(SIGINT, &fs->old_int, NULL);
    sigaction(SIGTERM, &fs->old_term, NULL);
    sigaction(SIGHUP, &fs->old_hup, NULL);
    sigaction(SIGPIPE, &fs->old_pipe, NULL);
    g_free(fs);
}

static int
vmbkApplFsCheckInterrupt(void)
{
    if (vmbkApplFsInterrupted) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) vmbkApplFsInterrupted);
        return -1;
    }
    return 0;
}

/* The appliance, and the point's images in it. */
static int
vmbkApplFsAttach(vmbkApplFs *fs)
{
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func(g_free);
    guint i;

    if (fs->disks)
        return 0;
    if (!(fs->s = vmbkApplianceOpen(fs->conn, true, 600)))
        return -1;
    if (fs->s->started)
        fprintf(stderr, "%s: started the appliance (%.1f s)\n", vmbk_progname,
                fs->s->boot_seconds);
    if (vmbkApplFsCheckInterrupt() < 0)
        return -1;
    for (i = 0; i < fs->point->disks->len; i++) {
        vmbkPointDisk *pd = g_ptr_array_index(fs->point->disks, i);
        g_ptr_array_add(targets, pd->target);
        g_ptr_array_add(images, vmbkPointImagePath(fs->point, pd));
    }
    if (!(fs->jobdir = vmbkJobDirCreate(fs->point->uuid, "files")))
        return -1;
    if (!(fs->disks = vmbkApplianceAttachImages(fs->s, fs->jobdir, targets, images)))
        return -1;
    return vmbkApplFsCheckInterrupt();
}

int
vmbkApplianceFsDevice(GPtrArray *disks, const char *device, const char *what,
                      const char **serial, unsigned int *part)
{
    g_autoptr(GRegex) re = g_regex_new("^/dev/sd([a-z]+)([0-9]*)$", 0, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;
    g_autofree char *letters = NULL;
    g_autofree char *num = NULL;
    unsigned int index = 0;
    size_t i;

    if (!g_regex_match(re, device, 0, &m)) {
        vmbkError(VMBK_ERR_OPERATION, "the filesystem '%s' of %s is not on a partition of a "
                  "disk (LVM, RAID?): the appliance cannot mount it yet; use --via host",
                  device, what);
        return -1;
    }
    letters = g_match_info_fetch(m, 1);
    num = g_match_info_fetch(m, 2);
    for (i = 0; letters[i]; i++)
        index = index * 26 + (letters[i] - 'a' + (i + 1 < strlen(letters) ? 1 : 0));
    if (index >= disks->len) {
        vmbkError(VMBK_ERR_OPERATION, "the filesystem '%s' of %s is on a disk the point does "
                  "not have", device, what);
        return -1;
    }
    *serial = ((vmbkApplianceDisk *) g_ptr_array_index(disks, index))->serial;
    *part = *num ? g_ascii_strtoull(num, NULL, 10) : 0;
    return 0;
}

/* Mount filesystems (of vmbkGuestFs) at their mountpoints (tree), or the one of them at /. */
static int
vmbkApplFsMount(vmbkApplFs *fs, GPtrArray *fss, bool tree)
{
    g_autoptr(GString) req = g_string_new(NULL);
    g_autofree char *r = NULL;
    g_autofree char *err = NULL;
    guint i;

    if (vmbkApplFsAttach(fs) < 0)
        return -1;
    g_string_append_printf(req, "timeout=%d\n", DISK_TIMEOUT_S);
    for (i = 0; i < fss->len; i++) {
        vmbkGuestFs *f = g_ptr_array_index(fss, i);
        g_autofree char *mp = vmbkAgentEscape(tree ? f->mountpoint : "/");
        const char *serial;
        unsigned int part;

        if (vmbkApplianceFsDevice(fs->disks, f->device, fs->what, &serial, &part) < 0)
            return -1;
        g_string_append_printf(req, "fs=%s %u %s %s\n", serial, part,
                               f->type && g_strcmp0(f->type, "unknown") != 0 ? f->type : "", mp);
    }
    if (!(r = vmbkAgentRequest(fs->s->agent, VMBK_AGENT_MSG_FILES_MOUNT, req->str,
                               AGENT_TIMEOUT_MS, &vmbkApplFsInterrupted)))
        return -1;
    if ((err = vmbkAgentPayloadGet(r, "errno"))) {
        g_autofree char *what = vmbkAgentPayloadGet(r, "what");
        g_autofree char *mp = vmbkAgentUnescape(what);
        g_autofree char *msg = vmbkAgentPayloadGet(r, "message");
        vmbkGuestFs *f = NULL;

        for (i = 0; i < fss->len; i++) {
            vmbkGuestFs *x = g_ptr_array_index(fss, i);
            if (!f || (tree && g_strcmp0(x->mountpoint, mp) == 0))
                f = x;
        }
        vmbkError(VMBK_ERR_OPERATION, "the %s filesystem '%s' of %s cannot be mounted: %s",
                  f->type && *f->type ? f->type : "unknown", f->device, fs->what,
                  msg ? msg : "");
        return -1;
    }
    if (!(fs->mount = vmbkAgentPayloadGet(r, "mount"))) {
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent answered FILES_MOUNT without a "
                  "mount");
        return -1;
    }
    return 0;
}

static int
vmbkApplFsMountTree(vmbkApplFs *fs)
{
    g_autoptr(GPtrArray) fss = g_ptr_array_new();
    guint i;

    if (fs->tree)
        return 0;
    for (i = 0; i < fs->insp->filesystems->len; i++) {
        vmbkGuestFs *f = g_ptr_array_index(fs->insp->filesystems, i);
        if (f->mountpoint)
            g_ptr_array_add(fss, f);
    }
    if (vmbkApplFsMount(fs, fss, true) < 0)
        return -1;
    fs->tree = true;
    return 0;
}

static int
vmbkApplFsMountDevice(vmbkApplFs *fs, vmbkGuestFs *f)
{
    g_autoptr(GPtrArray) fss = g_ptr_array_new();

    if (fs->device && g_str_equal(fs->device, f->device))
        return 0;
    if (fs->device || fs->tree) {
        vmbkError(VMBK_ERR_USAGE, "cannot address '%s' of %s together with its other "
                  "filesystems in one command; run one command per filesystem", f->device,
                  fs->what);
        return -1;
    }
    g_ptr_array_add(fss, f);
    if (vmbkApplFsMount(fs, fss, false) < 0)
        return -1;
    fs->device = g_strdup(f->device);
    return 0;
}

/* /dev/vda1, /dev/hda1, /dev/xvda1 name /dev/sda1 in the appliance, as libguestfs says. */
static char *
vmbkApplFsCanonical(const char *device)
{
    g_autoptr(GRegex) re = g_regex_new("^/dev/(h|v|xv)d([a-z]+[0-9]*)$", 0, 0, NULL);

    return g_regex_replace(re, device, -1, 0, "/dev/sd\\2", 0, NULL);
}

char *
vmbkApplFsResolve(vmbkApplFs *fs, const char *arg)
{
    const char *colon = g_str_has_prefix(arg, "/dev/") ? strchr(arg, ':') : NULL;
    const char *path = arg;
    vmbkGuestFs *f = NULL;
    guint i;

    if (colon) {
        g_autofree char *given = g_strndup(arg, colon - arg);
        g_autofree char *device = vmbkApplFsCanonical(given);
        path = *(colon + 1) ? colon + 1 : "/";
        if (!fs->insp) {
            g_free(fs->probe.device);
            fs->probe.device = g_steal_pointer(&device);
            fs->probe.type = (char *) "";
            f = &fs->probe;
        } else if (!(f = vmbkInspectionFindFs(fs->insp, device)) || !vmbkGuestFsMountable(f)) {
            g_autofree char *list = vmbkInspectionFsList(fs->insp);
            vmbkError(VMBK_ERR_OPERATION, "%s has no filesystem '%s'; it has: %s", fs->what,
                      given, *list ? list : "none");
            return NULL;
        }
    }
    if (path[0] != '/') {
        vmbkError(VMBK_ERR_USAGE, "'%s' is not an absolute guest path; give /PATH or "
                  "DEVICE:/PATH", arg);
        return NULL;
    }
    if (!fs->insp && !f) {
        vmbkError(VMBK_ERR_OPERATION, "%s has no saved inspection (it was backed up with "
                  "--no-catalog), so its guest paths are unknown to the appliance; run 'vmbk "
                  "index' on it, or address one filesystem as DEVICE:%s", fs->what, path);
        return NULL;
    }

    if (f) {
        if (f->mountpoint && vmbkInspectionHasTree(fs->insp) && !fs->device) {
            if (vmbkApplFsMountTree(fs) < 0)
                return NULL;
            return vmbkGuestPathJoin(f->mountpoint, path);
        }
        if (vmbkApplFsMountDevice(fs, f) < 0)
            return NULL;
        return g_strdup(path);
    }
    if (vmbkInspectionHasTree(fs->insp) && !fs->device) {
        if (vmbkApplFsMountTree(fs) < 0)
            return NULL;
        return g_strdup(path);
    }
    for (i = 0; i < fs->insp->filesystems->len; i++) {
        vmbkGuestFs *x = g_ptr_array_index(fs->insp->filesystems, i);
        if (vmbkGuestFsMountable(x)) {
            if (f) {
                g_autofree char *list = vmbkInspectionFsList(fs->insp);
                vmbkError(VMBK_ERR_USAGE, "%s has no operating system vmbk could inspect and "
                          "several filesystems (%s); address one as DEVICE:%s", fs->what, list,
                          path);
                return NULL;
            }
            f = x;
        }
    }
    if (!f) {
        vmbkError(VMBK_ERR_OPERATION, "%s has no filesystem that can be mounted", fs->what);
        return NULL;
    }
    if (vmbkApplFsMountDevice(fs, f) < 0)
        return NULL;
    return g_strdup(path);
}

/* A stat line of FILES_LS into st (name and link unescaped); -1 if it is not one. */
static int
vmbkApplFsParseStat(const char *line, struct guestfs_statns *st, char **name, char **link)
{
    g_auto(GStrv) f = g_strsplit(line, " ", VMBK_AGENT_STAT_FIELDS);

    memset(st, 0, sizeof(*st));
    if (g_strv_length(f) != VMBK_AGENT_STAT_FIELDS) {
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent sent a bad stat line '%s'", line);
        return -1;
    }
    *name = vmbkAgentUnescape(f[0]);
    if (link)
        *link = *f[11] ? vmbkAgentUnescape(f[11]) : g_strdup("");
    if (g_str_equal(f[1], "?")) {
        st->st_ino = -1;
        return 0;
    }
    st->st_mode = g_ascii_strtoull(f[2], NULL, 8);
    st->st_uid = g_ascii_strtoll(f[3], NULL, 10);
    st->st_gid = g_ascii_strtoll(f[4], NULL, 10);
    st->st_size = g_ascii_strtoll(f[5], NULL, 10);
    st->st_atime_sec = g_ascii_strtoll(f[6], NULL, 10);
    st->st_atime_nsec = g_ascii_strtoll(f[7], NULL, 10);
    st->st_mtime_sec = g_ascii_strtoll(f[8], NULL, 10);
    st->st_mtime_nsec = g_ascii_strtoll(f[9], NULL, 10);
    st->st_ino = g_ascii_strtoll(f[10], NULL, 10);
    st->st_nlink = 1;
    return 0;
}

/* FILES_LS: its payload, or NULL (reported); *err: the errno it says, 0 if none. */
static char *
vmbkApplFsLs(vmbkApplFs *fs, const char *path, bool follow, bool list, guint start, int *err)
{
    g_autofree char *p = vmbkAgentEscape(path);
    g_autofree char *req = g_strdup_printf("mount=%s\npath=%s\nfollow=%d\nlist=%d\nstart=%u\n",
                                           fs->mount, p, follow, list, start);
    g_autofree char *r = vmbkAgentRequest(fs->s->agent, VMBK_AGENT_MSG_FILES_LS, req,
                                          AGENT_TIMEOUT_MS, &vmbkApplFsInterrupted);
    g_autofree char *e = r ? vmbkAgentPayloadGet(r, "errno") : NULL;

    *err = e ? (int) g_ascii_strtoll(e, NULL, 10) : 0;
    return g_steal_pointer(&r);
}

int
vmbkApplFsStat(vmbkApplFs *fs, const char *arg, const char *path, bool follow,
               struct guestfs_statns **st, char **link)
{
    g_autofree char *r = NULL;
    g_autofree char *self = NULL;
    g_autofree char *name = NULL;
    g_autofree char *target = NULL;
    int err;

    if (!(r = vmbkApplFsLs(fs, path, follow, false, 0, &err)))
        return -1;
    if (err == 0 && (self = vmbkAgentPayloadGet(r, "self"))) {
        *st = g_new0(struct guestfs_statns, 1);
        if (vmbkApplFsParseStat(self, *st, &name, &target) < 0) {
            g_clear_pointer(st, g_free);
            return -1;
        }
        if (link)
            *link = g_steal_pointer(&target);
        return 0;
    }
    if (follow && err == ELOOP) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' at %s is a symlink that never resolves (a loop, or "
                  "too many levels of symbolic links)", arg, fs->what);
        return -1;
    }
    if (err == ENOENT || err == ENOTDIR) {
        g_autofree char *lr = NULL;
        g_autofree char *lself = NULL;
        int lerr;

        /* A dangling symlink exists: say where it points (resolved in the guest's tree). */
        if (follow && (lr = vmbkApplFsLs(fs, path, false, false, 0, &lerr)) && lerr == 0 &&
            (lself = vmbkAgentPayloadGet(lr, "self"))) {
            struct guestfs_statns lst;
            if (vmbkApplFsParseStat(lself, &lst, &name, &target) == 0 &&
                S_ISLNK(lst.st_mode)) {
                vmbkError(VMBK_ERR_OPERATION, "'%s' is a symlink to '%s', which does not exist "
                          "at %s", arg, target, fs->what);
                return -1;
            }
        }
        vmbkError(VMBK_ERR_OPERATION, "'%s' does not exist at %s", arg, fs->what);
        return -1;
    }
    vmbkErrorSystem(err ? err : EIO, "cannot read '%s' at %s", arg, fs->what);
    return -1;
}

int
vmbkApplFsList(vmbkApplFs *fs, const char *arg, const char *path, GPtrArray **names,
               GArray **sts, GPtrArray **links)
{
    g_autoptr(GPtrArray) n = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) s = g_array_new(FALSE, TRUE, sizeof(struct guestfs_statns));
    g_autoptr(GPtrArray) l = g_ptr_array_new_with_free_func(g_free);
    guint start = 0;

    for (;;) {
        g_autofree char *r = NULL;
        g_autofree char *next = NULL;
        g_auto(GStrv) lines = NULL;
        size_t i;
        int err;

        if (!(r = vmbkApplFsLs(fs, path, false, true, start, &err)))
            return -1;
        if (err) {
            vmbkErrorSystem(err, "cannot list '%s' at %s", arg, fs->what);
            return -1;
        }
        lines = g_strsplit(r, "\n", -1);
        for (i = 0; lines[i]; i++) {
            struct guestfs_statns st;
            char *name, *link;

            if (!g_str_has_prefix(lines[i], "entry="))
                continue;
            if (vmbkApplFsParseStat(lines[i] + 6, &st, &name, &link) < 0)
                return -1;
            g_ptr_array_add(n, name);
            g_ptr_array_add(l, link);
            g_array_append_val(s, st);
        }
        if (!(next = vmbkAgentPayloadGet(r, "next")))
            break;
        start = g_ascii_strtoull(next, NULL, 10);
    }
    *names = g_steal_pointer(&n);
    *sts = g_steal_pointer(&s);
    *links = g_steal_pointer(&l);
    return 0;
}

/* Write to fd; one that is not a regular file (a pipe, a terminal) is waited for with poll and
 * written a page at a time, so that a signal (which another thread may take) or a reader that
 * stops never leaves vmbk blocked in write(). */
static int
vmbkApplFsWriteAll(int fd, const uint8_t *p, size_t len, off_t off, bool sparse)
{
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);

    while (len > 0) {
        size_t n = regular ? len : MIN(len, 4096);
        ssize_t w;

        if (vmbkApplFsInterrupted) {
            errno = EINTR;
            return -1;
        }
        if (!regular) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            int r = poll(&pfd, 1, 200);
            if (r < 0 && errno != EINTR)
                return -1;
            if (r <= 0)
                continue;
        }
        w = sparse ? pwrite(fd, p, n, off) : write(fd, p, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0)
            return -1;
        p += w;
        off += w;
        len -= w;
    }
    return 0;
}

int
vmbkApplFsRead(vmbkApplFs *fs, const char *arg, const char *path, bool follow, bool sparse,
               int fd)
{
    g_autofree char *p = vmbkAgentEscape(path);
    g_autofree char *req = g_strdup_printf("mount=%s\npath=%s\nfollow=%d\nsparse=%d\n",
                                           fs->mount, p, follow, sparse);
    g_autoptr(GBytes) frame = NULL;
    uint32_t id = fs->s->agent->next_id++;

    if (vmbkApplFsCheckInterrupt() < 0)
        return -1;
    frame = vmbkAgentFrameEncode(VMBK_AGENT_MSG_FILES_READ, id, req, strlen(req));
    if (vmbkAgentSendFrame(fs->s->agent, frame) < 0)
        return -1;
    for (;;) {
        g_autoptr(vmbkAgentFrame) f = NULL;
        g_autofree char *header = NULL;
        g_autofree char *err = NULL;
        g_autofree char *off = NULL;
        g_autofree char *size = NULL;
        const uint8_t *data;
        size_t len;

        if (vmbkAgentNext(fs->s->agent, id, &vmbkApplFsInterrupted, &f) < 0)
            goto cancel;
        if (f->type == VMBK_AGENT_MSG_ERROR) {
            g_autofree char *msg = vmbkAgentPayloadGet(f->payload->str, "message");
            vmbkError(VMBK_ERR_OPERATION, "cannot read '%s' at %s in the appliance: %s", arg,
                      fs->what, msg ? msg : "no message");
            return -1;
        }
        if (f->type != (VMBK_AGENT_MSG_FILES_READ | VMBK_AGENT_RESPONSE)) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent answered FILES_READ with %s",
                      vmbkAgentMsgName(f->type));
            goto cancel;
        }
        header = vmbkAgentPayloadSplit(f->payload, &data, &len);
        if ((err = vmbkAgentPayloadGet(header, "errno"))) {
            int e = g_ascii_strtoll(err, NULL, 10);
            if (e == EINVAL)
                vmbkError(VMBK_ERR_OPERATION, "'%s' is not a regular file at %s", arg, fs->what);
            else
                vmbkErrorSystem(e, "cannot read '%s' at %s", arg, fs->what);
            return -1;
        }
        off = vmbkAgentPayloadGet(header, "offset");
        if (len && vmbkApplFsWriteAll(fd, data, len, off ? g_ascii_strtoll(off, NULL, 10) : 0,
                                      sparse) < 0) {
            if (errno == EINTR)
                vmbkApplFsCheckInterrupt();
            else
                vmbkErrorSystem(errno, "cannot write '%s' of %s", arg, fs->what);
            goto cancel;
        }
        if ((size = vmbkAgentPayloadGet(header, "size"))) {
            if (sparse && ftruncate(fd, g_ascii_strtoll(size, NULL, 10)) < 0) {
                vmbkErrorSystem(errno, "cannot write '%s' of %s", arg, fs->what);
                return -1;
            }
            return 0;
        }
    }

 cancel:
    /* Stop the stream; what it already sent is skipped (another id) by the next request. */
    {
        g_autoptr(GBytes) c = vmbkAgentFrameEncode(VMBK_AGENT_MSG_CANCEL, id, "", 0);
        vmbkAgentSendFrame(fs->s->agent, c);
    }
    return -1;
}
