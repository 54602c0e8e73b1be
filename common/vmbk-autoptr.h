/* vmbk: GLib autoptr cleanups for the foreign types vmbk uses, declared once */
#pragma once

#include <unistd.h>

#include <glib.h>
#include <guestfs.h>
#include <libnbd.h>
#include <libvirt/libvirt.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(virConnect, virConnectClose);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virDomain, virDomainFree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virDomainCheckpoint, virDomainCheckpointFree);

typedef guestfs_h vmbkGuestfs;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkGuestfs, guestfs_close);

typedef struct nbd_handle vmbkNbd;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkNbd, nbd_close);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathContext, xmlXPathFreeContext);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathObject, xmlXPathFreeObject);

/* GLib 2.74 has no g_autofd. */
static inline void
vmbk_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
#define vmbk_autoclose __attribute__((cleanup(vmbk_close_fd)))
