/* vmbk-agent: the agent inside the backup appliance
 *
 * Serves hostctl's requests (common/agentproto.h) on the appliance's virtio-serial port, one at a
 * time: HELLO, PING, LIST_DISKS, DIGEST of a hotplugged disk found by its <serial>, SHUTDOWN;
 * plugin runs (agent-plugin.c) and file reads (agent-files.c).  It
 * exits after --idle seconds without a request; /init then powers the appliance off.
 *
 * The port reads 0 bytes while no host end is connected (each vmbk command connects anew), and
 * poll() says POLLHUP then: wait a little and read again.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/fs.h>

#include <glib.h>

#include "agent.h"
#include "digest.h"
#include "vmbk-error.h"

#define READ_CHUNK (4 * 1024 * 1024) /* 64 leaves per read */

static int port_fd = -1;
static gint64 start_time;

int
vmbkAgentSend(uint16_t type, uint32_t id, const char *payload)
{
    g_autoptr(GBytes) frame = vmbkAgentFrameEncode(type, id, payload, strlen(payload));

    return vmbkAgentSendFrame(frame);
}

int
vmbkAgentSendFrame(GBytes *frame)
{
    if (vmbkAgentWriteFrame(port_fd, frame) < 0) {
        fprintf(stderr, "vmbk-agent: cannot write to the port: %s\n", g_strerror(errno));
        return -1;
    }
    return 0;
}

int
vmbkAgentWriteFrame(int fd, GBytes *frame)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(frame, &len);

    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        len -= r;
    }
    return 0;
}

int
vmbkAgentError(uint32_t id, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    g_autofree char *payload = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_strdelimit(msg, "\n", ' ');
    fprintf(stderr, "vmbk-agent: %s\n", msg);
    payload = g_strdup_printf("message=%s\n", msg);
    return vmbkAgentSend(VMBK_AGENT_MSG_ERROR, id, payload);
}

static double
vmbkAgentUptime(void)
{
    return (g_get_monotonic_time() - start_time) / 1e6;
}

/* The serial of a SCSI disk: the unit serial number VPD page (0x80) that qemu fills from
 * <serial>: 4 bytes of header, then the serial. */
static char *
vmbkAgentDiskSerial(const char *dev)
{
    g_autofree char *path = g_strdup_printf("/sys/block/%s/device/vpd_pg80", dev);
    g_autofree char *data = NULL;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, NULL) || len <= 4)
        return NULL;
    return g_strstrip(g_strndup(data + 4, len - 4));
}

static uint64_t
vmbkAgentDiskSize(const char *dev)
{
    g_autofree char *path = g_strdup_printf("/sys/block/%s/size", dev);
    g_autofree char *data = NULL;

    if (!g_file_get_contents(path, &data, NULL, NULL))
        return 0;
    return g_ascii_strtoull(data, NULL, 10) * 512;
}

char *
vmbkAgentFindDisk(const char *serial)
{
    g_autoptr(GDir) d = g_dir_open("/sys/block", 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *s = vmbkAgentDiskSerial(name);
        if (s && g_str_equal(s, serial))
            return g_strdup(name);
    }
    return NULL;
}

int
vmbkAgentOpenDisk(const char *serial, unsigned int timeout_s, int flags, char **path)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_s * G_USEC_PER_SEC;

    vmbkErrorReset();
    for (;;) {
        g_autofree char *dev = vmbkAgentFindDisk(serial);
        int fd, e = ENOENT;

        /* A hotplugged disk shows in sysfs before its device can be opened. */
        if (dev) {
            g_autofree char *p = g_strdup_printf("/dev/%s", dev);
            if ((fd = open(p, O_RDONLY | O_CLOEXEC | flags)) >= 0) {
                *path = g_steal_pointer(&p);
                return fd;
            }
            e = errno;
            if (e != ENOENT && e != ENXIO) {
                vmbkErrorSystem(e, "cannot open '%s' (serial '%s')", p, serial);
                return -1;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            if (dev)
                vmbkErrorSystem(e, "cannot open '/dev/%s' (serial '%s')", dev, serial);
            else
                vmbkError(VMBK_ERR_OPERATION, "no disk with serial '%s' appeared", serial);
            return -1;
        }
        g_usleep(20 * 1000);
    }
}

static int
vmbkAgentListDisks(uint32_t id)
{
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GDir) d = g_dir_open("/sys/block", 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *s = vmbkAgentDiskSerial(name);
        if (s)
            g_string_append_printf(out, "disk=%s %" PRIu64 " %s\n", s, vmbkAgentDiskSize(name),
                                   name);
    }
    return vmbkAgentSend(VMBK_AGENT_MSG_LIST_DISKS | VMBK_AGENT_RESPONSE, id, out->str);
}

/* Read the leaves [first, first + n) of the disk into the digest (O_DIRECT: buf page-aligned). */
static int
vmbkAgentHashRange(int fd, const char *path, vmbkDigest *digest, uint64_t first, uint64_t n,
                   uint8_t *buf, bool *zero)
{
    uint64_t leaf, end = first + n;

    for (leaf = first; leaf < end;) {
        uint64_t m = MIN(end - leaf, (uint64_t) READ_CHUNK / VMBK_DIGEST_LEAF_SIZE);
        uint64_t off = leaf * VMBK_DIGEST_LEAF_SIZE;
        size_t want = MIN(m * VMBK_DIGEST_LEAF_SIZE, digest->size - off), got = 0;

        while (got < want) {
            ssize_t r = pread(fd, buf + got, want - got, off + got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                vmbkErrorSystem(r < 0 ? errno : EIO, "cannot read '%s' at %" PRIu64, path,
                                off + got);
                return -1;
            }
            got += r;
        }
        if (vmbkDigestHashLeaves(digest, leaf, m, buf, zero) < 0)
            return -1;
        leaf += m;
    }
    return 0;
}

/* The sha256-tree-64k digest of a hotplugged disk, read through the page cache-free device: of
 * the whole disk (root=), or, when the request's bytes are leaf ranges (u64 first, u64 count,
 * little-endian), the hashes of those leaves only, in order, as the response's bytes: what an
 * incremental point changed, which vmbk compares with its own. */
static int
vmbkAgentDigest(uint32_t id, const vmbkAgentFrame *req)
{
    const uint8_t *ranges;
    size_t rlen, i;
    g_autofree char *header = vmbkAgentPayloadSplit(req->payload, &ranges, &rlen);
    g_autofree char *serial = vmbkAgentPayloadGet(header, "serial");
    g_autofree char *timeout = vmbkAgentPayloadGet(header, "timeout");
    g_autofree char *path = NULL;
    g_autofree uint8_t *buf = NULL;
    g_autofree bool *zero = NULL;
    g_autofree char *out = NULL;
    g_autoptr(vmbkDigest) digest = NULL;
    g_autoptr(GByteArray) hashes = g_byte_array_new();
    gint64 t0 = g_get_monotonic_time();
    uint64_t size = 0, leaves = 0;
    int fd, r = 0;

    if (!serial)
        return vmbkAgentError(id, "DIGEST without a serial");
    if (rlen % 16)
        return vmbkAgentError(id, "DIGEST: leaf ranges of %zu bytes", rlen);
    for (i = 0; i < rlen; i += 16)
        leaves += vmbkAgentGet64(ranges + i + 8);
    if (leaves > VMBK_AGENT_DIGEST_LEAVES)
        return vmbkAgentError(id, "DIGEST: %" PRIu64 " leaves asked for, at most %d at once",
                              leaves, VMBK_AGENT_DIGEST_LEAVES);
    leaves = 0;
    if ((fd = vmbkAgentOpenDisk(serial, timeout ? g_ascii_strtoull(timeout, NULL, 10) : 30,
                                O_DIRECT, &path)) < 0)
        return vmbkAgentError(id, "%s", vmbkErrorMessage());
    if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
        close(fd);
        return vmbkAgentError(id, "cannot get the size of '%s': %s", path, g_strerror(errno));
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!(digest = vmbkDigestCreate("/tmp/digest.leaves", NULL, size))) {
        close(fd);
        return vmbkAgentError(id, "%s", vmbkErrorMessage());
    }
    unlink("/tmp/digest.leaves");
    if (posix_memalign((void **) &buf, 4096, READ_CHUNK) != 0)
        g_error("out of memory");
    zero = g_new0(bool, READ_CHUNK / VMBK_DIGEST_LEAF_SIZE);
    if (rlen == 0)
        r = vmbkAgentHashRange(fd, path, digest, 0, digest->nleaves, buf, zero);
    for (i = 0; r == 0 && i < rlen; i += 16) {
        uint64_t first = vmbkAgentGet64(ranges + i), n = vmbkAgentGet64(ranges + i + 8);

        if (first > digest->nleaves || n > digest->nleaves - first) {
            vmbkError(VMBK_ERR_OPERATION, "leaves %" PRIu64 "+%" PRIu64 " are past the end of "
                      "'%s'", first, n, path);
            r = -1;
            break;
        }
        g_byte_array_set_size(hashes, hashes->len + n * VMBK_DIGEST_HASH_SIZE);
        r = vmbkAgentHashRange(fd, path, digest, first, n, buf, zero);
        if (r == 0)
            r = vmbkDigestRead(digest, first, n, hashes->data + hashes->len -
                               n * VMBK_DIGEST_HASH_SIZE);
        leaves += n;
    }
    close(fd);
    if (r < 0)
        return vmbkAgentError(id, "%s", vmbkErrorMessage());
    if (rlen) {
        g_autoptr(GBytes) frame = NULL;
        out = g_strdup_printf("serial=%s\ndevice=%s\nsize=%" PRIu64 "\nalgorithm=%s\n"
                              "leaves=%" PRIu64 "\nseconds=%.3f\n", serial, path, size,
                              VMBK_DIGEST_ALGORITHM, leaves,
                              (g_get_monotonic_time() - t0) / 1e6);
        frame = vmbkAgentFrameEncodeData(VMBK_AGENT_MSG_DIGEST | VMBK_AGENT_RESPONSE, id, out,
                                         hashes->data, hashes->len);
        return vmbkAgentSendFrame(frame);
    }
    {
        g_autofree char *root = vmbkDigestRoot(digest);
        if (!root)
            return vmbkAgentError(id, "%s", vmbkErrorMessage());
        out = g_strdup_printf("serial=%s\ndevice=%s\nsize=%" PRIu64 "\nalgorithm=%s\nroot=%s\n"
                              "seconds=%.3f\n", serial, path, size, VMBK_DIGEST_ALGORITHM, root,
                              (g_get_monotonic_time() - t0) / 1e6);
    }
    return vmbkAgentSend(VMBK_AGENT_MSG_DIGEST | VMBK_AGENT_RESPONSE, id, out);
}

/* Serve one request; 1 when it asked the agent to exit. */
static int
vmbkAgentServe(vmbkAgentFrame *req, GByteArray *in)
{
    g_autofree char *out = NULL;
    struct utsname u;

    switch (req->type) {
    case VMBK_AGENT_MSG_HELLO:
        vmbkAgentFilesReap(); /* a new vmbk: a tree on a disk that went away goes too */
        uname(&u);
        out = g_strdup_printf("version=%d\nagent=%s\nuptime=%.3f\nkernel=%s\n",
                              VMBK_AGENT_PROTO_VERSION, PACKAGE_VERSION, vmbkAgentUptime(),
                              u.release);
        vmbkAgentSend(req->type | VMBK_AGENT_RESPONSE, req->id, out);
        return 0;
    case VMBK_AGENT_MSG_PING:
        out = g_strdup_printf("uptime=%.3f\n", vmbkAgentUptime());
        vmbkAgentSend(req->type | VMBK_AGENT_RESPONSE, req->id, out);
        return 0;
    case VMBK_AGENT_MSG_LIST_DISKS:
        vmbkAgentListDisks(req->id);
        return 0;
    case VMBK_AGENT_MSG_DIGEST:
        vmbkAgentDigest(req->id, req);
        return 0;
    case VMBK_AGENT_MSG_PLUGIN_RUN:
    case VMBK_AGENT_MSG_PLUGIN_DISK:
    case VMBK_AGENT_MSG_PLUGIN_GO:
    case VMBK_AGENT_MSG_CANCEL:
    case VMBK_AGENT_MSG_PLUGIN_FS:
        vmbkAgentPluginServe(port_fd, req, in);
        return 0;
    case VMBK_AGENT_MSG_FILES_MOUNT:
    case VMBK_AGENT_MSG_FILES_LS:
    case VMBK_AGENT_MSG_FILES_READ:
    case VMBK_AGENT_MSG_FILES_UMOUNT:
        vmbkAgentFilesServe(port_fd, req, in);
        return 0;
    case VMBK_AGENT_MSG_SHUTDOWN:
        vmbkAgentSend(req->type | VMBK_AGENT_RESPONSE, req->id, "");
        return 1;
    default:
        vmbkAgentError(req->id, "unknown request type %u", (unsigned int) req->type);
        return 0;
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "idle", required_argument, NULL, 'i' },
        { NULL, 0, NULL, 0 },
    };
    const char *port = "/dev/virtio-ports/" VMBK_AGENT_PORT;
    g_autoptr(GByteArray) in = g_byte_array_new();
    unsigned int idle = 600;
    gint64 last;
    uint8_t chunk[65536];
    int c;

    vmbk_progname = "vmbk-agent";
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'p')
            port = optarg;
        else if (c == 'i')
            idle = atoi(optarg);
        else
            return 2;
    }
    start_time = last = g_get_monotonic_time();
    if ((port_fd = open(port, O_RDWR | O_CLOEXEC)) < 0) {
        fprintf(stderr, "vmbk-agent: cannot open '%s': %s\n", port, g_strerror(errno));
        return 1;
    }
    fprintf(stderr, "vmbk-agent %s: protocol %d on %s, idle %u s\n", PACKAGE_VERSION,
            VMBK_AGENT_PROTO_VERSION, port, idle);

    for (;;) {
        g_autoptr(vmbkAgentFrame) req = NULL;
        size_t skipped = 0;
        ssize_t r;

        if (vmbkAgentFrameTake(in, &req, &skipped) == 1) {
            last = g_get_monotonic_time();
            if (vmbkAgentServe(req, in) == 1)
                return 0;
            continue;
        }
        if (idle && g_get_monotonic_time() - last > (gint64) idle * G_USEC_PER_SEC) {
            fprintf(stderr, "vmbk-agent: idle for %u s, exiting\n", idle);
            return 0;
        }
        r = read(port_fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno != EAGAIN) {
            fprintf(stderr, "vmbk-agent: cannot read the port: %s\n", g_strerror(errno));
            return 1;
        }
        if (r <= 0) {
            /* No host end connected: what was half-read is gone with it. */
            g_byte_array_set_size(in, 0);
            g_usleep(50 * 1000);
            continue;
        }
        g_byte_array_append(in, chunk, r);
    }
}
