/* vmbk: the backup appliance VM: its image (built with supermin), its transient domain, and the
 * disks vmbk hotplugs into it */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

#include "agent.h"
#include "plugin.h"
#include "qemunbd.h"

/* The appliance's domain: $VMBK_APPLIANCE_NAME, else "vmbk-appliance". */
const char *vmbkApplianceName(void);
/* <serial> of the appliance's own root disk; disks vmbk hotplugs are "vmbk-TARGET-XXXXXX". */
#define VMBK_APPLIANCE_ROOT_SERIAL "vmbk-root"

/* Where the appliance is built and run: $VMBK_APPLIANCE_DIR, else $VMBK_STATE_DIR/appliance,
 * else /var/lib/vmbk/appliance. */
char *vmbkApplianceDir(void);

/* Build the appliance unless it is up to date (same recipe, agent and installed packages);
 * *built says whether it was built.  force: build anyway. */
int vmbkApplianceBuild(bool force, bool *built);

/* The running appliance's domain, or NULL when it is not running (not an error). */
virDomainPtr vmbkApplianceLookup(virConnectPtr conn);

/* A session with the appliance: built and started if needed (idle: its idle power-off, in
 * seconds), locked for this vmbk (a second one waits), the agent greeted, and disks that an
 * interrupted vmbk left attached detached. */
typedef struct _vmbkApplianceSession vmbkApplianceSession;
struct _vmbkApplianceSession {
    virDomainPtr dom;
    vmbkAgent *agent;
    int lockfd;
    bool started;        /* by this session */
    double boot_seconds; /* if started: domain start to the agent's answer */
};
vmbkApplianceSession *vmbkApplianceOpen(virConnectPtr conn, bool start, unsigned int idle);
void vmbkApplianceClose(vmbkApplianceSession *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkApplianceSession, vmbkApplianceClose);

/* Detach every disk vmbk hotplugged into the appliance (what an interrupted vmbk left); the
 * number detached, or -1. */
int vmbkApplianceSweep(virDomainPtr dom);

/* Stop the appliance: ask the agent to power off, destroy it if it does not within a few
 * seconds.  Not running is fine. */
int vmbkApplianceStop(virConnectPtr conn);

/* Hotplug an NBD export (unix socket) into the appliance read-only as a virtio-scsi disk with
 * this serial; *xml receives the device XML to detach it with. */
int vmbkApplianceAttach(virDomainPtr dom, const char *socket, const char *serial, char **xml);
/* Detach waits until the disk is gone (VMBK_APPLIANCE_DETACH_TIMEOUT_MS at most). */
#define VMBK_APPLIANCE_DETACH_TIMEOUT_MS 60000
int vmbkApplianceDetach(virDomainPtr dom, const char *xml, const char *serial);
/* The same for an export on a unix socket, or (socket NULL) on TCP at host:port, named export
 * (NULL: the default), with TLS (qemu.conf's nbd_tls_x509_cert_dir on the appliance's host). */
int vmbkApplianceAttachNbd(virDomainPtr dom, const char *socket, const char *host,
                           const char *port, const char *export, bool tls, const char *serial,
                           char **xml);

/* A point's image, exported read-only by qemu-nbd and hotplugged into the appliance. */
typedef struct _vmbkApplianceDisk vmbkApplianceDisk;
struct _vmbkApplianceDisk {
    char *target;
    char *serial; /* "vmbk-TARGET-XXXXXX": how the agent finds it */
    char *xml;    /* the device XML to detach it with */
    vmbkQemuNbd *srv;
};
void vmbkApplianceDiskFree(vmbkApplianceDisk *d);

/* Export each image (qcow2) into jobdir and hotplug it; an array of vmbkApplianceDisk, or NULL
 * (reported) with whatever was attached detached again. */
GPtrArray *vmbkApplianceAttachImages(vmbkApplianceSession *s, const char *jobdir,
                                     GPtrArray *targets, GPtrArray *images);
/* Detach them all (a failure is a warning: the next command's sweep detaches it) and free. */
void vmbkApplianceDetachImages(vmbkApplianceSession *s, GPtrArray *disks);

/* The agent reads the disk and its digest must equal digest.  leaves (an incremental's own
 * TARGET.leaves, or NULL): it reads only what the point changed, and each of those leaves must
 * be the host's. */
int vmbkApplianceCheckDigest(vmbkApplianceSession *s, const vmbkApplianceDisk *d,
                             const char *digest, const char *leaves, volatile int *interrupted);

/* A libnbd handle on the disk's export, with base:allocation and qemu:allocation-depth. */
struct nbd_handle *vmbkApplianceDiskConnect(const vmbkApplianceDisk *d, int64_t *size);

/* appliance-plugin.c: run a plugin in the appliance on the attached disks of the point: block
 * level on each disk, file level on each mountable filesystem of insp (the point's, as
 * vmbkFsWalkInspect gives it; needed for a file-level plugin); its outputs are written into
 * run->dir/NAME on the host, as by vmbkPluginRunPoint, and recorded in *out (set also on
 * failure: free it). */
struct _vmbkInspection;
int vmbkAppliancePluginRun(vmbkApplianceSession *s, GPtrArray *disks,
                           const struct _vmbkInspection *insp, const vmbkPluginSpec *spec,
                           const vmbkPluginRun *run, vmbkPointPlugin **out);

/* appliance-live.c: the guest's backup job serves on TCP (--export tcp): hotplug each of its
 * exports (job->disks) read-only into the appliance; an array of vmbkApplianceDisk (no qemu-nbd
 * of ours: srv is NULL), or NULL (reported) with whatever was attached detached again. */
struct _vmbkBackupJob;
GPtrArray *vmbkApplianceAttachJob(vmbkApplianceSession *s, const struct _vmbkBackupJob *job);
/* The agent's reading of each of those disks must be the point's (its images and TARGET.leaves
 * in dir): all of it, or (incremental) the leaves its image holds, found through a qemu-nbd
 * serving it read-only from jobdir. */
struct _vmbkPoint;
int vmbkApplianceCheckJob(vmbkApplianceSession *s, GPtrArray *disks, struct _vmbkPoint *point,
                          const char *dir, bool incremental, const char *jobdir,
                          volatile int *interrupted);
