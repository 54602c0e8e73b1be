/* vmbk: the libvirt checkpoints behind incremental points */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

/* vmbk.REPOID.POINT: one repository's checkpoints never collide with another's. */
char *vmbkCheckpointName(const char *repo_id, const char *point_id);

/* Can an incremental be taken since checkpoint 'name'?  It must exist and its bitmaps must be
 * present and usable in the disks' images (libvirt's own rules, checked by asking it for the
 * checkpoint's size).  Reports what is wrong and returns -1 if not. */
int vmbkCheckpointValidate(virDomainPtr dom, const char *domain, const char *name,
                           const char *point_id);

/* Delete this repository's checkpoints of the domain that are not in keep (names). */
int vmbkCheckpointPrune(virDomainPtr dom, const char *domain, const char *repo_id,
                        GPtrArray *keep);
