/* A plugin that misbehaves on request, for tests/test-plugin-faults.sh:
 *
 *   --plugin PATH/vmbk-bad-plugin.so:fail=WHERE      vmbk_error and -1 at WHERE
 *   --plugin PATH/vmbk-bad-plugin.so:crash=WHERE     SIGSEGV at WHERE
 *   --plugin PATH/vmbk-bad-plugin.so:hang=WHERE      sleep at WHERE (for signals)
 *   --plugin PATH/vmbk-bad-plugin.so:silent=WHERE    -1 at WHERE without saying why
 *
 * WHERE is config_complete, open, disk_begin, extent, disk_end or close.  It writes one output
 * (bad.out) first, so a test can tell that failed points leave nothing behind.
 */
#include <config.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmbk-plugin.h>

static const char *fail_at = "", *crash_at = "", *hang_at = "", *silent_at = "";

static int
bad(const char *where)
{
    if (strcmp(crash_at, where) == 0) {
        volatile int *p = NULL;
        *p = 1;
    }
    if (strcmp(hang_at, where) == 0)
        sleep(600);
    if (strcmp(silent_at, where) == 0)
        return -1;
    if (strcmp(fail_at, where) == 0) {
        vmbk_error("failing at %s, as asked", where);
        return -1;
    }
    return 0;
}

static int
bad_config(const char *key, const char *value)
{
    if (strcmp(key, "fail") == 0)
        fail_at = strdup(value);
    else if (strcmp(key, "crash") == 0)
        crash_at = strdup(value);
    else if (strcmp(key, "hang") == 0)
        hang_at = strdup(value);
    else if (strcmp(key, "silent") == 0)
        silent_at = strdup(value);
    else {
        vmbk_error("unknown parameter '%s' (fail, crash, hang or silent)", key);
        return -1;
    }
    return 0;
}

static int
bad_config_complete(void)
{
    return bad("config_complete");
}

static struct vmbk_output *out;

static void *
bad_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    static int handle;

    if (!(out = vmbk_output_open(sink, "bad.out", 0)) || vmbk_output_write(out, "x", 1) < 0)
        return NULL;
    return bad("open") < 0 ? NULL : &handle;
}

static int
bad_close(void *handle)
{
    if (bad("close") < 0)
        return -1;
    return vmbk_output_close(out);
}

static int
bad_disk_begin(void *handle, const struct vmbk_disk *disk)
{
    return bad("disk_begin");
}

static int
bad_extent(void *handle, const struct vmbk_disk *disk, uint64_t offset, uint64_t length, int type)
{
    return bad("extent");
}

static int
bad_disk_end(void *handle, const struct vmbk_disk *disk)
{
    return bad("disk_end");
}

static struct vmbk_plugin plugin = {
    .name = "bad",
    .version = "1",
    .description = "misbehaves on request (tests only)",
    .config = bad_config,
    .config_complete = bad_config_complete,
    .open = bad_open,
    .close = bad_close,
    .disk_begin = bad_disk_begin,
    .extent = bad_extent,
    .disk_end = bad_disk_end,
};

VMBK_REGISTER_PLUGIN(plugin)
