/* vmbk: one way to report an error
 *
 * A function that can fail returns -1 or NULL after it has called vmbkError() once, saying what went
 * wrong and, where there is one, what to do about it.  main() prints the first error reported.
 */
#pragma once

#include <glib.h>

typedef enum {
    VMBK_ERR_INTERNAL = 0, /* a failure of vmbk or the system: exit 1 */
    VMBK_ERR_USAGE,        /* the command line is wrong: exit 2 */
    VMBK_ERR_OPERATION,    /* the request cannot be done (no such domain, broken chain): exit 1 */
    VMBK_ERR_LIBVIRT,      /* libvirt failed; its last error is appended */
    VMBK_ERR_GUESTFS,      /* libguestfs failed; the handle's last error is appended */
    VMBK_ERR_NBD,          /* libnbd failed; nbd_get_error() is appended */
    VMBK_ERR_SYSTEM,       /* a system call failed; errno's text is appended */

    VMBK_ERR_LAST
} vmbkErrorCode;

void vmbkError(vmbkErrorCode code, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void vmbkErrorSystem(int errnum, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* VMBK_ERR_GUESTFS with the handle's last error appended. */
struct guestfs_h;
void vmbkErrorGuestfs(struct guestfs_h *g, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* The first error reported since the last reset, or NULL. */
const char *vmbkErrorMessage(void);
vmbkErrorCode vmbkErrorGetCode(void);
void vmbkErrorReset(void);

/* Silence libvirt's own printing; its errors are folded into ours. */
void vmbkErrorInitLibvirt(void);

/* Program name for messages, set once by main(). */
extern const char *vmbk_progname;

/* With VMBK_DEBUG set: a line on stderr, stamped with the seconds since the first call. */
void vmbkDebug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
