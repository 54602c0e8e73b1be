/* A file-level plugin that misbehaves on request, for tests/test-plugin-appliance-files.sh:
 *
 *   --plugin PATH/vmbk-badfiles-plugin.so:fail=WHERE      vmbk_error and -1 at WHERE
 *   --plugin PATH/vmbk-badfiles-plugin.so:crash=WHERE     SIGSEGV at WHERE
 *   --plugin PATH/vmbk-badfiles-plugin.so:hang=WHERE      sleep at WHERE (for signals)
 *   --plugin PATH/vmbk-badfiles-plugin.so:silent=WHERE    -1 at WHERE without saying why
 *
 * WHERE is fs_begin, entry (the first regular file with data, once read), fs_end or close.
 * Otherwise it reads every regular file with vmbk_read, in pieces, and writes one line per entry
 * to files.out: the fields of struct vmbk_entry and an FNV-1a hash of the data, so that two
 * runners can be compared field by field.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmbk-plugin.h>

static const char *fail_at = "", *crash_at = "", *hang_at = "", *silent_at = "";
static struct vmbk_output *out;
static int fired;

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
badfiles_config(const char *key, const char *value)
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

static void *
badfiles_open(struct vmbk_sink *sink, const struct vmbk_point *point)
{
    static int handle;

    if (!(out = vmbk_output_open(sink, "files.out", 0)))
        return NULL;
    return &handle;
}

static int
badfiles_close(void *handle)
{
    if (bad("close") < 0)
        return -1;
    return vmbk_output_close(out);
}

static int
badfiles_fs_begin(void *handle, const struct vmbk_fs *fs)
{
    char line[4096];

    snprintf(line, sizeof(line), "fs %s %s %s %s\n", fs->name, fs->device, fs->type,
             fs->mountpoint ? fs->mountpoint : "-");
    if (vmbk_output_write(out, line, strlen(line)) < 0)
        return -1;
    return bad("fs_begin");
}

static int
badfiles_entry(void *handle, const struct vmbk_fs *fs, const struct vmbk_entry *e)
{
    static char buf[65536];
    char line[8192];
    uint64_t hash = 14695981039346656037ULL, at = 0;
    size_t i, j;
    int n;

    /* Odd-sized pieces, in order. */
    while (e->source && at < e->size) {
        uint32_t count = e->size - at < 40000 ? (uint32_t) (e->size - at) : 40000;
        if (vmbk_read(e->source, buf, count, at) < 0)
            return -1;
        for (j = 0; j < count; j++)
            hash = (hash ^ (unsigned char) buf[j]) * 1099511628211ULL;
        at += count;
    }
    n = snprintf(line, sizeof(line), "%o %" PRIu64 ":%" PRIu64 " %s:%s %" PRIu64 " m%" PRId64
                 ".%09" PRId64 " a%" PRId64 ".%09" PRId64 " c%" PRId64 ".%09" PRId64 " %" PRIu64
                 ",%" PRIu64 " %d %016" PRIx64 " acl=%s/%s", (unsigned int) e->mode, e->uid,
                 e->gid, e->uname ? e->uname : "-", e->gname ? e->gname : "-", e->size, e->mtime,
                 e->mtime_nsec, e->atime, e->atime_nsec, e->ctime, e->ctime_nsec, e->rdev_major,
                 e->rdev_minor, e->hardlink, hash, e->acl_access ? e->acl_access : "-",
                 e->acl_default ? e->acl_default : "-");
    for (i = 0; i < e->nr_xattrs && n > 0 && (size_t) n < sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - n, " x:%s=%zu", e->xattrs[i].name,
                      e->xattrs[i].len);
    if (n < 0 || (size_t) n >= sizeof(line))
        n = sizeof(line) - 1;
    /* The path and the link last, with their lengths: any byte may be in them. */
    if (vmbk_output_write(out, line, n) < 0 ||
        vmbk_output_write(out, " path=", 6) < 0 ||
        vmbk_output_write(out, e->path, strlen(e->path)) < 0 ||
        vmbk_output_write(out, " link=", 6) < 0 ||
        (e->link && vmbk_output_write(out, e->link, strlen(e->link)) < 0) ||
        vmbk_output_write(out, "\n", 1) < 0)
        return -1;
    if (e->source && e->size > 0 && !fired) {
        fired = 1;
        return bad("entry");
    }
    return 0;
}

static int
badfiles_fs_end(void *handle, const struct vmbk_fs *fs)
{
    return bad("fs_end");
}

static struct vmbk_plugin plugin = {
    .name = "badfiles",
    .version = "1",
    .description = "lists every entry, misbehaves on request (tests only)",
    .config = badfiles_config,
    .open = badfiles_open,
    .close = badfiles_close,
    .fs_begin = badfiles_fs_begin,
    .entry = badfiles_entry,
    .fs_end = badfiles_fs_end,
};

VMBK_REGISTER_PLUGIN(plugin)
