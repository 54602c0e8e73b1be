/* vmbk: an image served over NBD by qemu-nbd on a unix socket */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef struct _vmbkQemuNbd vmbkQemuNbd;
struct _vmbkQemuNbd {
    char *socket;
    char *pidfile;
    GPid pid;
};

/* Serve image (format: "qcow2" or "raw") on a new socket in dir, read-only or not, for up to
 * 'connections' clients at once.  Returns when the socket accepts connections. */
vmbkQemuNbd *vmbkQemuNbdStart(const char *image, const char *format, bool readonly,
                              unsigned int connections, const char *dir);

/* Stop the server and wait for it (so the image is closed); NULL is fine. */
void vmbkQemuNbdStop(vmbkQemuNbd *srv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkQemuNbd, vmbkQemuNbdStop);

/* "nbd+unix:///?socket=..." for messages and for libnbd. */
char *vmbkQemuNbdUri(const vmbkQemuNbd *srv);
