/* vmbk-agent: vmbkError() for the code the agent shares with hostctl (common/digest.c), without
 * the libvirt and libguestfs parts of common/vmbk-error.c. */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include "vmbk-error.h"

const char *vmbk_progname = "vmbk-agent";
static char *first;

void
vmbkError(vmbkErrorCode code G_GNUC_UNUSED, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (!first)
        first = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

void
vmbkErrorSystem(int errnum, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (!first)
        first = g_strdup_printf("%s: %s", msg, g_strerror(errnum));
}

const char *
vmbkErrorMessage(void)
{
    return first;
}

void
vmbkErrorReset(void)
{
    g_clear_pointer(&first, g_free);
}

/* On the appliance's console, with VMBK_DEBUG in the agent's environment. */
void
vmbkDebug(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (!g_getenv("VMBK_DEBUG"))
        return;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "vmbk-agent: %s\n", msg);
}
