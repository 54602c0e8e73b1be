/* A plugin built against an older vmbk-plugin.h, whose struct ended before the file-level
 * callbacks: the loader must honour its _struct_size and see it as block level only, whatever
 * lies in memory past it. */
#include <config.h>

#include <signal.h>
#include <stddef.h>

#include <vmbk-plugin.h>

static int
short_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    return 0;
}

static int
short_fs_begin(void *handle, const struct vmbk_fs *fs)
{
    raise(SIGSEGV); /* never called: it is past the plugin's struct */
    return -1;
}

static struct vmbk_plugin plugin = {
    .name = "short",
    .version = "1",
    .disk_begin = short_disk_begin,
    .fs_begin = short_fs_begin,
};

struct vmbk_plugin *vmbk_plugin_init(void);

struct vmbk_plugin *
vmbk_plugin_init(void)
{
    plugin._struct_size = offsetof(struct vmbk_plugin, fs_begin);
    plugin._api_version = VMBK_API_VERSION;
    return &plugin;
}
