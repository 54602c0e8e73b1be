/* vmbk: the appliance reads the guest's backup export itself
 *
 * With --export tcp the guest's backup job serves its point on TCP; the appliance (on this host or
 * on another one that reaches the export, a SAN-attached backup host) attaches each export as a
 * read-only network disk while the host copies the same export into the repository.  Its agent's
 * digest of the live export must then equal the host's of the image it wrote.
 */
#include <config.h>

#include <stdio.h>

#include "appliance.h"
#include "backupjob.h"
#include "repo.h"
#include "vmbk-error.h"

GPtrArray *
vmbkApplianceAttachJob(vmbkApplianceSession *s, const vmbkBackupJob *job)
{
    g_autoptr(GPtrArray) disks =
        g_ptr_array_new_with_free_func((GDestroyNotify) vmbkApplianceDiskFree);
    guint i;

    if (!job->tcp_host) {
        vmbkError(VMBK_ERR_INTERNAL, "the backup job serves on a unix socket, not on TCP");
        return NULL;
    }
    for (i = 0; i < job->disks->len; i++) {
        vmbkBackupJobDisk *jd = g_ptr_array_index(job->disks, i);
        vmbkApplianceDisk *d = g_new0(vmbkApplianceDisk, 1);
        gint64 t0 = g_get_monotonic_time();

        g_ptr_array_add(disks, d);
        d->target = g_strdup(jd->target);
        d->serial = g_strdup_printf("vmbk-%s-%06x", d->target, g_random_int_range(0, 1 << 24));
        if (vmbkApplianceAttachNbd(s->dom, NULL, job->tcp_host, job->tcp_port, jd->export,
                                   job->tls, d->serial, &d->xml) < 0) {
            vmbkApplianceDetachImages(s, g_steal_pointer(&disks));
            return NULL;
        }
        vmbkDebug("appliance: export '%s' on %s:%s%s attached as '%s' in %.3f s", jd->export,
                  job->tcp_host, job->tcp_port, job->tls ? " (TLS)" : "", d->serial,
                  (g_get_monotonic_time() - t0) / 1e6);
    }
    return g_steal_pointer(&disks);
}

int
vmbkApplianceCheckJob(vmbkApplianceSession *s, GPtrArray *disks, vmbkPoint *point,
                      const char *dir, bool incremental, const char *jobdir,
                      volatile int *interrupted)
{
    guint i;

    for (i = 0; i < disks->len; i++) {
        vmbkApplianceDisk *d = g_ptr_array_index(disks, i);
        vmbkPointDisk *pd = vmbkPointFindDisk(point, d->target);
        g_autofree char *leaves = NULL;

        if (!pd) {
            vmbkError(VMBK_ERR_INTERNAL, "the point has no disk '%s'", d->target);
            return -1;
        }
        if (incremental) {
            g_autofree char *image = g_build_filename(dir, pd->image, NULL);

            leaves = g_strdup_printf("%s/%s.leaves", dir, pd->target);
            if (!(d->srv = vmbkQemuNbdStart(image, "qcow2", true, 1, jobdir)))
                return -1;
        }
        if (vmbkApplianceCheckDigest(s, d, pd->digest, leaves, interrupted) < 0)
            return -1;
    }
    return 0;
}
