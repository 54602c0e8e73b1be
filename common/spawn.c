/* vmbk: running helper programs (qemu-img, qemu-nbd) with an argv, never through a shell */
#include <config.h>

#include "spawn.h"
#include "vmbk-error.h"

int
vmbkRun(const char *const *argv, char **out)
{
    g_autofree char *so = NULL;
    g_autofree char *se = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *name = g_path_get_basename(argv[0]);
    int status;

    if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &so, &se, &status,
                      &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot run '%s': %s", argv[0], err->message);
        return -1;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_strstrip(se);
        vmbkError(VMBK_ERR_INTERNAL, "%s failed: %s", name, *se ? se : "no message");
        return -1;
    }
    if (out)
        *out = g_steal_pointer(&so);
    return 0;
}
