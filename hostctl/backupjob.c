/* vmbk: libvirt backup jobs in pull mode, and the job directory that holds their socket */
#include <config.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libvirt/virterror.h>

#include "backupjob.h"
#include "domxml.h"
#include "nbdexport.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"
#include "xml.h"

char *
vmbkJobsDir(void)
{
    const char *state = g_getenv("VMBK_STATE_DIR");

    return g_build_filename(state && *state ? state : "/var/lib/vmbk", "jobs", NULL);
}

/* The user qemu runs as under qemu:///system. */
bool
vmbkQemuUser(uid_t *uid, gid_t *gid)
{
    static const char *const names[] = { "libvirt-qemu", "qemu" };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(names); i++) {
        struct passwd *pw = getpwnam(names[i]);
        if (pw) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
            return true;
        }
    }
    return false;
}

char *
vmbkJobDirCreate(const char *domain_uuid, const char *kind)
{
    g_autofree char *jobs = vmbkJobsDir();
    g_autofree char *tmpl = NULL;
    g_autofree char *owner = NULL;
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    struct stat sb;
    uid_t uid;
    gid_t gid;

    /* qemu must get through to its job directory: traverse, not list (whatever the umask). */
    {
        mode_t old = umask(022);
        int r = g_mkdir_with_parents(jobs, 0711);

        umask(old);
        if (r < 0) {
            vmbkErrorSystem(errno, "cannot create '%s'", jobs);
            return NULL;
        }
    }
    /* Job directories hold the sockets of the guest's disks: another user who can write here
     * could swap one of them between our mkdtemp and libvirt's use of it. */
    if (lstat(jobs, &sb) < 0) {
        vmbkErrorSystem(errno, "cannot read '%s'", jobs);
        return NULL;
    }
    if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 022)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' must be a directory of uid %u that no one else can "
                  "write (it has uid %u, mode %04o); fix it or set VMBK_STATE_DIR", jobs,
                  (unsigned int) geteuid(), (unsigned int) sb.st_uid,
                  (unsigned int) (sb.st_mode & 07777));
        return NULL;
    }
    tmpl = g_strdup_printf("%s/%s-XXXXXX", jobs, domain_uuid);
    if (!g_mkdtemp_full(tmpl, 0700)) {
        vmbkErrorSystem(errno, "cannot create a job directory in '%s'", jobs);
        return NULL;
    }
    owner = g_build_filename(tmpl, "owner", NULL);
    text = g_strdup_printf("pid=%d\nkind=%s\n", (int) getpid(), kind);
    if (!g_file_set_contents_full(owner, text, -1, G_FILE_SET_CONTENTS_NONE, 0600, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot write '%s': %s", owner, err->message);
        vmbkJobDirRemove(tmpl);
        return NULL;
    }
    /* qemu creates the socket and libvirt the scratch files here. */
    if (getuid() == 0 && vmbkQemuUser(&uid, &gid) && chown(tmpl, uid, gid) < 0) {
        vmbkErrorSystem(errno, "cannot give '%s' to the qemu user", tmpl);
        vmbkJobDirRemove(tmpl);
        return NULL;
    }
    return g_steal_pointer(&tmpl);
}

/* Is pid gone (or a zombie nobody reaps)? */
static bool
vmbkProcessGone(int pid)
{
    g_autofree char *statpath = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    const char *p;

    if (kill(pid, 0) < 0 || !g_file_get_contents(statpath, &stat, NULL, NULL))
        return true;
    p = strrchr(stat, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

/* A qemu-nbd that a killed vmbk left serving from this directory: its pid file is here and its
 * command line names it.  Stop it, so that no image stays open. */
static void
vmbkJobDirStopServers(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *pidfile = NULL;
        g_autofree char *text = NULL;
        g_autofree char *cmdpath = NULL;
        g_autofree char *cmdline = NULL;
        gsize len, i;
        int pid;

        if (!g_str_has_suffix(name, ".pid"))
            continue;
        pidfile = g_build_filename(dir, name, NULL);
        if (!g_file_get_contents(pidfile, &text, NULL, NULL) || (pid = atoi(text)) <= 1)
            continue;
        cmdpath = g_strdup_printf("/proc/%d/cmdline", pid);
        if (!g_file_get_contents(cmdpath, &cmdline, &len, NULL))
            continue;
        for (i = 0; i < len; i++) {
            if (!cmdline[i])
                cmdline[i] = ' ';
        }
        if (!strstr(cmdline, "qemu-nbd") || !strstr(cmdline, pidfile))
            continue;
        kill(pid, SIGTERM);
        for (i = 0; i < 500 && !vmbkProcessGone(pid); i++)
            g_usleep(10 * 1000);
        if (!vmbkProcessGone(pid))
            kill(pid, SIGKILL);
    }
}

void
vmbkJobDirRemove(const char *dir)
{
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (!dir)
        return;
    vmbkJobDirStopServers(dir);
    if ((d = g_dir_open(dir, 0, NULL))) {
        while ((name = g_dir_read_name(d))) {
            g_autofree char *path = g_build_filename(dir, name, NULL);
            g_unlink(path);
        }
    }
    g_rmdir(dir);
}

void
vmbkBackupJobFree(vmbkBackupJob *job)
{
    guint i;

    if (!job)
        return;
    for (i = 0; job->disks && i < job->disks->len; i++) {
        vmbkBackupJobDisk *disk = g_ptr_array_index(job->disks, i);
        g_free(disk->target);
        g_free(disk->export);
        g_free(disk->bitmap);
        g_free(disk);
    }
    if (job->disks)
        g_ptr_array_free(job->disks, TRUE);
    g_free(job->dir);
    g_free(job->socket);
    g_free(job->tcp_host);
    g_free(job->tcp_port);
    g_free(job);
}

static bool
vmbkStrvContains(GPtrArray *strs, const char *s)
{
    guint i;

    for (i = 0; i < strs->len; i++) {
        if (g_str_equal(g_ptr_array_index(strs, i), s))
            return true;
    }
    return false;
}

static char *
vmbkBackupXml(vmbkBackupJob *job, GPtrArray *targets, GPtrArray *all, const char *incremental,
              GHashTable *sources)
{
    xmlBufferPtr buf;
    xmlTextWriterPtr w = vmbkXmlWriterNew(&buf);
    guint i;

    xmlTextWriterStartElement(w, BAD_CAST "domainbackup");
    xmlTextWriterWriteAttribute(w, BAD_CAST "mode", BAD_CAST "pull");
    if (incremental)
        xmlTextWriterWriteElement(w, BAD_CAST "incremental", BAD_CAST incremental);
    xmlTextWriterStartElement(w, BAD_CAST "server");
    if (job->tcp_host) {
        xmlTextWriterWriteAttribute(w, BAD_CAST "transport", BAD_CAST "tcp");
        if (job->tls)
            xmlTextWriterWriteAttribute(w, BAD_CAST "tls", BAD_CAST "yes");
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST job->tcp_host);
        if (job->tcp_port)
            xmlTextWriterWriteAttribute(w, BAD_CAST "port", BAD_CAST job->tcp_port);
    } else {
        xmlTextWriterWriteAttribute(w, BAD_CAST "transport", BAD_CAST "unix");
        xmlTextWriterWriteAttribute(w, BAD_CAST "socket", BAD_CAST job->socket);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "disks");
    for (i = 0; i < all->len; i++) {
        const char *target = g_ptr_array_index(all, i);
        bool yes = vmbkStrvContains(targets, target);

        xmlTextWriterStartElement(w, BAD_CAST "disk");
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST target);
        xmlTextWriterWriteAttribute(w, BAD_CAST "backup", BAD_CAST(yes ? "yes" : "no"));
        if (yes)
            xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST "file");
        if (yes && job->remote) {
            /* The scratch file goes beside the disk's image on its host (libvirt creates it and
             * removes it when the job ends; it cannot make up a name itself: 9.0 fails with
             * "argument key 'filename' must not have null value").  The export's name tells a
             * later vmbk which job directory, here, the job belongs to. */
            g_autofree char *base = g_path_get_basename(job->dir);
            g_autofree char *export = g_strdup_printf("vmbk.%s.%s", base, target);
            g_autofree char *scratch = g_strdup_printf("%s.vmbk-%s.scratch",
                                                       (char *) g_hash_table_lookup(sources,
                                                                                    target),
                                                       base);
            xmlTextWriterWriteAttribute(w, BAD_CAST "exportname", BAD_CAST export);
            xmlTextWriterStartElement(w, BAD_CAST "scratch");
            xmlTextWriterWriteAttribute(w, BAD_CAST "file", BAD_CAST scratch);
            xmlTextWriterEndElement(w);
        } else if (yes) {
            g_autofree char *scratch = g_strdup_printf("%s/%s.scratch", job->dir, target);
            xmlTextWriterStartElement(w, BAD_CAST "scratch");
            xmlTextWriterWriteAttribute(w, BAD_CAST "file", BAD_CAST scratch);
            xmlTextWriterEndElement(w);
        }
        xmlTextWriterEndElement(w);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
    return vmbkXmlWriterFinish(w, buf);
}

static char *
vmbkCheckpointXml(const char *name, const char *description, GPtrArray *targets, GPtrArray *all)
{
    xmlBufferPtr buf;
    xmlTextWriterPtr w = vmbkXmlWriterNew(&buf);
    guint i;

    xmlTextWriterStartElement(w, BAD_CAST "domaincheckpoint");
    xmlTextWriterWriteElement(w, BAD_CAST "name", BAD_CAST name);
    xmlTextWriterWriteElement(w, BAD_CAST "description", BAD_CAST description);
    xmlTextWriterStartElement(w, BAD_CAST "disks");
    for (i = 0; i < all->len; i++) {
        const char *target = g_ptr_array_index(all, i);

        xmlTextWriterStartElement(w, BAD_CAST "disk");
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST target);
        xmlTextWriterWriteAttribute(w, BAD_CAST "checkpoint",
                                    BAD_CAST(vmbkStrvContains(targets, target) ? "bitmap" : "no"));
        xmlTextWriterEndElement(w);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
    return vmbkXmlWriterFinish(w, buf);
}

/* What libvirt says it exports: names and bitmaps per disk. */
static int
vmbkBackupJobRead(virDomainPtr dom, const char *name, vmbkBackupJob *job, bool incremental)
{
    g_autofree char *xml = virDomainBackupGetXMLDesc(dom, 0);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) nodes = NULL;
    int i;

    if (!xml) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot read the backup job of domain '%s'", name);
        return -1;
    }
    if (!(doc = vmbkXmlParse(xml, "the backup job's XML")))
        return -1;
    ctx = xmlXPathNewContext(doc);
    if (job->tcp_host && !job->tcp_port &&
        !(job->tcp_port = vmbkXPathString(ctx, NULL, "string(/domainbackup/server/@port)"))) {
        vmbkError(VMBK_ERR_LIBVIRT, "libvirt chose no port for the backup job of domain '%s'; "
                  "give one with --export tcp:ADDR:PORT", name);
        return -1;
    }
    nodes = vmbkXPathNodes(ctx, NULL, "/domainbackup/disks/disk[@backup='yes']");
    for (i = 0; nodes && nodes->nodesetval && i < nodes->nodesetval->nodeNr; i++) {
        xmlNodePtr node = nodes->nodesetval->nodeTab[i];
        vmbkBackupJobDisk *disk = g_new0(vmbkBackupJobDisk, 1);
        g_autofree char *bitmap = NULL;

        g_ptr_array_add(job->disks, disk);
        disk->target = vmbkXPathString(ctx, node, "string(@name)");
        disk->export = vmbkXPathString(ctx, node, "string(@exportname)");
        if (!disk->export)
            disk->export = g_strdup(disk->target);
        if (incremental) {
            bitmap = vmbkXPathString(ctx, node, "string(@exportbitmap)");
            if (!bitmap)
                bitmap = g_strdup_printf("backup-%s", disk->target);
            disk->bitmap = g_strdup_printf("qemu:dirty-bitmap:%s", bitmap);
        }
    }
    return 0;
}

vmbkBackupJob *
vmbkBackupBegin(virDomainPtr dom, const char *name, const char *uuid, GPtrArray *targets,
                GPtrArray *all_targets, const char *incremental, const char *checkpoint,
                const char *description, const char *kind, const char *tcp_host,
                const char *tcp_port)
{
    vmbkNbdExport ex = { .host = (char *) tcp_host, .port = (char *) tcp_port };

    return vmbkBackupBeginExport(dom, name, uuid, targets, all_targets, incremental, checkpoint,
                                 description, kind, tcp_host ? &ex : NULL, false);
}

vmbkBackupJob *
vmbkBackupBeginExport(virDomainPtr dom, const char *name, const char *uuid, GPtrArray *targets,
                      GPtrArray *all_targets, const char *incremental, const char *checkpoint,
                      const char *description, const char *kind, const vmbkNbdExport *ex,
                      bool remote)
{
    g_autoptr(vmbkBackupJob) job = g_new0(vmbkBackupJob, 1);
    g_autofree char *backup_xml = NULL;
    g_autofree char *checkpoint_xml = NULL;
    g_autoptr(GPtrArray) disks = NULL;
    g_autoptr(GHashTable) sources = g_hash_table_new(g_str_hash, g_str_equal);

    job->disks = g_ptr_array_new();
    if (!(job->dir = vmbkJobDirCreate(uuid, kind)))
        return NULL;
    job->remote = remote;
    if (ex && ex->host) {
        job->tcp_host = g_strdup(ex->host);
        job->tcp_port = g_strdup(ex->port);
        job->tls = ex->tls;
    } else {
        job->socket = g_build_filename(job->dir, "nbd.sock", NULL);
    }
    if (remote) {
        g_autofree char *domxml = virDomainGetXMLDesc(dom, 0);
        guint i;

        if (!domxml) {
            vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", name);
            vmbkJobDirRemove(job->dir);
            return NULL;
        }
        if (!(disks = vmbkDomainDisks(domxml, name))) {
            vmbkJobDirRemove(job->dir);
            return NULL;
        }
        for (i = 0; i < disks->len; i++) {
            vmbkDisk *disk = g_ptr_array_index(disks, i);
            if (!vmbkStrvContains(targets, disk->target))
                continue;
            if (!disk->source || !g_str_equal(disk->type, "file")) {
                vmbkError(VMBK_ERR_OPERATION, "disk '%s' of domain '%s' is a %s disk: with "
                          "--remote, vmbk puts the backup's scratch file beside a file disk's "
                          "image (leave it out with --disk)", disk->target, name, disk->type);
                vmbkJobDirRemove(job->dir);
                return NULL;
            }
            g_hash_table_insert(sources, disk->target, disk->source);
        }
    }
    backup_xml = vmbkBackupXml(job, targets, all_targets, incremental, sources);
    if (checkpoint)
        checkpoint_xml = vmbkCheckpointXml(checkpoint, description, targets, all_targets);

    if (virDomainBackupBegin(dom, backup_xml, checkpoint_xml, 0) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot start a backup job of domain '%s'", name);
        vmbkJobDirRemove(job->dir);
        return NULL;
    }
    if (vmbkBackupJobRead(dom, name, job, incremental != NULL) < 0) {
        vmbkBackupEnd(dom, g_steal_pointer(&job));
        return NULL;
    }
    return g_steal_pointer(&job);
}

void
vmbkBackupEnd(virDomainPtr dom, vmbkBackupJob *job)
{
    if (!job)
        return;
    /* A pull-mode job ends by aborting it; a domain that went away has no job left to end.  One
     * that may still run (libvirtd restarted under us) keeps its directory, whose owner is gone
     * once we exit: the next vmbk recognises the job as an interrupted one of ours and ends it. */
    if (virDomainAbortJob(dom) < 0 && virDomainIsActive(dom) != 0) {
        virErrorPtr err = virGetLastError();
        fprintf(stderr, "%s: warning: cannot end the backup job (the next vmbk backup of the "
                "domain will): %s\n", vmbk_progname,
                err && err->message ? err->message : "unknown error");
    } else {
        vmbkJobDirRemove(job->dir);
    }
    vmbkBackupJobFree(job);
}

/* pid of the vmbk that owns a job directory, if it is still alive, else 0. */
int
vmbkJobDirOwner(const char *dir, char **kind)
{
    g_autofree char *owner = g_build_filename(dir, "owner", NULL);
    g_autofree char *text = NULL;
    g_autofree char *comm = NULL;
    g_autofree char *commpath = NULL;
    g_auto(GStrv) lines = NULL;
    int pid = 0;
    size_t i;

    if (!g_file_get_contents(owner, &text, NULL, NULL))
        return 0;
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "pid="))
            pid = atoi(lines[i] + 4);
        else if (g_str_has_prefix(lines[i], "kind=") && kind)
            *kind = g_strdup(lines[i] + 5);
    }
    if (pid <= 0 || pid == getpid() || vmbkProcessGone(pid))
        return 0;
    commpath = g_strdup_printf("/proc/%d/comm", pid);
    if (!g_file_get_contents(commpath, &comm, NULL, NULL) || !g_str_has_prefix(comm, "vmbk"))
        return 0;
    return pid;
}

int
vmbkBackupFindJob(virDomainPtr dom, const char *name, char **dir, char **xml_out)
{
    g_autofree char *xml = NULL;
    g_autofree char *jobs = vmbkJobsDir();
    g_autofree char *scratch = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;

    *dir = NULL;
    if (!(xml = virDomainBackupGetXMLDesc(dom, 0))) {
        virErrorPtr err = virGetLastError();
        if (err && (err->code == VIR_ERR_NO_DOMAIN_BACKUP || err->code == VIR_ERR_OPERATION_INVALID))
            return 0; /* no job: the usual case */
        vmbkError(VMBK_ERR_LIBVIRT, "cannot ask libvirt about backup jobs of domain '%s'", name);
        return -1;
    }
    if (!(doc = vmbkXmlParse(xml, "the backup job's XML")))
        return -1;
    ctx = xmlXPathNewContext(doc);
    /* Our jobs keep their scratch files in a job directory, whatever their transport. */
    scratch = vmbkXPathString(ctx, NULL, "string(/domainbackup/disks/disk/scratch/@file)");
    if (scratch && g_str_has_prefix(scratch, jobs))
        *dir = g_path_get_dirname(scratch);
    /* ... or, for a domain on another host, name it in their exports: vmbk.JOBDIR.TARGET. */
    if (!*dir) {
        g_autofree char *export =
            vmbkXPathString(ctx, NULL, "string(/domainbackup/disks/disk[@backup='yes']"
                                       "/@exportname)");
        const char *dot;

        if (export && g_str_has_prefix(export, "vmbk.") && (dot = strchr(export + 5, '.')) &&
            dot > export + 5) {
            g_autofree char *base = g_strndup(export + 5, dot - export - 5);
            if (!strchr(base, '/') && base[0] != '.')
                *dir = g_build_filename(jobs, base, NULL);
        }
    }
    if (xml_out)
        *xml_out = g_steal_pointer(&xml);
    return 1;
}

int
vmbkBackupCleanStale(virDomainPtr dom, const char *name)
{
    g_autofree char *dir = NULL;
    g_autofree char *kind = NULL;
    int pid, r;

    if ((r = vmbkBackupFindJob(dom, name, &dir, NULL)) <= 0)
        return r;
    if (!dir) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has a backup job that vmbk did not start; "
                  "end it with 'virsh domjobabort %s' if it is no longer wanted", name, name);
        return -1;
    }
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has a backup job of a vmbk on another host "
                  "(its job directory '%s' is not here); end it with 'virsh domjobabort %s' if "
                  "that vmbk is gone", name, dir, name);
        return -1;
    }
    if ((pid = vmbkJobDirOwner(dir, &kind))) {
        if (kind && g_str_equal(kind, "view"))
            vmbkError(VMBK_ERR_OPERATION, "domain '%s' has a snapshot view open (vmbk snapshot "
                      "create); end it with 'vmbk snapshot delete %s'", name, name);
        else
            vmbkError(VMBK_ERR_OPERATION, "domain '%s' is being backed up by vmbk (pid %d); wait "
                      "for it to finish", name, pid);
        return -1;
    }
    if (kind && g_str_equal(kind, "view")) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has a snapshot view open (vmbk snapshot "
                  "create); end it with 'vmbk snapshot delete %s'", name, name);
        return -1;
    }
    fprintf(stderr, "%s: ending the backup job of domain '%s' left by an interrupted vmbk\n",
            vmbk_progname, name);
    if (virDomainAbortJob(dom) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot end the stale backup job of domain '%s'", name);
        return -1;
    }
    vmbkJobDirRemove(dir);
    return 0;
}

void
vmbkJobDirSweep(virDomainPtr dom, const char *uuid)
{
    g_autofree char *jobs = vmbkJobsDir();
    g_autofree char *prefix = g_strdup_printf("%s-", uuid);
    g_autofree char *live = NULL;
    g_autoptr(GDir) d = g_dir_open(jobs, 0, NULL);
    const char *name;

    /* The directory of the job libvirt runs now, if vmbk started it, is not stale. */
    if (vmbkBackupFindJob(dom, uuid, &live, NULL) < 0)
        vmbkErrorReset();
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *dir = NULL;
        g_autofree char *kind = NULL;

        if (!g_str_has_prefix(name, prefix))
            continue;
        dir = g_build_filename(jobs, name, NULL);
        if ((live && g_str_equal(live, dir)) || vmbkJobDirOwner(dir, &kind))
            continue;
        vmbkJobDirRemove(dir);
    }
}
