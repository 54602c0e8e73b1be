/* A plugin from a future vmbk (API version 99), which this one must refuse by name. */
#include <config.h>

#include <vmbk-plugin.h>

static int
old_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    return 0;
}

static struct vmbk_plugin plugin = {
    .name = "future",
    .version = "1",
    .disk_begin = old_disk_begin,
};

struct vmbk_plugin *vmbk_plugin_init(void);

struct vmbk_plugin *
vmbk_plugin_init(void)
{
    plugin._struct_size = sizeof(plugin);
    plugin._api_version = 99;
    return &plugin;
}
