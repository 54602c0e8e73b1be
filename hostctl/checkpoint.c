/* vmbk: the libvirt checkpoints behind incremental points */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "checkpoint.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

char *
vmbkCheckpointName(const char *repo_id, const char *point_id)
{
    return g_strdup_printf("vmbk.%s.%s", repo_id, point_id);
}

int
vmbkCheckpointValidate(virDomainPtr dom, const char *domain, const char *name,
                       const char *point_id)
{
    g_autoptr(virDomainCheckpoint) cp = NULL;
    g_autofree char *xml = NULL;
    virErrorPtr err;

    if (!(cp = virDomainCheckpointLookupByName(dom, name, 0))) {
        err = virGetLastError();
        if (err && err->code == VIR_ERR_NO_DOMAIN_CHECKPOINT) {
            vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no checkpoint '%s' (the one of point "
                      "%s), so there is no record of what changed since; run a full backup or "
                      "pass -l auto", domain, name, point_id);
        } else {
            vmbkError(VMBK_ERR_LIBVIRT, "cannot look up checkpoint '%s' of domain '%s'", name,
                      domain);
        }
        return -1;
    }
    /* Computing the size makes libvirt (and qemu) walk the checkpoint's bitmaps. */
    if (!(xml = virDomainCheckpointGetXMLDesc(cp, VIR_DOMAIN_CHECKPOINT_XML_SIZE))) {
        vmbkError(VMBK_ERR_LIBVIRT, "the bitmaps of checkpoint '%s' (point %s) of domain '%s' "
                  "are not usable; run a full backup or pass -l auto", name, point_id, domain);
        return -1;
    }
    return 0;
}

static bool
vmbkKeep(GPtrArray *keep, const char *name)
{
    guint i;

    for (i = 0; keep && i < keep->len; i++) {
        if (g_str_equal(g_ptr_array_index(keep, i), name))
            return true;
    }
    return false;
}

int
vmbkCheckpointPrune(virDomainPtr dom, const char *domain, const char *repo_id, GPtrArray *keep)
{
    g_autofree char *prefix = g_strdup_printf("vmbk.%s.", repo_id);
    virDomainCheckpointPtr *cps = NULL;
    int n, i, ret = 0;

    if ((n = virDomainListAllCheckpoints(dom, &cps, 0)) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot list the checkpoints of domain '%s'", domain);
        return -1;
    }
    /* Newest first, so that no deletion has to merge into a checkpoint we delete next. */
    for (i = n - 1; i >= 0; i--) {
        const char *name = virDomainCheckpointGetName(cps[i]);

        if (g_str_has_prefix(name, prefix) && !vmbkKeep(keep, name) &&
            virDomainCheckpointDelete(cps[i], 0) < 0 && ret == 0) {
            vmbkError(VMBK_ERR_LIBVIRT, "cannot delete checkpoint '%s' of domain '%s'", name,
                      domain);
            ret = -1;
        }
    }
    for (i = 0; i < n; i++)
        virDomainCheckpointFree(cps[i]);
    free(cps);
    return ret;
}
