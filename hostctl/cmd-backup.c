/* vmbk backup: a live, point-in-time backup of a running domain into the repository
 *
 * The flow (see DESIGN.md): lock the domain in the repository, clear what an interrupted run left,
 * decide level and parent, start a pull-mode backup job with a new checkpoint, copy each disk's
 * export into a new qcow2 backed by the parent's, end the job, commit the point (manifest last,
 * then rename), prune checkpoints no point needs.  Whatever fails, the job is ended, the new
 * checkpoint and the partial point are removed, and the guest runs on as before.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libvirt/virterror.h>

#include "appliance.h"
#include "backup.h"
#include "backupjob.h"
#include "checkpoint.h"
#include "digest.h"
#include "domxml.h"
#include "inspection.h"
#include "json.h"
#include "nbdcopy.h"
#include "nbdexport.h"
#include "plugin.h"
#include "qemunbd.h"
#include "repo.h"
#include "runner.h"
#include "snapshot.h"
#include "spawn.h"
#include "vmbk.h"


static volatile int interrupted;

static void
vmbkBackupSignal(int sig)
{
    interrupted = sig;
}

static void
vmbkBackupProgress(void *opaque, uint64_t done, uint64_t total)
{
    const char *target = opaque;

    fprintf(stderr, "\r%s: %3d%% of %" PRIu64 " MiB to copy", target,
            total ? (int) (done * 100 / total) : 100, total * VMBK_DIGEST_LEAF_SIZE >> 20);
    if (done == total)
        fputc('\n', stderr);
}

/* Test hook: VMBK_TEST_PAUSE=FILE makes vmbk create FILE at a phase and wait (at most 5 minutes)
 * until it is removed, so a test can write into the guest or kill vmbk there.  The phase is
 * VMBK_TEST_PAUSE_AT: "point" (the point is taken, nothing copied; the default), "copy" (the
 * first disk's image is being served, nothing copied), "appliance" (--via appliance: the first
 * disk is attached to the appliance) or "commit" (all data written, not yet committed). */
static int
vmbkBackupTestPause(const char *phase)
{
    const char *file = g_getenv("VMBK_TEST_PAUSE");
    const char *at = g_getenv("VMBK_TEST_PAUSE_AT");
    int i;

    if (!file || !*file || !g_str_equal(at && *at ? at : "point", phase))
        return 0;
    if (!g_file_set_contents(file, "paused\n", -1, NULL)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create the test pause file '%s'", file);
        return -1;
    }
    for (i = 0; i < 3000 && g_file_test(file, G_FILE_TEST_EXISTS) && !interrupted; i++)
        g_usleep(100 * 1000);
    return 0;
}

static uint64_t
vmbkStoredBytes(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (uint64_t) sb.st_blocks * 512 : 0;
}

/* Create the point's image for one disk: a qcow2 backed by the parent's, by relative path. */
static int
vmbkBackupCreateImage(vmbkBackup *b, const char *path, uint64_t size, const char *target)
{
    g_autofree char *sizestr = g_strdup_printf("%" PRIu64, size);
    g_autofree char *backing = NULL;
    vmbkPointDisk *pdisk;

    if (!b->parent) {
        const char *argv[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
                               "compat=1.1,cluster_size=65536", path, sizestr, NULL };
        return vmbkRun(argv, NULL);
    }
    pdisk = vmbkPointFindDisk(b->parent, target);
    backing = g_strdup_printf("../%s/%s", b->parent->id, pdisk->image);
    {
        const char *argv[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", "-o",
                               "compat=1.1,cluster_size=65536", "-b", backing, "-F", "qcow2",
                               "-u", path, sizestr, NULL };
        return vmbkRun(argv, NULL);
    }
}

/* Copy one exported disk into the new point. */
static int
vmbkBackupDisk(vmbkBackup *b, const char *jobdir, const vmbkNbdExport *tcp, const char *socket,
               const char *export, const char *bitmap, const char *tmpdir, vmbkDisk *disk,
               vmbkPointDisk *out)
{
    g_autofree char *image = g_strdup_printf("%s.qcow2", disk->target);
    g_autofree char *path = g_build_filename(tmpdir, image, NULL);
    g_autofree char *leaves = g_strdup_printf("%s/%s.leaves", tmpdir, disk->target);
    g_autofree char *what = g_strdup_printf("disk '%s' of domain '%s'", disk->target, b->name);
    g_autoptr(vmbkQemuNbd) srv = NULL;
    g_autoptr(vmbkDigest) digest = NULL;
    g_autofree char *pleaves = NULL;
    vmbkCopy copy = { 0 };
    virDomainBlockInfo info;

    if (virDomainGetBlockInfo(b->dom, disk->target, &info, 0) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the size of %s", what);
        return -1;
    }
    if (b->parent) {
        vmbkPointDisk *pdisk = vmbkPointFindDisk(b->parent, disk->target);

        if (pdisk->virtual_size != info.capacity) {
            vmbkError(VMBK_ERR_OPERATION, "%s has %llu bytes, %" PRIu64 " at point %s: it was "
                      "resized; run a full backup", what, info.capacity, pdisk->virtual_size,
                      b->parent->id);
            return -1;
        }
        pleaves = g_strdup_printf("%s/%s.leaves", b->parent->dir, disk->target);
    }
    if (!(digest = vmbkDigestCreate(leaves, pleaves, info.capacity)))
        return -1;
    if (vmbkBackupCreateImage(b, path, info.capacity, disk->target) < 0)
        return -1;
    if (!(srv = vmbkQemuNbdStart(path, "qcow2", false, vmbkCopyDefaultThreads(), jobdir)))
        return -1;
    vmbkDebug("%s: image created and served", disk->target);
    if (vmbkBackupTestPause("copy") < 0)
        return -1;

    copy.what = what;
    copy.src_socket = socket;
    copy.src_tcp = tcp;
    copy.src_export = export;
    copy.dirty_bitmap = bitmap;
    copy.dst_socket = srv->socket;
    copy.dst_fresh = bitmap == NULL; /* a full writes into an empty image */
    copy.threads = vmbkCopyDefaultThreads();
    copy.digest = digest;
    copy.interrupted = &interrupted;
    if (b->progress) {
        copy.progress = vmbkBackupProgress;
        copy.progress_opaque = disk->target;
    }
    if (vmbkCopyRun(&copy) < 0)
        return -1;
    vmbkDebug("%s: copied %" PRIu64 " bytes read, %" PRIu64 " written, %" PRIu64 " zeroed",
              disk->target, copy.bytes_read, copy.bytes_written, copy.bytes_zeroed);
    g_clear_pointer(&srv, vmbkQemuNbdStop); /* closes the image */
    vmbkDebug("%s: image closed", disk->target);

    if (vmbkDigestSync(digest) < 0 || !(out->digest = vmbkDigestRoot(digest)))
        return -1;
    out->target = g_strdup(disk->target);
    out->image = g_steal_pointer(&image);
    out->source = g_strdup(disk->source);
    out->source_format = g_strdup(disk->format);
    out->virtual_size = copy.size;
    out->stored_bytes = vmbkStoredBytes(path);
    return 0;
}

/* Freeze the guest's filesystems if asked and possible: true if frozen. */
static bool
vmbkBackupFreeze(vmbkBackup *b)
{
    if (!b->quiesce)
        return false;
    if (virDomainFSFreeze(b->dom, NULL, 0, 0) < 0) {
        virErrorPtr err = virGetLastError();
        fprintf(stderr, "%s: cannot quiesce domain '%s' (%s); the point is crash-consistent\n",
                vmbk_progname, b->name, err && err->message ? err->message : "no guest agent");
        return false;
    }
    return true;
}

static void
vmbkBackupThaw(vmbkBackup *b, bool frozen)
{
    if (frozen && virDomainFSThaw(b->dom, NULL, 0, 0) < 0) {
        virErrorPtr err = virGetLastError();
        fprintf(stderr, "%s: warning: cannot thaw the filesystems of domain '%s': %s\n",
                vmbk_progname, b->name, err && err->message ? err->message : "unknown error");
    }
}

/* Take the point into tmpdir with a pull-mode backup job. */
static int
vmbkBackupCheckpoint(vmbkBackup *b, vmbkPoint *point, const char *tmpdir)
{
    g_autofree char *desc = g_strdup_printf("vmbk point %s in %s", point->id, b->repo->path);
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(vmbkApplianceSession) s = NULL;
    GPtrArray *live = NULL;
    vmbkNbdExport tcp = { 0 };
    vmbkBackupJob *job;
    bool frozen;
    guint i;
    int ret = 0;

    point->checkpoint = vmbkCheckpointName(b->repo->id, point->id);
    frozen = vmbkBackupFreeze(b);
    job = vmbkBackupBeginExport(b->dom, b->name, b->uuid, b->targets, b->all,
                                b->parent ? b->parent->checkpoint : NULL, point->checkpoint,
                                desc, "backup", b->export, b->remote != NULL);
    if (!job && b->parent) {
        /* libvirt checks the bitmaps only now: one may be missing from an image. */
        virErrorPtr err = virGetLastError();
        if (err && err->code == VIR_ERR_CHECKPOINT_INCONSISTENT) {
            g_autofree char *why = g_strdup(err->message);
            vmbkErrorReset();
            if (!b->level_auto) {
                vmbkBackupThaw(b, frozen);
                vmbkError(VMBK_ERR_OPERATION, "the bitmaps of checkpoint '%s' (point %s) of "
                          "domain '%s' are not usable (%s); run a full backup or pass -l auto",
                          b->parent->checkpoint, b->parent->id, b->name, why);
                return -1;
            }
            fprintf(stderr, "%s: taking a full backup: the bitmaps of checkpoint '%s' (point "
                    "%s) are not usable (%s)\n", vmbk_progname, b->parent->checkpoint,
                    b->parent->id, why);
            b->parent = NULL;
            b->level = "full";
            g_free(point->parent);
            point->parent = NULL;
            g_free(point->level);
            point->level = g_strdup("full");
            job = vmbkBackupBeginExport(b->dom, b->name, b->uuid, b->targets, b->all, NULL,
                                        point->checkpoint, desc, "backup", b->export,
                                        b->remote != NULL);
        }
    }
    vmbkBackupThaw(b, frozen);
    if (!job)
        return -1;
    vmbkDebug("backup job started");
    point->consistency = g_strdup(frozen ? "quiesced" : "crash");
    if (job->tcp_host) {
        tcp.host = job->tcp_host;
        tcp.port = job->tcp_port;
        tcp.tls = job->tls;
        tcp.tls_dir = b->export ? b->export->tls_dir : NULL;
        vmbkDebug("export served on %s:%s%s", tcp.host, tcp.port, tcp.tls ? " with TLS" : "");
    }

    if (vmbkBackupTestPause("point") < 0)
        ret = -1;
    /* --via appliance on TCP: the appliance attaches the guest's export itself. */
    if (ret == 0 && b->via_appliance && job->tcp_host) {
        if (!(conn = vmbkConnect(b->global)) || !(s = vmbkApplianceOpen(conn, true, 600)) ||
            !(live = vmbkApplianceAttachJob(s, job)))
            ret = -1;
        else if (s->started)
            fprintf(stderr, "%s: started the appliance (%.1f s)\n", vmbk_progname,
                    s->boot_seconds);
        if (ret == 0 && vmbkBackupTestPause("appliance") < 0)
            ret = -1;
    }
    for (i = 0; ret == 0 && i < job->disks->len; i++) {
        vmbkBackupJobDisk *jd = g_ptr_array_index(job->disks, i);
        vmbkPointDisk *pd = g_new0(vmbkPointDisk, 1);
        vmbkDisk *disk = NULL;
        guint j;

        g_ptr_array_add(point->disks, pd);
        for (j = 0; j < b->disks->len; j++) {
            if (g_str_equal(((vmbkDisk *) g_ptr_array_index(b->disks, j))->target, jd->target))
                disk = g_ptr_array_index(b->disks, j);
        }
        if (!disk) {
            vmbkError(VMBK_ERR_INTERNAL, "libvirt exports disk '%s', which was not asked for",
                      jd->target);
            ret = -1;
            break;
        }
        if (vmbkBackupDisk(b, job->dir, job->tcp_host ? &tcp : NULL, job->socket, jd->export,
                           jd->bitmap, tmpdir, disk, pd) < 0)
            ret = -1;
    }
    /* The appliance's reading of the live export must be what the host wrote. */
    if (ret == 0 && live &&
        vmbkApplianceCheckJob(s, live, point, tmpdir, b->parent != NULL, job->dir,
                              &interrupted) < 0)
        ret = -1;
    if (ret == 0 && live)
        b->appliance_checked = true;
    /* Nothing stays attached to the guest's export once its job ends. */
    vmbkApplianceDetachImages(s, g_steal_pointer(&live));
    vmbkBackupEnd(b->dom, job);
    vmbkDebug("backup job ended");
    return ret;
}

/* Take the point into tmpdir through an external disk-only snapshot: the original images are
 * frozen under an overlay while we copy them, then the overlay is committed back and the domain
 * pivots to its original images. */
static int
vmbkBackupSnapshot(vmbkBackup *b, vmbkPoint *point, const char *tmpdir)
{
    g_autofree char *jobdir = vmbkJobDirCreate(b->uuid, "snapshot");
    vmbkSnapshotView *view;
    guint i;
    int ret = 0;

    if (!jobdir)
        return -1;
    if (!(view = vmbkSnapshotBegin(b->dom, b->name, b->disks, b->all, jobdir, b->quiesce))) {
        vmbkJobDirRemove(jobdir);
        return -1;
    }
    point->consistency = g_strdup(view->quiesced ? "quiesced" : "crash");
    if (vmbkBackupTestPause("point") < 0)
        ret = -1;
    for (i = 0; ret == 0 && i < b->disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(b->disks, i);
        vmbkPointDisk *pd = g_new0(vmbkPointDisk, 1);
        g_autoptr(vmbkQemuNbd) src = NULL;

        g_ptr_array_add(point->disks, pd);
        if (!(src = vmbkQemuNbdStart(disk->source, disk->format, true,
                                     vmbkCopyDefaultThreads(), jobdir)) ||
            vmbkBackupDisk(b, jobdir, NULL, src->socket, "", NULL, tmpdir, disk, pd) < 0)
            ret = -1;
    }
    if (vmbkSnapshotEnd(b->dom, b->name, view) < 0)
        ret = -1;
    vmbkJobDirRemove(jobdir);
    return ret;
}

static char *
vmbkNowIso8601(void)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();

    return g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
}

/* What a plugin run on the new point is told. */
static void
vmbkBackupPluginRun(vmbkBackup *b, vmbkPoint *point, const char *tmpdir,
                    const vmbkPluginSpec *spec, vmbkPluginRun *run)
{
    *run = (vmbkPluginRun) {
        .domain = b->name, .uuid = b->uuid, .id = point->id, .level = point->level,
        .time = point->time, .consistency = point->consistency, .dir = tmpdir,
        .interrupted = &interrupted,
    };
    /* Build on the parent's outputs of this plugin, if it has them. */
    if (b->parent && vmbkPointFindPlugin(b->parent, spec->plugin_name)) {
        run->parent = b->parent->id;
        run->parent_dir = b->parent->dir;
    }
}

/* Run the --plugin plugins on the new point, in tmpdir: the guest's job has ended, they read the
 * point's own images.  Each runs in a child process; the first failure fails the backup. */
static int
vmbkBackupPlugins(vmbkBackup *b, vmbkPoint *point, const char *tmpdir)
{
    guint i, j;

    for (i = 0; i < b->plugins->len; i++) {
        vmbkPluginSpec *spec = g_ptr_array_index(b->plugins, i);
        g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) targets = g_ptr_array_new();
        vmbkPointPlugin *pp = NULL;
        vmbkPluginRun run;

        vmbkBackupPluginRun(b, point, tmpdir, spec, &run);
        for (j = 0; j < point->disks->len; j++) {
            vmbkPointDisk *pd = g_ptr_array_index(point->disks, j);
            g_ptr_array_add(targets, pd->target);
            g_ptr_array_add(images, g_build_filename(tmpdir, pd->image, NULL));
        }
        run.targets = targets;
        run.images = images;
        vmbkDebug("plugin %s: running", spec->plugin_name);
        if (vmbkPluginRunPoint(spec, &run, &pp) < 0) {
            vmbkPointPluginFree(pp);
            return -1;
        }
        g_ptr_array_add(point->plugins, pp);
        vmbkDebug("plugin %s: done, %u outputs", spec->plugin_name, pp->outputs->len);
    }
    return 0;
}

/* --via appliance: each new image is hotplugged read-only into the appliance, whose agent reads
 * it (its digest must be the host's) and runs the plugins on it.  The appliance is started if
 * need be; whatever happens, nothing stays attached. */
static int
vmbkBackupAppliance(vmbkBackup *b, vmbkPoint *point, const char *tmpdir)
{
    g_autoptr(virConnect) conn = vmbkConnect(b->global);
    g_autoptr(vmbkApplianceSession) s = NULL;
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    g_autoptr(GPtrArray) images = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *jobdir = NULL;
    g_autoptr(vmbkInspection) insp = NULL;
    GPtrArray *disks;
    guint i;
    int ret = -1;

    if (b->appliance_checked && b->plugins->len == 0)
        return 0; /* it read the live export; no plugin to run on the point */
    if (!conn || !(s = vmbkApplianceOpen(conn, true, 600)))
        return -1;
    if (s->started)
        fprintf(stderr, "%s: started the appliance (%.1f s)\n", vmbk_progname, s->boot_seconds);
    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *pd = g_ptr_array_index(point->disks, i);
        g_ptr_array_add(targets, pd->target);
        g_ptr_array_add(images, g_build_filename(tmpdir, pd->image, NULL));
    }
    if (!(jobdir = vmbkJobDirCreate(b->uuid, "appliance")))
        return -1;
    if (!(disks = vmbkApplianceAttachImages(s, jobdir, targets, images)))
        goto out;
    if (!b->appliance_checked && vmbkBackupTestPause("appliance") < 0)
        goto detach;
    for (i = 0; !b->appliance_checked && i < disks->len; i++) {
        vmbkPointDisk *pd = g_ptr_array_index(point->disks, i);
        /* A point with a parent: the appliance reads what it changed. */
        g_autofree char *leaves = b->parent ? g_strdup_printf("%s/%s.leaves", tmpdir,
                                                              pd->target)
                                            : NULL;
        if (vmbkApplianceCheckDigest(s, g_ptr_array_index(disks, i), pd->digest, leaves,
                                     &interrupted) < 0)
            goto detach;
    }
    /* A file-level plugin walks the filesystems the host's runner would: those its inspection
     * of the new images finds (the point's own inspection comes after the commit). */
    for (i = 0; !insp && i < b->plugins->len; i++) {
        vmbkPluginSpec *spec = g_ptr_array_index(b->plugins, i);
        if (spec->kind && strstr(spec->kind, "file")) {
            gint64 t0 = g_get_monotonic_time();
            if (!(insp = vmbkFsWalkInspect(images)))
                goto detach;
            vmbkDebug("inspected the new point for file-level plugins in %.1f s",
                      (g_get_monotonic_time() - t0) / 1e6);
        }
    }
    for (i = 0; i < b->plugins->len; i++) {
        vmbkPluginSpec *spec = g_ptr_array_index(b->plugins, i);
        vmbkPointPlugin *pp = NULL;
        vmbkPluginRun run;

        vmbkBackupPluginRun(b, point, tmpdir, spec, &run);
        if (vmbkAppliancePluginRun(s, disks, insp, spec, &run, &pp) < 0) {
            vmbkPointPluginFree(pp);
            goto detach;
        }
        g_ptr_array_add(point->plugins, pp);
    }
    ret = 0;
 detach:
    vmbkApplianceDetachImages(s, disks);
 out:
    vmbkJobDirRemove(jobdir);
    return ret;
}

static int
vmbkBackupRun(vmbkBackup *b, const char *domxml, bool json, bool catalog)
{
    g_autoptr(vmbkPoint) point = g_new0(vmbkPoint, 1);
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *tmpdir = NULL;
    g_autofree char *domdir = NULL;
    g_autofree char *xmlpath = NULL;
    g_autoptr(GError) err = NULL;
    struct sigaction sa = { .sa_handler = vmbkBackupSignal }, old_int, old_term, old_hup;
    int ret;
    guint i;

    if (!(tmpdir = vmbkRepoBeginPoint(b->repo, b->name, b->points, &point->id)))
        return -1;
    domdir = vmbkRepoDomainDir(b->repo, b->name, false);
    point->dir = g_strdup_printf("%s/points/%s", domdir, point->id);
    point->domain = g_strdup(b->name);
    point->uuid = g_strdup(b->uuid);
    point->parent = b->parent ? g_strdup(b->parent->id) : NULL;
    point->level = g_strdup(b->level);
    point->method = g_strdup(b->method);
    point->time = vmbkNowIso8601();
    point->disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointDiskFree);
    xmlpath = g_build_filename(tmpdir, "domain.xml", NULL);
    if (!g_file_set_contents(xmlpath, domxml, -1, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot write '%s': %s", xmlpath, err->message);
        vmbkRepoRemoveTree(tmpdir);
        return -1;
    }

    /* SIGINT/SIGTERM/SIGHUP stop the copy; the cleanup below still runs. */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);

    if (g_str_equal(b->method, "snapshot"))
        ret = vmbkBackupSnapshot(b, point, tmpdir);
    else
        ret = vmbkBackupCheckpoint(b, point, tmpdir);
    point->plugins = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointPluginFree);
    if (ret == 0 && b->via_appliance)
        ret = vmbkBackupAppliance(b, point, tmpdir);
    else if (ret == 0 && b->plugins->len > 0)
        ret = vmbkBackupPlugins(b, point, tmpdir);
    if (ret == 0 && interrupted) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) interrupted);
        ret = -1;
    }
    if (ret == 0 && vmbkBackupTestPause("commit") < 0)
        ret = -1;
    if (ret == 0 && (ret = vmbkRepoCommitPoint(tmpdir, point)) == 0)
        vmbkDebug("point committed");

    if (ret < 0) {
        /* Nothing of this point survives: not its files, not its checkpoint. */
        vmbkRepoRemoveTree(tmpdir);
        if (point->checkpoint) {
            g_autoptr(virDomainCheckpoint) cp =
                virDomainCheckpointLookupByName(b->dom, point->checkpoint, 0);
            if (cp)
                virDomainCheckpointDelete(cp, 0);
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (ret < 0)
        return -1;

    /* The domain's XML at the latest point, beside its points. */
    {
        g_autofree char *latest = g_build_filename(domdir, "domain.xml", NULL);
        if (!g_file_set_contents(latest, domxml, -1, &err))
            fprintf(stderr, "%s: warning: cannot write '%s': %s\n", vmbk_progname, latest,
                    err->message);
    }

    /* Keep the checkpoints a later -l inc or -l diff needs: this point's and the last full's. */
    if (point->checkpoint) {
        g_ptr_array_add(keep, g_strdup(point->checkpoint));
        for (i = b->points->len; i > 0; i--) {
            vmbkPoint *p = g_ptr_array_index(b->points, i - 1);
            if (g_str_equal(p->level, "full") && !g_str_equal(point->level, "full")) {
                if (p->checkpoint)
                    g_ptr_array_add(keep, g_strdup(p->checkpoint));
                break;
            }
        }
        if (vmbkCheckpointPrune(b->dom, b->name, b->repo->id, keep) < 0) {
            fprintf(stderr, "%s: warning: %s\n", vmbk_progname, vmbkErrorMessage());
            vmbkErrorReset();
        }
    }

    /* The guest's job has ended: inspecting and cataloguing the committed point costs the guest
     * nothing.  A point without a catalog is still complete. */
    if (catalog && vmbkIndexPoint(point, json) < 0) {
        fprintf(stderr, "%s: warning: point %s is complete; its catalog failed: %s; run "
                "'vmbk index -r %s %s --point %s'\n", vmbk_progname, point->id,
                vmbkErrorMessage(), b->repo->path, b->name, point->id);
        vmbkErrorReset();
    }

    if (json) {
        g_autoptr(vmbkJson) out = vmbkJsonNew();
        vmbkPointJson(out, point);
        vmbkJsonPrint(out, stdout);
    } else {
        printf("%s\n", point->id);
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdBackup)
{
    const char *repo_path = NULL, *level_arg = "auto", *method_arg = NULL, *via = "host";
    const char *export_arg = NULL, *remote = NULL;
    gboolean tls = FALSE, insecure = FALSE;
    g_auto(GStrv) wanted = NULL;
    g_auto(GStrv) plugin_args = NULL;
    gboolean quiesce = FALSE, json = FALSE, no_progress = FALSE, no_catalog = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository (created if new)",
          "REPO" },
        { "level", 'l', 0, G_OPTION_ARG_STRING, &level_arg,
          "full, inc (since the last point), diff (since the last full) or auto (inc when the "
          "chain is usable, else full; the default)", "LEVEL" },
        { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &wanted, "back up this disk only "
          "(repeatable; default: all)", "TARGET" },
        { "quiesce", 0, 0, G_OPTION_ARG_NONE, &quiesce,
          "freeze the guest's filesystems through its agent for the point", NULL },
        { "method", 0, 0, G_OPTION_ARG_STRING, &method_arg,
          "checkpoint (pull-mode backup job; the default) or snapshot (external disk-only "
          "snapshot, full only, for raw disks)", "METHOD" },
        { "plugin", 0, 0, G_OPTION_ARG_STRING_ARRAY, &plugin_args, "also run this plugin on "
          "the point (repeatable; 'vmbk plugins' lists them)", "NAME[:KEY=VALUE,...]" },
        { "via", 0, 0, G_OPTION_ARG_STRING, &via, "host (the default) or appliance: the "
          "backup appliance VM reads each new image, hotplugged read-only, checks its digest and "
          "runs the plugins ('vmbk appliance')", "RUNNER" },
        { "export", 0, 0, G_OPTION_ARG_STRING, &export_arg, "where the backup job serves the "
          "point: unix (a socket on the domain's host; the default) or tcp (on ADDR, default "
          "127.0.0.1, and PORT, default a free one)", "unix|tcp[:ADDR[:PORT]]" },
        { "tls", 0, 0, G_OPTION_ARG_NONE, &tls, "serve the TCP export with TLS (libvirt's "
          "backup_tls_x509_cert_dir; on by itself when qemu.conf sets it) and check it against "
          "the CA in $VMBK_TLS_DIR (default /etc/pki/vmbk, else libvirt's directory)", NULL },
        { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure, "allow a TCP export without TLS on an "
          "address other than loopback", NULL },
        { "remote", 0, 0, G_OPTION_ARG_STRING, &remote, "the domain runs on the libvirt host at "
          "URI (e.g. qemu+ssh://host/system); vmbk reads its --export tcp:ADDR from here",
          "URI" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print the new point as JSON", NULL },
        { "no-progress", 0, 0, G_OPTION_ARG_NONE, &no_progress, "no progress bar", NULL },
        { "no-catalog", 0, 0, G_OPTION_ARG_NONE, &no_catalog, "do not inspect the new point nor "
          "build its file catalog ('vmbk index' can later)", NULL },
        { NULL },
    };
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomain) dom = NULL;
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(vmbkNbdExport) export = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *uuid = NULL;
    g_autoptr(GPtrArray) points = NULL;
    g_autoptr(GPtrArray) plugins =
        g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPluginSpecFree);
    vmbkBackup b = { 0 };
    const char *level;
    char uuidbuf[VIR_UUID_STRING_BUFLEN];
    size_t i;
    int lockfd = -1;
    int ret = -1;

    if (vmbkParseOptions(cmd, entries, NULL, &argc, &argv, 1, 1) < 0)
        return -1;
    if (!(level = vmbkBackupLevelCheck(level_arg))) {
        vmbkError(VMBK_ERR_USAGE, "backup: unknown level '%s'; use full, inc, diff or auto",
                  level_arg);
        return -1;
    }
    if (method_arg && !g_str_equal(method_arg, "checkpoint") &&
        !g_str_equal(method_arg, "snapshot")) {
        vmbkError(VMBK_ERR_USAGE, "backup: unknown method '%s'; use checkpoint or snapshot",
                  method_arg);
        return -1;
    }
    if (!g_str_equal(via, "host") && !g_str_equal(via, "appliance")) {
        vmbkError(VMBK_ERR_USAGE, "backup: unknown runner '%s'; use --via host or --via "
                  "appliance", via);
        return -1;
    }
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "backup: no repository given; pass -r REPO");
        return -1;
    }
    if (remote && (!export_arg || !g_str_has_prefix(export_arg, "tcp:"))) {
        vmbkError(VMBK_ERR_USAGE, "backup: --remote '%s' needs --export tcp:ADDR, an address of "
                  "the domain's host that this host reaches", remote);
        return -1;
    }
    if (remote && method_arg && g_str_equal(method_arg, "snapshot")) {
        vmbkError(VMBK_ERR_USAGE, "backup: --method snapshot reads the disks' files here; it "
                  "cannot work with --remote");
        return -1;
    }
    if (!(export = vmbkNbdExportParse(export_arg, tls, insecure, remote == NULL)))
        return -1;

    /* Plugins are loaded and configured (in a child) before anything is taken. */
    for (i = 0; plugin_args && plugin_args[i]; i++) {
        vmbkPluginSpec *spec = vmbkPluginSpecParse(plugin_args[i]);
        guint j;

        if (!spec)
            return -1;
        g_ptr_array_add(plugins, spec);
        if (vmbkPluginCheck(spec) < 0)
            return -1;
        for (j = 0; j + 1 < plugins->len; j++) {
            vmbkPluginSpec *other = g_ptr_array_index(plugins, j);
            if (g_str_equal(other->plugin_name, spec->plugin_name)) {
                vmbkError(VMBK_ERR_USAGE, "backup: plugin '%s' is given twice",
                          spec->plugin_name);
                return -1;
            }
        }
    }

    b.global = global;
    b.plugins = plugins;
    b.via_appliance = g_str_equal(via, "appliance");
    b.export = export;
    b.remote = remote;
    b.name = argv[1];
    b.quiesce = quiesce;
    b.level_auto = g_str_equal(level, "auto");
    b.progress = !json && !no_progress && isatty(STDERR_FILENO);
    if (remote && !(conn = virConnectOpen(remote))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot connect to the domain's libvirt at '%s'", remote);
        return -1;
    }
    if ((!conn && !(conn = vmbkConnect(global))) || !(dom = vmbkLookupDomain(conn, b.name)))
        return -1;
    b.dom = dom;
    if (virDomainIsActive(dom) != 1) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' is not running; vmbk backs up running "
                  "domains live (start it with 'virsh start %s')", b.name, b.name);
        return -1;
    }
    if (virDomainGetUUIDString(dom, uuidbuf) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the uuid of domain '%s'", b.name);
        return -1;
    }
    b.uuid = uuidbuf;
    if (!(repo = vmbkRepoOpen(repo_path, true)))
        return -1;
    b.repo = repo;
    if ((lockfd = vmbkRepoLock(repo, b.name)) < 0)
        return -1;

    /* A domain elsewhere has no overlay of ours: --method snapshot works here only. */
    if (vmbkBackupCleanStale(dom, b.name) < 0 || (!remote && vmbkSnapshotRecover(dom, b.name) < 0))
        goto cleanup;
    vmbkJobDirSweep(dom, b.uuid);
    if (vmbkRepoCleanPartial(repo, b.name) < 0)
        goto cleanup;
    if (!(xml = virDomainGetXMLDesc(dom, 0))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", b.name);
        goto cleanup;
    }
    if (vmbkBackupSelectDisks(&b, xml, wanted) < 0)
        goto cleanup;
    if (!(points = vmbkRepoPoints(repo, b.name)))
        goto cleanup;
    b.points = points;

    /* Checkpoints of ours that no committed point owns were left by an interrupted run. */
    {
        g_autoptr(GPtrArray) owned = g_ptr_array_new();
        for (i = 0; i < points->len; i++) {
            vmbkPoint *p = g_ptr_array_index(points, i);
            if (p->checkpoint)
                g_ptr_array_add(owned, p->checkpoint);
        }
        if (vmbkCheckpointPrune(dom, b.name, repo->id, owned) < 0)
            goto cleanup;
    }

    if (vmbkBackupDecide(&b, level, method_arg ? method_arg : "checkpoint", method_arg != NULL) < 0)
        goto cleanup;
    if (g_str_equal(b.method, "snapshot") && (remote || export->host)) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' is backed up through an external snapshot, "
                  "which serves its disks from this host's files: --export tcp and --remote need "
                  "disks that hold a checkpoint (qcow2)", b.name);
        goto cleanup;
    }
    ret = vmbkBackupRun(&b, xml, json, !no_catalog);

 cleanup:
    if (b.disks)
        g_ptr_array_free(b.disks, TRUE);
    if (b.targets)
        g_ptr_array_free(b.targets, TRUE);
    if (b.all)
        g_ptr_array_free(b.all, TRUE);
    if (lockfd >= 0)
        close(lockfd);
    (void) uuid;
    return ret;
}
