/* vmbk-agent: running a plugin inside the appliance (the PLUGIN_* conversation of agentproto.h)
 *
 * The agent gathers PLUGIN_RUN (the plugin's shared object, its configuration, the point) and the
 * PLUGIN_DISKs (which hotplugged disk is which, and the extents hostctl worked out from the
 * point's image), and on PLUGIN_GO forks a child that loads the plugin from memory and runs it:
 * the same calls, in the same order, as 'vmbk plugin-run' on the host.  The child reads the disks
 * here, and sends what the plugin writes to hostctl as OUTPUT frames over a socketpair; the
 * agent passes whole frames on to the port and hostctl's answers back.  A plugin that crashes
 * takes only the child down: the agent answers PLUGIN_RUN with an error naming the signal.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>

#include "agent.h"
#include "agent-plugin.h"
#include "vmbk-error.h"

#define DISK_TIMEOUT_S 10
#define RUN_DIR "/run/vmbk-plugin"

/* The run being gathered: one at a time. */
typedef struct {
    char *target, *serial, *parent;
    uint64_t size;
    GByteArray *extents;
} vmbkAgentRunDisk;

static struct {
    uint32_t id;
    char *header;    /* PLUGIN_RUN's */
    GBytes *so;
    GPtrArray *disks; /* of vmbkAgentRunDisk */
    GPtrArray *fss;   /* of vmbkAgentRunFs */
} run;

static void
vmbkAgentRunFsFree(vmbkAgentRunFs *f)
{
    g_free(f->name);
    g_free(f->device);
    g_free(f->type);
    g_free(f->mountpoint);
    g_free(f->serial);
    g_free(f->dir);
    g_free(f->skipped);
    g_free(f);
}

static void
vmbkAgentRunDiskFree(vmbkAgentRunDisk *d)
{
    g_free(d->target);
    g_free(d->serial);
    g_free(d->parent);
    g_byte_array_unref(d->extents);
    g_free(d);
}

static void
vmbkAgentRunReset(void)
{
    run.id = 0;
    g_clear_pointer(&run.header, g_free);
    g_clear_pointer(&run.so, g_bytes_unref);
    g_clear_pointer(&run.disks, g_ptr_array_unref);
    g_clear_pointer(&run.fss, g_ptr_array_unref);
}

static char *
vmbkAgentRunGet(const char *key)
{
    g_autofree char *v = vmbkAgentPayloadGet(run.header, key);

    return vmbkAgentUnescape(v);
}

/* --- the child: what vmbk-plugin.h promises the plugin --------------------------------------- */

struct vmbk_sink {
    int unused;
};

struct vmbk_output {
    uint32_t handle;
    char *name;
};

static int chan = -1;           /* the child's end of the socketpair */
static GByteArray *chan_in;
static uint32_t next_handle = 1;
static struct vmbk_sink the_sink;

static int
vmbkChildWrite(GBytes *frame)
{
    if (vmbkAgentWriteFrame(chan, frame) < 0) {
        vmbkErrorSystem(errno, "cannot write to the agent");
        return -1;
    }
    return 0;
}

static int
vmbkChildSendNow(const char *header, const void *data, size_t len)
{
    g_autoptr(GBytes) frame = vmbkAgentFrameEncodeData(VMBK_AGENT_MSG_OUTPUT, run.id, header,
                                                       data, len);
    return vmbkChildWrite(frame);
}

/* Appends to one output, gathered into frames of up to VMBK_AGENT_DATA_MAX: a file-level plugin
 * writes many small pieces (a tar header, a small file), and each frame is a trip through the
 * agent and the port.  Sent before any other OUTPUT, so hostctl sees the writes in order. */
static struct {
    uint32_t handle;
    GByteArray *data;
} pending;

static int
vmbkChildFlush(void)
{
    g_autofree char *h = NULL;
    int r;

    if (!pending.data || pending.data->len == 0)
        return 0;
    h = g_strdup_printf("op=write\nhandle=%u\n", pending.handle);
    r = vmbkChildSendNow(h, pending.data->data, pending.data->len);
    g_byte_array_set_size(pending.data, 0);
    return r;
}

static int
vmbkChildSend(const char *header, const void *data, size_t len)
{
    if (vmbkChildFlush() < 0)
        return -1;
    return vmbkChildSendNow(header, data, len);
}

/* An OUTPUT that waits for hostctl's answer: its payload, or NULL (reported). */
static char *
vmbkChildCall(const char *header)
{
    g_autofree char *sync = g_strdup_printf("%ssync=1\n", header);

    if (vmbkChildSend(sync, NULL, 0) < 0)
        return NULL;
    for (;;) {
        g_autoptr(vmbkAgentFrame) f = NULL;
        uint8_t buf[4096];
        size_t skipped;
        ssize_t r;

        if (vmbkAgentFrameTake(chan_in, &f, &skipped) == 1) {
            if (f->type == VMBK_AGENT_MSG_ERROR) {
                g_autofree char *msg = vmbkAgentPayloadGet(f->payload->str, "message");
                vmbk_error("%s", msg ? msg : "vmbk refused it");
                return NULL;
            }
            return g_strdup(f->payload->str);
        }
        r = read(chan, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbk_error("the agent went away");
            return NULL;
        }
        g_byte_array_append(chan_in, buf, r);
    }
}

int
vmbk_read(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset)
{
    char *p = buf;

    if (!source) {
        vmbk_error("vmbk_read: no source");
        return -1;
    }
    if (source->file)
        return vmbkAgentWalkRead(source, buf, count, offset);
    if (offset > source->size || count > source->size - offset) {
        vmbk_error("read of %" PRIu32 " bytes at %" PRIu64 " is past the end of %s",
                   count, offset, source->what);
        return -1;
    }
    while (count > 0) {
        ssize_t r = pread(source->fd, p, count, offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read %s at %" PRIu64, source->what,
                            offset);
            return -1;
        }
        p += r;
        offset += r;
        count -= r;
    }
    return 0;
}

int
vmbkAgentChildWarn(const char *message)
{
    g_autofree char *m = vmbkAgentEscape(message);
    g_autofree char *h = g_strdup_printf("op=warn\nmessage=%s\n", m);

    return vmbkChildSend(h, NULL, 0);
}

int
vmbk_output_in_parent(struct vmbk_sink *sink G_GNUC_UNUSED, const char *name)
{
    g_autofree char *n = vmbkAgentEscape(name ? name : "");
    g_autofree char *h = g_strdup_printf("op=in_parent\nname=%s\n", n);
    g_autofree char *r = vmbkChildCall(h);
    g_autofree char *result = r ? vmbkAgentPayloadGet(r, "result") : NULL;

    if (!r)
        return -1;
    return g_strcmp0(result, "1") == 0 ? 1 : 0;
}

struct vmbk_output *
vmbk_output_open(struct vmbk_sink *sink G_GNUC_UNUSED, const char *name, unsigned int flags)
{
    g_autofree char *n = vmbkAgentEscape(name ? name : "");
    uint32_t handle = next_handle++;
    g_autofree char *h = g_strdup_printf("op=open\nhandle=%u\nname=%s\nflags=%u\n", handle, n,
                                         flags);
    g_autofree char *r = vmbkChildCall(h);
    struct vmbk_output *out;

    if (!r)
        return NULL;
    out = g_new0(struct vmbk_output, 1);
    out->handle = handle;
    out->name = g_strdup(name);
    return out;
}

/* write (offset NULL: append, gathered) or pwrite, in frames. */
static int
vmbkChildWriteData(struct vmbk_output *out, const void *buf, size_t count, const uint64_t *offset)
{
    const char *p = buf;
    uint64_t at = offset ? *offset : 0;

    if (!offset) {
        if (pending.data && pending.data->len > 0 && pending.handle != out->handle &&
            vmbkChildFlush() < 0)
            return -1;
        if (!pending.data)
            pending.data = g_byte_array_new();
        pending.handle = out->handle;
        while (count > 0) {
            size_t n = MIN(count, (size_t) VMBK_AGENT_DATA_MAX - pending.data->len);

            g_byte_array_append(pending.data, (const guint8 *) p, n);
            p += n;
            count -= n;
            if (pending.data->len == VMBK_AGENT_DATA_MAX && vmbkChildFlush() < 0)
                return -1;
        }
        return 0;
    }
    do {
        size_t n = MIN(count, (size_t) VMBK_AGENT_DATA_MAX);
        g_autofree char *h = offset ? g_strdup_printf("op=pwrite\nhandle=%u\noffset=%" PRIu64
                                                      "\n", out->handle, at)
                                    : g_strdup_printf("op=write\nhandle=%u\n", out->handle);
        if (vmbkChildSend(h, p, n) < 0)
            return -1;
        p += n;
        at += n;
        count -= n;
    } while (count > 0);
    return 0;
}

int
vmbk_output_write(struct vmbk_output *out, const void *buf, size_t count)
{
    return vmbkChildWriteData(out, buf, count, NULL);
}

int
vmbk_output_pwrite(struct vmbk_output *out, const void *buf, size_t count, uint64_t offset)
{
    return vmbkChildWriteData(out, buf, count, &offset);
}

int
vmbk_output_zero(struct vmbk_output *out, uint64_t offset, uint64_t count)
{
    g_autofree char *h = g_strdup_printf("op=zero\nhandle=%u\noffset=%" PRIu64 "\ncount=%"
                                         PRIu64 "\n", out->handle, offset, count);
    return vmbkChildSend(h, NULL, 0);
}

int
vmbk_output_truncate(struct vmbk_output *out, uint64_t size)
{
    g_autofree char *h = g_strdup_printf("op=truncate\nhandle=%u\nsize=%" PRIu64 "\n",
                                         out->handle, size);
    return vmbkChildSend(h, NULL, 0);
}

int
vmbk_output_convert(struct vmbk_output *raw, const char *name, const char *format,
                    const char *options)
{
    g_autofree char *n = vmbkAgentEscape(name ? name : "");
    g_autofree char *f = vmbkAgentEscape(format ? format : "");
    g_autofree char *o = vmbkAgentEscape(options ? options : "");
    g_autofree char *h = g_strdup_printf("op=convert\nhandle=%u\nname=%s\nformat=%s\n"
                                         "options=%s\n", raw->handle, n, f, o);
    g_autofree char *r = vmbkChildCall(h);

    return r ? 0 : -1;
}

int
vmbk_output_close(struct vmbk_output *out)
{
    g_autofree char *h = NULL;
    g_autofree char *r = NULL;

    if (!out)
        return 0;
    h = g_strdup_printf("op=close\nhandle=%u\n", out->handle);
    r = vmbkChildCall(h);
    g_free(out->name);
    g_free(out);
    return r ? 0 : -1;
}

/* --- the child: the run ----------------------------------------------------------------------- */

static int
vmbkChildDisk(vmbkPluginLoaded *pl, void *handle, vmbkAgentRunDisk *d)
{
    g_autofree char *path = NULL;
    g_autofree char *what = g_strdup_printf("disk '%s'", d->target);
    struct vmbk_source source = { .fd = -1, .what = what };
    struct vmbk_disk disk = { ._struct_size = sizeof(disk), .target = d->target,
                              .parent = d->parent, .source = &source };
    uint64_t size = 0;
    guint i;
    int ret = -1;

    if ((source.fd = vmbkAgentOpenDisk(d->serial, DISK_TIMEOUT_S, 0, &path)) < 0)
        return -1;
    if (ioctl(source.fd, BLKGETSIZE64, &size) < 0) {
        vmbkErrorSystem(errno, "cannot open disk '%s' (%s)", d->target, path);
        goto out;
    }
    if (size != d->size) {
        vmbkError(VMBK_ERR_OPERATION, "disk '%s' is %" PRIu64 " bytes in the appliance, not %"
                  PRIu64, d->target, size, d->size);
        goto out;
    }
    source.size = disk.size = size;
    if (pl->p.disk_begin(handle, &disk) < 0)
        goto out;
    for (i = 0; i + VMBK_AGENT_EXTENT_SIZE <= d->extents->len; i += VMBK_AGENT_EXTENT_SIZE) {
        const uint8_t *e = d->extents->data + i;
        uint64_t off = vmbkAgentGet64(e), len = vmbkAgentGet64(e + 8);

        if (pl->p.extent && pl->p.extent(handle, &disk, off, len, vmbkAgentGet32(e + 16)) < 0) {
            if (!vmbkErrorMessage())
                vmbkError(VMBK_ERR_OPERATION, "extent failed on disk '%s' at %" PRIu64
                          " without saying why", d->target, off);
            goto out;
        }
    }
    if (pl->p.disk_end && pl->p.disk_end(handle, &disk) < 0)
        goto out;
    ret = 0;
 out:
    if (ret < 0 && !vmbkErrorMessage())
        vmbkError(VMBK_ERR_OPERATION, "it failed on disk '%s' without saying why", d->target);
    if (source.fd >= 0)
        close(source.fd);
    return ret;
}

static int
vmbkChildRun(void)
{
    g_autofree char *name = vmbkAgentRunGet("plugin");
    g_autofree char *path = NULL;
    g_autoptr(GPtrArray) config = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(vmbkPluginLoaded) pl = NULL;
    g_autofree char *domain = vmbkAgentRunGet("domain");
    g_autofree char *uuid = vmbkAgentRunGet("uuid");
    g_autofree char *id = vmbkAgentRunGet("id");
    g_autofree char *level = vmbkAgentRunGet("level");
    g_autofree char *time = vmbkAgentRunGet("time");
    g_autofree char *consistency = vmbkAgentRunGet("consistency");
    struct vmbk_point point = { ._struct_size = sizeof(point), .domain = domain, .uuid = uuid,
                                .id = id, .level = level, .time = time,
                                .consistency = consistency };
    const char *p;
    gsize len;
    const void *so = g_bytes_get_data(run.so, &len);
    void *handle = NULL;
    guint i;
    int fd;

    /* The object from memory: nothing of it is left in the appliance afterwards. */
    if ((fd = memfd_create(name ? name : "plugin", 0)) < 0 || write(fd, so, len) != (ssize_t) len) {
        vmbkErrorSystem(errno, "cannot hold plugin '%s' in memory", name);
        return -1;
    }
    path = g_strdup_printf("/proc/self/fd/%d", fd);
    if (!(pl = vmbkPluginLoad(path)))
        return -1;
    for (p = run.header; p && (p = strstr(p, "config=")); p++) {
        if (p == run.header || p[-1] == '\n') {
            g_autofree char *v = g_strndup(p + 7, strcspn(p + 7, "\n"));
            g_ptr_array_add(config, vmbkAgentUnescape(v));
        }
    }
    g_ptr_array_add(config, NULL);
    if (vmbkPluginConfigure(pl, (char **) config->pdata) < 0)
        return -1;
    if (pl->p.open && !(handle = pl->p.open(&the_sink, &point))) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "open failed without saying why");
        return -1;
    }
    for (i = 0; i < run.disks->len; i++) {
        if (pl->p.disk_begin && vmbkChildDisk(pl, handle, g_ptr_array_index(run.disks, i)) < 0)
            goto failed;
    }
    for (i = 0; pl->p.fs_begin && i < run.fss->len; i++) {
        if (vmbkAgentWalk(pl, handle, g_ptr_array_index(run.fss, i), NULL) < 0)
            goto failed;
    }
    if (pl->p.close && pl->p.close(handle) < 0) {
        if (!vmbkErrorMessage())
            vmbkError(VMBK_ERR_OPERATION, "close failed without saying why");
        return -1;
    }
    return 0;
 failed:
    if (handle && pl->p.abort)
        pl->p.abort(handle);
    return -1;
}

/* --- the agent: gathering the run, and the relay while it runs -------------------------------- */

/* Mount the run's filesystems, each on its own directory below RUN_DIR, before the child starts;
 * one that cannot be mounted is skipped (the child says so), as the host's runner does. */
static void
vmbkAgentRunMount(void)
{
    guint i;

    for (i = 0; run.fss && i < run.fss->len; i++) {
        vmbkAgentRunFs *f = g_ptr_array_index(run.fss, i);
        g_autofree char *dir = g_strdup_printf(RUN_DIR "/%u-%u", run.id, i);
        g_autofree char *dev = NULL;
        int fd;

        g_mkdir_with_parents(RUN_DIR, 0700);
        if (!(dev = vmbkAgentPartition(f->serial, f->partition, DISK_TIMEOUT_S))) {
            f->skipped = g_strdup_printf("the %s filesystem '%s' of the new point is not in the "
                                         "appliance: %s", f->type, f->device,
                                         vmbkErrorMessage());
            vmbkErrorReset();
            continue;
        }
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
            (fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
            f->skipped = g_strdup_printf("cannot create '%s': %s", dir, g_strerror(errno));
            continue;
        }
        if (vmbkAgentMountRo(dev, g_strcmp0(f->type, "unknown") == 0 ? "" : f->type, fd) < 0) {
            f->skipped = g_strdup_printf("the %s filesystem '%s' of the new point cannot be "
                                         "mounted in the appliance: mount %s: %s", f->type,
                                         f->device, dev, g_strerror(errno));
            close(fd);
            rmdir(dir);
            continue;
        }
        close(fd);
        fprintf(stderr, "vmbk-agent: mounted %s (%s) for plugin run %u\n", dev, f->type, run.id);
        f->dir = g_steal_pointer(&dir);
    }
}

/* Unmount what vmbkAgentRunMount mounted: the child has ended, whatever it did. */
static void
vmbkAgentRunUnmount(void)
{
    guint i;

    for (i = 0; run.fss && i < run.fss->len; i++) {
        vmbkAgentRunFs *f = g_ptr_array_index(run.fss, i);

        if (!f->dir)
            continue;
        if (umount2(f->dir, UMOUNT_NOFOLLOW) < 0 &&
            umount2(f->dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            fprintf(stderr, "vmbk-agent: cannot unmount '%s': %s\n", f->dir, g_strerror(errno));
        else
            fprintf(stderr, "vmbk-agent: unmounted %s of plugin run %u\n", f->device, run.id);
        rmdir(f->dir);
        g_clear_pointer(&f->dir, g_free);
    }
}

/* Pass a frame on: to fd, or (-1) to the port. */
static int
vmbkAgentRelayWrite(int fd, const vmbkAgentFrame *f)
{
    g_autoptr(GBytes) frame = vmbkAgentFrameEncode(f->type, f->id, f->payload->str,
                                                   f->payload->len);

    return fd < 0 ? vmbkAgentSendFrame(frame) : vmbkAgentWriteFrame(fd, frame);
}

static int
vmbkAgentPluginGo(int port, GByteArray *in)
{
    g_autofree char *name = vmbkAgentRunGet("plugin");
    g_autoptr(GByteArray) cin = g_byte_array_new();
    g_autoptr(vmbkAgentFrame) final = NULL;
    int sv[2], status = 0;
    bool host = true;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return vmbkAgentError(run.id, "cannot run plugin '%s': %s", name, g_strerror(errno));
    fflush(stderr);
    if ((pid = fork()) < 0) {
        close(sv[0]);
        close(sv[1]);
        return vmbkAgentError(run.id, "cannot run plugin '%s': %s", name, g_strerror(errno));
    }
    if (pid == 0) {
        g_autofree char *msg = NULL;
        int r;

        close(sv[0]);
        close(port);
        chan = sv[1];
        chan_in = g_byte_array_new();
        signal(SIGPIPE, SIG_IGN);
        vmbkErrorReset();
        r = vmbkChildRun();
        if (vmbkChildFlush() < 0)
            r = -1;
        if (r == 0) {
            g_autoptr(GBytes) f = vmbkAgentFrameEncode(VMBK_AGENT_MSG_PLUGIN_RUN |
                                                       VMBK_AGENT_RESPONSE, run.id, "", 0);
            vmbkChildWrite(f);
        } else {
            g_autoptr(GBytes) f = NULL;
            g_autofree char *why = g_strdup(vmbkErrorMessage() ? vmbkErrorMessage()
                                                                : "it failed");
            msg = g_strdup_printf("message=%s\n", g_strdelimit(why, "\n", ' '));
            f = vmbkAgentFrameEncode(VMBK_AGENT_MSG_ERROR, run.id, msg, strlen(msg));
            vmbkChildWrite(f);
        }
        _exit(r == 0 ? 0 : 1);
    }
    close(sv[1]);

    /* Pass whole frames both ways until the child is done. */
    while (sv[0] >= 0) {
        g_autoptr(vmbkAgentFrame) f = NULL;
        struct pollfd pfd[2] = { { .fd = host ? port : -1, .events = POLLIN },
                                 { .fd = sv[0], .events = POLLIN } };
        uint8_t buf[65536];
        size_t skipped;
        ssize_t r;

        if (vmbkAgentFrameTake(in, &f, &skipped) == 1) {
            if (f->id == run.id && f->type == VMBK_AGENT_MSG_CANCEL) {
                fprintf(stderr, "vmbk-agent: plugin '%s' cancelled\n", name);
                kill(pid, SIGKILL);
            } else if (f->id == run.id) {
                vmbkAgentRelayWrite(sv[0], f);
            } else {
                vmbkAgentError(f->id, "busy running plugin '%s'", name);
            }
            continue;
        }
        if (cin->len && vmbkAgentFrameTake(cin, &f, &skipped) == 1) {
            if (f->type == VMBK_AGENT_MSG_OUTPUT)
                vmbkAgentRelayWrite(-1, f);
            else
                final = g_steal_pointer(&f);
            continue;
        }
        if (poll(pfd, 2, 100) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            if ((r = read(port, buf, sizeof(buf))) > 0) {
                g_byte_array_append(in, buf, r);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                /* vmbk went away: nobody wants the outputs. */
                fprintf(stderr, "vmbk-agent: the host left; stopping plugin '%s'\n", name);
                kill(pid, SIGKILL);
                host = false;
            }
        } else if (pfd[0].revents & POLLHUP) {
            fprintf(stderr, "vmbk-agent: the host left; stopping plugin '%s'\n", name);
            kill(pid, SIGKILL);
            host = false;
        }
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if ((r = read(sv[0], buf, sizeof(buf))) > 0) {
                g_byte_array_append(cin, buf, r);
            } else if (r == 0 || errno != EINTR) {
                close(sv[0]);
                sv[0] = -1;
            }
        }
    }
    /* What the child said last, after it ended. */
    while (vmbkAgentFrameTake(cin, &final, &(size_t) { 0 }) == 1 && final->type ==
           VMBK_AGENT_MSG_OUTPUT) {
        vmbkAgentRelayWrite(-1, final);
        g_clear_pointer(&final, vmbkAgentFrameFree);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* Nothing of the run stays mounted once vmbk hears how it ended. */
    vmbkAgentRunUnmount();
    if (WIFSIGNALED(status))
        return vmbkAgentError(run.id, "plugin '%s' crashed (%s) in the appliance", name,
                              g_strsignal(WTERMSIG(status)));
    if (final)
        return vmbkAgentRelayWrite(-1, final);
    return vmbkAgentError(run.id, "plugin '%s' ended (status %d) without a result", name,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int
vmbkAgentPluginServe(int port, const vmbkAgentFrame *req, GByteArray *in)
{
    g_autofree char *header = NULL;
    const uint8_t *data;
    size_t len;
    int ret;

    header = vmbkAgentPayloadSplit(req->payload, &data, &len);
    switch (req->type) {
    case VMBK_AGENT_MSG_PLUGIN_RUN:
        vmbkAgentRunReset();
        run.id = req->id;
        run.header = g_steal_pointer(&header);
        run.so = g_bytes_new(data, len);
        run.disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkAgentRunDiskFree);
        run.fss = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkAgentRunFsFree);
        return 0;
    case VMBK_AGENT_MSG_PLUGIN_FS: {
        vmbkAgentRunFs *f;
        g_autofree char *part = vmbkAgentPayloadGet(header, "partition");
        g_autofree char *serial = vmbkAgentPayloadGet(header, "serial");

        if (req->id != run.id || !run.fss || !serial)
            return vmbkAgentError(req->id, "PLUGIN_FS without its PLUGIN_RUN");
        f = g_new0(vmbkAgentRunFs, 1);
        f->serial = g_steal_pointer(&serial);
        f->partition = part ? g_ascii_strtoull(part, NULL, 10) : 0;
#define FS_GET(field, key) { g_autofree char *v = vmbkAgentPayloadGet(header, key); \
                             f->field = vmbkAgentUnescape(v ? v : ""); }
        FS_GET(name, "name");
        FS_GET(device, "device");
        FS_GET(type, "type");
        FS_GET(mountpoint, "mountpoint");
#undef FS_GET
        g_ptr_array_add(run.fss, f);
        return 0;
    }
    case VMBK_AGENT_MSG_PLUGIN_DISK: {
        g_autofree char *target = vmbkAgentPayloadGet(header, "target");
        g_autofree char *size = vmbkAgentPayloadGet(header, "size");
        vmbkAgentRunDisk *d = NULL;

        if (req->id != run.id || !run.disks || !target)
            return vmbkAgentError(req->id, "PLUGIN_DISK without its PLUGIN_RUN");
        /* A disk's extents may come in several frames. */
        if (run.disks->len > 0) {
            d = g_ptr_array_index(run.disks, run.disks->len - 1);
            if (!g_str_equal(d->target, target))
                d = NULL;
        }
        if (!d) {
            d = g_new0(vmbkAgentRunDisk, 1);
            d->target = g_steal_pointer(&target);
            d->serial = vmbkAgentPayloadGet(header, "serial");
            d->parent = vmbkAgentPayloadGet(header, "parent");
            d->size = size ? g_ascii_strtoull(size, NULL, 10) : 0;
            d->extents = g_byte_array_new();
            g_ptr_array_add(run.disks, d);
        }
        g_byte_array_append(d->extents, data, len);
        return 0;
    }
    case VMBK_AGENT_MSG_PLUGIN_GO:
        if (req->id != run.id || !run.so)
            return vmbkAgentError(req->id, "PLUGIN_GO without its PLUGIN_RUN");
        vmbkAgentRunMount();
        ret = vmbkAgentPluginGo(port, in);
        vmbkAgentRunUnmount();
        vmbkAgentRunReset();
        return ret;
    case VMBK_AGENT_MSG_CANCEL:
        /* Nothing runs: forget what was gathered. */
        if (req->id == run.id)
            vmbkAgentRunReset();
        return 0;
    default:
        return vmbkAgentError(req->id, "not a plugin request: %s", vmbkAgentMsgName(req->type));
    }
}
