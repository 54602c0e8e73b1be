/* vmbk: the backup appliance VM: its image (built with supermin), its transient domain, and the
 * disks vmbk hotplugs into it */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

#include "agent.h"

#define VMBK_APPLIANCE_NAME "vmbk-appliance"
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
int vmbkApplianceDetach(virDomainPtr dom, const char *xml);

/* Export each of the point's images (in dir) read-only, hotplug it into the appliance, have the
 * agent compute its digest there and check it equals the host's; always detach.  targets,
 * images and digests run in parallel.  pause: the test hook, called with "appliance" while a disk
 * is attached. */
int vmbkApplianceCheckDigests(vmbkApplianceSession *s, const char *jobdir, GPtrArray *targets,
                              GPtrArray *images, GPtrArray *digests, volatile int *interrupted,
                              int (*pause)(const char *phase));
