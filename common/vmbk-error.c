/* vmbk: one way to report an error */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <guestfs.h>
#include <libnbd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "vmbk-error.h"

const char *vmbk_progname = "vmbk";

/* Copy threads report errors too: the first one wins, the rest are dropped. */
static GMutex error_lock;
static char *error_message;
static vmbkErrorCode error_code;

static void
vmbkErrorSet(vmbkErrorCode code, char *msg)
{
    g_mutex_lock(&error_lock);
    if (!error_message) {
        error_message = msg;
        error_code = code;
        msg = NULL;
    }
    g_mutex_unlock(&error_lock);
    g_free(msg);
}

/* Append the failing library's own words, the way virsh shows them. */
static char *
vmbkErrorDetail(vmbkErrorCode code)
{
    switch (code) {
    case VMBK_ERR_LIBVIRT: {
        virErrorPtr err = virGetLastError();
        if (err && err->message)
            return g_strdup(err->message);
        return NULL;
    }
    case VMBK_ERR_NBD: {
        const char *msg = nbd_get_error();
        return msg ? g_strdup(msg) : NULL;
    }
    case VMBK_ERR_INTERNAL:
    case VMBK_ERR_USAGE:
    case VMBK_ERR_OPERATION:
    case VMBK_ERR_GUESTFS:
    case VMBK_ERR_SYSTEM:
    case VMBK_ERR_LAST:
        break;
    }
    return NULL;
}

void
vmbkError(vmbkErrorCode code, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    g_autofree char *detail = vmbkErrorDetail(code);

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    if (detail)
        vmbkErrorSet(code, g_strdup_printf("%s: %s", msg, detail));
    else
        vmbkErrorSet(code, g_steal_pointer(&msg));
}

void
vmbkErrorSystem(int errnum, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vmbkErrorSet(VMBK_ERR_SYSTEM, g_strdup_printf("%s: %s", msg, g_strerror(errnum)));
}

void
vmbkErrorGuestfs(guestfs_h *g, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    const char *detail = g ? guestfs_last_error(g) : NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (detail)
        vmbkErrorSet(VMBK_ERR_GUESTFS, g_strdup_printf("%s: %s", msg, detail));
    else
        vmbkErrorSet(VMBK_ERR_GUESTFS, g_steal_pointer(&msg));
}

const char *
vmbkErrorMessage(void)
{
    return error_message;
}

vmbkErrorCode
vmbkErrorGetCode(void)
{
    return error_code;
}

void
vmbkErrorReset(void)
{
    g_mutex_lock(&error_lock);
    g_clear_pointer(&error_message, g_free);
    error_code = VMBK_ERR_INTERNAL;
    g_mutex_unlock(&error_lock);
}

static void
vmbkLibvirtErrorFunc(void *opaque G_GNUC_UNUSED, virErrorPtr err G_GNUC_UNUSED)
{
    /* Reported through vmbkError() by the caller. */
}

void
vmbkErrorInitLibvirt(void)
{
    virSetErrorFunc(NULL, vmbkLibvirtErrorFunc);
}

void
vmbkDebug(const char *fmt, ...)
{
    static gint64 start;
    g_autofree char *msg = NULL;
    va_list ap;

    if (!g_getenv("VMBK_DEBUG"))
        return;
    if (!start)
        start = g_get_monotonic_time();
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: [%8.3f] %s\n", vmbk_progname,
            (g_get_monotonic_time() - start) / 1e6, msg);
}
