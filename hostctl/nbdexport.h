/* vmbk: where a backup job serves its NBD export (unix socket or TCP, with or without TLS), and
 * how vmbk connects to it */
#pragma once

#include <stdbool.h>

#include <glib.h>

struct nbd_handle;

typedef struct _vmbkNbdExport vmbkNbdExport;
struct _vmbkNbdExport {
    char *host;    /* TCP address to serve on; NULL: a unix socket in the job directory */
    char *port;
    bool tls;      /* <server tls='yes'/>: libvirt's backup_tls_x509_cert_dir on the server */
    char *tls_dir; /* the client's certificates (ca-cert.pem, client-cert.pem, client-key.pem) */
};

void vmbkNbdExportFree(vmbkNbdExport *ex);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkNbdExport, vmbkNbdExportFree);

/* Is host a loopback address (or "localhost")? */
bool vmbkIsLoopback(const char *host);

/* --export SPEC: "unix" (the default, when spec is NULL), "tcp", "tcp:ADDR" or "tcp:ADDR:PORT"
 * (ADDR 127.0.0.1 and a free port by default; an IPv6 ADDR in brackets).  TLS when tls is set
 * or, for a local domain (local), when libvirt's qemu.conf configures backup TLS.  Plain TCP on
 * an address other than loopback is refused unless insecure.  NULL (reported) on error. */
vmbkNbdExport *vmbkNbdExportParse(const char *spec, bool tls, bool insecure, bool local);

/* The qemu.conf vmbk reads: $VMBK_QEMU_CONF, else /etc/libvirt/qemu.conf. */
const char *vmbkQemuConfPath(void);
/* A setting of qemu.conf ('key = "value"'), or NULL when it is not set (or commented out). */
char *vmbkQemuConfGet(const char *key);

/* The URI of export name on ex: nbd://ADDR:PORT/NAME or nbds://... */
char *vmbkNbdExportUri(const vmbkNbdExport *ex, const char *name);

/* Connect nbd (created, meta contexts added) to export name, on ex (TCP, TLS verified against
 * ex->tls_dir) or, when ex is NULL or serves on a unix socket, at socket.  what: for messages. */
int vmbkNbdExportConnect(struct nbd_handle *nbd, const vmbkNbdExport *ex, const char *socket,
                         const char *name, const char *what);
