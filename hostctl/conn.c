/* vmbk: the libvirt connection and domain look-ups */
#include <config.h>

#include <libvirt/virterror.h>

#include "vmbk.h"

virConnectPtr
vmbkConnect(vmbkGlobal *global)
{
    virConnectPtr conn;

    if (!(conn = virConnectOpen(global->uri))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot connect to libvirt at '%s'", global->uri);
        return NULL;
    }
    return conn;
}

virDomainPtr
vmbkLookupDomain(virConnectPtr conn, const char *name)
{
    virDomainPtr dom;
    virErrorPtr err;

    if ((dom = virDomainLookupByName(conn, name)))
        return dom;
    err = virGetLastError();
    if (err && err->code == VIR_ERR_NO_DOMAIN) {
        vmbkError(VMBK_ERR_OPERATION,
                  "domain '%s' not found; 'virsh list --all' lists the defined domains", name);
    } else {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot look up domain '%s'", name);
    }
    return NULL;
}
