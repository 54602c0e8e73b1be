/* vmbk: external disk-only snapshots as a frozen view, for disks without checkpoints
 *
 * The snapshot carries no libvirt metadata (NO_METADATA): the only trace is the overlay, which
 * lives in a vmbk job directory, so an interrupted run is recognised by a disk whose source is in
 * one, and is undone the same way as a normal end: active commit, pivot, remove the overlay.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <libvirt/virterror.h>

#include "backupjob.h"
#include "domxml.h"
#include "snapshot.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"
#include "xml.h"

#define COMMIT_TIMEOUT_S 3600

static void
vmbkSnapshotViewFree(vmbkSnapshotView *view)
{
    if (!view)
        return;
    g_ptr_array_unref(view->targets);
    g_ptr_array_unref(view->overlays);
    g_free(view);
}

static char *
vmbkSnapshotXml(GPtrArray *disks, GPtrArray *all, vmbkSnapshotView *view, const char *dir)
{
    xmlBufferPtr buf;
    xmlTextWriterPtr w = vmbkXmlWriterNew(&buf);
    guint i, j;

    xmlTextWriterStartElement(w, BAD_CAST "domainsnapshot");
    xmlTextWriterWriteElement(w, BAD_CAST "description", BAD_CAST "vmbk backup view");
    xmlTextWriterStartElement(w, BAD_CAST "disks");
    for (i = 0; i < all->len; i++) {
        const char *target = g_ptr_array_index(all, i);
        bool yes = false;

        for (j = 0; j < disks->len; j++)
            yes |= g_str_equal(((vmbkDisk *) g_ptr_array_index(disks, j))->target, target);
        xmlTextWriterStartElement(w, BAD_CAST "disk");
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST target);
        xmlTextWriterWriteAttribute(w, BAD_CAST "snapshot", BAD_CAST(yes ? "external" : "no"));
        if (yes) {
            char *overlay = g_strdup_printf("%s/%s.overlay.qcow2", dir, target);
            xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST "file");
            xmlTextWriterStartElement(w, BAD_CAST "driver");
            xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST "qcow2");
            xmlTextWriterEndElement(w);
            xmlTextWriterStartElement(w, BAD_CAST "source");
            xmlTextWriterWriteAttribute(w, BAD_CAST "file", BAD_CAST overlay);
            xmlTextWriterEndElement(w);
            g_ptr_array_add(view->targets, g_strdup(target));
            g_ptr_array_add(view->overlays, overlay);
        }
        xmlTextWriterEndElement(w);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndElement(w);
    return vmbkXmlWriterFinish(w, buf);
}

vmbkSnapshotView *
vmbkSnapshotBegin(virDomainPtr dom, const char *name, GPtrArray *disks, GPtrArray *all_targets,
                  const char *dir, bool quiesce)
{
    vmbkSnapshotView *view = g_new0(vmbkSnapshotView, 1);
    g_autofree char *xml = NULL;
    unsigned int flags = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
                         VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
                         VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
    virDomainSnapshotPtr snap = NULL;

    view->targets = g_ptr_array_new_with_free_func(g_free);
    view->overlays = g_ptr_array_new_with_free_func(g_free);
    xml = vmbkSnapshotXml(disks, all_targets, view, dir);

    if (quiesce) {
        snap = virDomainSnapshotCreateXML(dom, xml, flags | VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE);
        if (snap) {
            view->quiesced = true;
        } else {
            virErrorPtr err = virGetLastError();
            fprintf(stderr, "%s: cannot quiesce domain '%s' (%s); the point is "
                    "crash-consistent\n", vmbk_progname, name,
                    err && err->message ? err->message : "no guest agent");
        }
    }
    if (!snap && !(snap = virDomainSnapshotCreateXML(dom, xml, flags))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot take an external snapshot of domain '%s'", name);
        vmbkSnapshotViewFree(view);
        return NULL;
    }
    virDomainSnapshotFree(snap);
    return view;
}

/* Commit the active overlay of one disk into its backing image and pivot back. */
static int
vmbkSnapshotCommitDisk(virDomainPtr dom, const char *name, const char *target)
{
    virDomainBlockJobInfo info;
    gint64 deadline = g_get_monotonic_time() + (gint64) COMMIT_TIMEOUT_S * G_USEC_PER_SEC;
    int r;

    if (virDomainBlockCommit(dom, target, NULL, NULL, 0,
                             VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | VIR_DOMAIN_BLOCK_COMMIT_SHALLOW) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot merge the snapshot overlay of disk '%s' of domain "
                  "'%s' back", target, name);
        return -1;
    }
    /* libvirt reports cur == end only once the job is ready to pivot. */
    for (;;) {
        r = virDomainGetBlockJobInfo(dom, target, &info, 0);
        if (r < 0) {
            vmbkError(VMBK_ERR_LIBVIRT, "cannot follow the merge of disk '%s' of domain '%s'",
                      target, name);
            return -1;
        }
        if (r == 0) {
            vmbkError(VMBK_ERR_OPERATION, "the merge of disk '%s' of domain '%s' ended by "
                      "itself; check the domain's disks with 'virsh domblklist %s'", target,
                      name, name);
            return -1;
        }
        if (info.cur == info.end && virDomainBlockJobAbort(dom, target,
                                            VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0)
            break;
        if (g_get_monotonic_time() > deadline) {
            vmbkError(VMBK_ERR_OPERATION, "the merge of disk '%s' of domain '%s' is not done "
                      "after %d s; 'virsh blockjob %s %s' shows it", target, name,
                      COMMIT_TIMEOUT_S, name, target);
            return -1;
        }
        g_usleep(50 * 1000);
    }
    /* The pivot completes asynchronously: wait until the job is gone. */
    while ((r = virDomainGetBlockJobInfo(dom, target, &info, 0)) > 0 &&
           g_get_monotonic_time() < deadline)
        g_usleep(20 * 1000);
    return 0;
}

int
vmbkSnapshotEnd(virDomainPtr dom, const char *name, vmbkSnapshotView *view)
{
    guint i;
    int ret = 0;

    for (i = 0; i < view->targets->len; i++) {
        if (vmbkSnapshotCommitDisk(dom, name, g_ptr_array_index(view->targets, i)) < 0) {
            ret = -1;
            continue; /* the overlay holds guest data: keep it */
        }
        g_unlink(g_ptr_array_index(view->overlays, i));
    }
    vmbkSnapshotViewFree(view);
    return ret;
}

int
vmbkSnapshotRecover(virDomainPtr dom, const char *name)
{
    g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
    g_autofree char *jobs = vmbkJobsDir();
    g_autoptr(GPtrArray) disks = NULL;
    guint i;

    if (!xml) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", name);
        return -1;
    }
    if (!(disks = vmbkDomainDisks(xml, name)))
        return -1;
    for (i = 0; i < disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(disks, i);
        g_autofree char *dir = NULL;

        if (!disk->source || !g_str_has_prefix(disk->source, jobs))
            continue;
        fprintf(stderr, "%s: disk '%s' of domain '%s' is still on the overlay of an interrupted "
                "backup; merging it back\n", vmbk_progname, disk->target, name);
        if (vmbkSnapshotCommitDisk(dom, name, disk->target) < 0)
            return -1;
        g_unlink(disk->source);
        dir = g_path_get_dirname(disk->source);
        vmbkJobDirRemove(dir);
    }
    return 0;
}
