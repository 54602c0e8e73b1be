/* vmbk-agent: a point's files, for 'vmbk ls|cat|copy-out --via appliance' (FILES_* of
 * agentproto.h)
 *
 * FILES_MOUNT mounts the filesystems of hotplugged disks as one tree below /run/vmbk-files,
 * read-only, nosuid, nodev, noexec (ext2/3/4 with noload, xfs with norecovery: a dirty journal is
 * not replayed).  The guest is not trusted: every path it gives (a mountpoint, a path asked for)
 * is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) below the tree's root, so
 * its symlinks and ".." resolve as in the guest and never leave the tree; a filesystem is mounted
 * on the directory so resolved (through /proc/self/fd), never on a path the kernel would resolve
 * again.  Only regular files are read, opened O_NONBLOCK (a fifo never blocks the agent; nodev:
 * a device node cannot be opened at all), in chunks of one frame: memory stays bounded whatever
 * the file's size.  One tree at a time: hostctl holds the appliance's lock; a tree left by a vmbk
 * that was killed is unmounted by the next FILES_MOUNT, or as soon as one of its disks is gone.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "agent.h"
#include "vmbk-error.h"

#define FILES_DIR "/run/vmbk-files"

static inline void
vmbkFilesCloseFd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define vmbk_autoclose __attribute__((cleanup(vmbkFilesCloseFd)))
#define LS_PAYLOAD_MAX (VMBK_AGENT_MAX_PAYLOAD - 64 * 1024)
#define PORT_WRITE_MAX (32 * 1024) /* what one write to a virtio port takes */

static struct {
    uint32_t handle; /* 0: none */
    char *dir;
    int rootfd;
    GPtrArray *serials; /* of the disks it is on */
    GPtrArray *mounts;  /* of "/proc/self/fd"-free paths of what was mounted, in order */
} tree = { .rootfd = -1 };

static uint32_t next_handle = 1;

static int
vmbkOpenat2(int dirfd, const char *path, uint64_t flags)
{
    struct open_how how = {
        .flags = flags | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd;

    /* The tree's root is its own root: "/a" is "a" in it, ".." at the top stays there. */
    do {
        fd = syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof(how));
    } while (fd < 0 && (errno == EAGAIN || errno == EINTR));
    return fd;
}

static void
vmbkFilesUnmount(void)
{
    guint i;

    if (!tree.handle)
        return;
    if (tree.rootfd >= 0)
        close(tree.rootfd);
    tree.rootfd = -1;
    /* Deepest first; detached if busy (a disk that went away). */
    for (i = tree.mounts->len; i > 0; i--) {
        const char *mp = g_ptr_array_index(tree.mounts, i - 1);
        if (umount2(mp, UMOUNT_NOFOLLOW) < 0 && umount2(mp, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            fprintf(stderr, "vmbk-agent: cannot unmount '%s': %s\n", mp, g_strerror(errno));
    }
    rmdir(tree.dir);
    fprintf(stderr, "vmbk-agent: unmounted tree %u\n", tree.handle);
    tree.handle = 0;
    g_clear_pointer(&tree.dir, g_free);
    g_clear_pointer(&tree.serials, g_ptr_array_unref);
    g_clear_pointer(&tree.mounts, g_ptr_array_unref);
}

void
vmbkAgentFilesReap(void)
{
    guint i;

    for (i = 0; tree.handle && i < tree.serials->len; i++) {
        g_autofree char *dev = vmbkAgentFindDisk(g_ptr_array_index(tree.serials, i));
        if (!dev) {
            fprintf(stderr, "vmbk-agent: disk '%s' is gone\n",
                    (char *) g_ptr_array_index(tree.serials, i));
            vmbkFilesUnmount();
        }
    }
}

static int
vmbkFilesReplyErrno(uint16_t type, uint32_t id, int e, const char *what, const char *message)
{
    g_autofree char *w = vmbkAgentEscape(what);
    g_autofree char *m = g_strdup(message ? message : g_strerror(e));
    g_autofree char *out = NULL;

    g_strdelimit(m, "\n", ' ');
    out = g_strdup_printf("errno=%d\nwhat=%s\nmessage=%s\n", e, w, m);
    return vmbkAgentSend(type | VMBK_AGENT_RESPONSE, id, out);
}

static int
vmbkFilesMount(uint32_t id, const char *payload)
{
    g_autofree char *timeout = vmbkAgentPayloadGet(payload, "timeout");
    g_auto(GStrv) lines = g_strsplit(payload, "\n", -1);
    unsigned int tmo = timeout ? g_ascii_strtoull(timeout, NULL, 10) : 30;
    g_autofree char *out = NULL;
    size_t i;
    int n = 0;

    vmbkFilesUnmount();
    g_mkdir_with_parents(FILES_DIR, 0700);
    tree.handle = next_handle++;
    tree.dir = g_strdup_printf(FILES_DIR "/%u", tree.handle);
    tree.serials = g_ptr_array_new_with_free_func(g_free);
    tree.mounts = g_ptr_array_new_with_free_func(g_free);
    if (mkdir(tree.dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        vmbkFilesUnmount();
        return vmbkAgentError(id, "cannot create '%s': %s", FILES_DIR, g_strerror(e));
    }
    for (i = 0; lines[i]; i++) {
        g_auto(GStrv) f = NULL;
        g_autofree char *mp = NULL;
        g_autofree char *dev = NULL;
        unsigned int part;
        int fd, e;

        if (!g_str_has_prefix(lines[i], "fs="))
            continue;
        f = g_strsplit(lines[i] + 3, " ", 4);
        if (g_strv_length(f) != 4) {
            vmbkFilesUnmount();
            return vmbkAgentError(id, "FILES_MOUNT: bad line '%s'", lines[i]);
        }
        part = g_ascii_strtoull(f[1], NULL, 10);
        mp = vmbkAgentUnescape(f[3]);
        if (!mp || (n == 0) != g_str_equal(mp, "/")) {
            vmbkFilesUnmount();
            return vmbkAgentError(id, "FILES_MOUNT: the first filesystem, and only it, goes "
                                  "on /");
        }
        if (!(dev = vmbkAgentPartition(f[0], part, tmo))) {
            vmbkFilesUnmount();
            return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_MOUNT, id, ENODEV, mp,
                                       vmbkErrorMessage());
        }
        g_ptr_array_add(tree.serials, g_strdup(f[0]));
        fd = n == 0 ? open(tree.dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    : vmbkOpenat2(tree.rootfd, mp, O_PATH | O_DIRECTORY);
        if (fd < 0) {
            e = errno;
            vmbkFilesUnmount();
            return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_MOUNT, id, e, mp, NULL);
        }
        if (vmbkAgentMountRo(dev, f[2], fd) < 0) {
            g_autofree char *msg = g_strdup_printf("mount %s on %s: %s", dev, mp,
                                                   g_strerror(errno));
            e = errno;
            close(fd);
            vmbkFilesUnmount();
            return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_MOUNT, id, e, mp, msg);
        }
        {
            /* Where it ended up, to unmount it by. */
            g_autofree char *self = g_strdup_printf("/proc/self/fd/%d", fd);
            g_autofree char *where = g_file_read_link(self, NULL);
            g_ptr_array_add(tree.mounts, where ? g_steal_pointer(&where) : g_strdup(tree.dir));
        }
        close(fd);
        if (n == 0 &&
            (tree.rootfd = open(tree.dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
            e = errno;
            vmbkFilesUnmount();
            return vmbkAgentError(id, "cannot open '%s': %s", FILES_DIR, g_strerror(e));
        }
        fprintf(stderr, "vmbk-agent: mounted %s (%s) on %s of tree %u\n", dev, f[2], mp,
                tree.handle);
        n++;
    }
    if (n == 0) {
        vmbkFilesUnmount();
        return vmbkAgentError(id, "FILES_MOUNT without a filesystem");
    }
    out = g_strdup_printf("mount=%u\n", tree.handle);
    return vmbkAgentSend(VMBK_AGENT_MSG_FILES_MOUNT | VMBK_AGENT_RESPONSE, id, out);
}

static char
vmbkFilesType(mode_t mode)
{
    return S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : S_ISCHR(mode) ? 'c' : S_ISBLK(mode) ? 'b' :
           S_ISFIFO(mode) ? 'p' : S_ISSOCK(mode) ? 's' : '-';
}

/* One stat line (VMBK_AGENT_STAT_FIELDS): of name in dirfd, or of dirfd itself (name ""). */
static void
vmbkFilesStatLine(GString *out, const char *key, int dirfd, const char *name, const char *shown)
{
    g_autofree char *n = vmbkAgentEscape(shown);
    g_autofree char *l = NULL;
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0) {
        g_string_append_printf(out, "%s=%s ? 0 0 0 0 0 0 0 0 -1 \n", key, n);
        return;
    }
    if (S_ISLNK(st.st_mode)) {
        char buf[4097];
        ssize_t r = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
        buf[r > 0 ? r : 0] = '\0';
        l = vmbkAgentEscape(buf);
    }
    g_string_append_printf(out, "%s=%s %c %o %u %u %" PRId64 " %" PRId64 " %ld %" PRId64
                           " %ld %" PRIu64 " %s\n", key, n, vmbkFilesType(st.st_mode),
                           (unsigned int) st.st_mode, (unsigned int) st.st_uid,
                           (unsigned int) st.st_gid, (int64_t) st.st_size,
                           (int64_t) st.st_atim.tv_sec, st.st_atim.tv_nsec,
                           (int64_t) st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                           (uint64_t) st.st_ino, l ? l : "");
}

static gint
vmbkFilesCompare(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The request's path, and the tree it is in; NULL when it is not (answered). */
static char *
vmbkFilesPath(uint16_t type, uint32_t id, const char *payload)
{
    g_autofree char *m = vmbkAgentPayloadGet(payload, "mount");
    g_autofree char *p = vmbkAgentPayloadGet(payload, "path");

    vmbkAgentFilesReap();
    if (!tree.handle || !m || g_ascii_strtoull(m, NULL, 10) != tree.handle) {
        vmbkAgentError(id, "%s: tree '%s' is not mounted (its disk went away?)",
                       vmbkAgentMsgName(type), m ? m : "");
        return NULL;
    }
    if (!p) {
        vmbkAgentError(id, "%s without a path", vmbkAgentMsgName(type));
        return NULL;
    }
    return vmbkAgentUnescape(p);
}

static int
vmbkFilesLs(uint32_t id, const char *payload)
{
    g_autofree char *path = vmbkFilesPath(VMBK_AGENT_MSG_FILES_LS, id, payload);
    g_autofree char *follow = vmbkAgentPayloadGet(payload, "follow");
    g_autofree char *list = vmbkAgentPayloadGet(payload, "list");
    g_autofree char *start = vmbkAgentPayloadGet(payload, "start");
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *base = NULL;
    vmbk_autoclose int fd = -1;
    vmbk_autoclose int dfd = -1;
    struct stat st;
    guint i;
    DIR *d;
    struct dirent *de;

    if (!path)
        return -1;
    fd = vmbkOpenat2(tree.rootfd, path,
                     O_PATH | (g_strcmp0(follow, "1") == 0 ? 0 : O_NOFOLLOW));
    if (fd < 0 || fstat(fd, &st) < 0)
        return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_LS, id, errno, path, NULL);
    base = g_path_get_basename(path);
    vmbkFilesStatLine(out, "self", fd, "", base);
    if (g_strcmp0(list, "1") != 0 || !S_ISDIR(st.st_mode))
        return vmbkAgentSend(VMBK_AGENT_MSG_FILES_LS | VMBK_AGENT_RESPONSE, id, out->str);

    if ((dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
        !(d = fdopendir(dup(dfd))))
        return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_LS, id, errno, path, NULL);
    while ((errno = 0, de = readdir(d))) {
        if (!g_str_equal(de->d_name, ".") && !g_str_equal(de->d_name, ".."))
            g_ptr_array_add(names, g_strdup(de->d_name));
    }
    closedir(d);
    g_ptr_array_sort(names, vmbkFilesCompare);
    for (i = start ? g_ascii_strtoull(start, NULL, 10) : 0; i < names->len; i++) {
        if (out->len > LS_PAYLOAD_MAX) {
            g_string_append_printf(out, "next=%u\n", i);
            break;
        }
        vmbkFilesStatLine(out, "entry", dfd, g_ptr_array_index(names, i),
                          g_ptr_array_index(names, i));
    }
    return vmbkAgentSend(VMBK_AGENT_MSG_FILES_LS | VMBK_AGENT_RESPONSE, id, out->str);
}

/* Write a frame of a stream: 1 written, 0 cancelled (a CANCEL of id came, or another request,
 * which is left in `in` for the main loop), -1 the host went away.  A frame is written whole
 * (hostctl, which reads all the time, skips it by its id): a frame cut short would swallow the
 * next response into its length.  What came from the port is looked at before each frame. */
static int
vmbkFilesStreamWrite(int port, uint32_t id, GBytes *frame, GByteArray *in)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(frame, &len);
    struct pollfd pin = { .fd = port, .events = POLLIN };

    while (poll(&pin, 1, 0) == 1 && (pin.revents & POLLIN)) {
        uint8_t chunk[4096];
        g_autoptr(GByteArray) peek = g_byte_array_new();
        g_autoptr(vmbkAgentFrame) f = NULL;
        size_t skipped = 0;
        ssize_t n = read(port, chunk, sizeof(chunk));

        if (n <= 0)
            break;
        g_byte_array_append(in, chunk, n);
        g_byte_array_append(peek, in->data, in->len);
        if (vmbkAgentFrameTake(peek, &f, &skipped) == 1) {
            if (f->type == VMBK_AGENT_MSG_CANCEL && f->id == id) {
                g_byte_array_set_size(in, 0);
                g_byte_array_append(in, peek->data, peek->len);
            }
            fprintf(stderr, "vmbk-agent: FILES_READ %u stopped by %s\n", id,
                    vmbkAgentMsgName(f->type));
            return 0;
        }
    }
    while (len > 0) {
        struct pollfd pfd = { .fd = port, .events = POLLOUT };
        int r = poll(&pfd, 1, 1000);
        ssize_t w;

        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            continue;
        if (pfd.revents & POLLHUP) {
            fprintf(stderr, "vmbk-agent: the host went away during FILES_READ %u\n", id);
            g_byte_array_set_size(in, 0);
            return -1;
        }
        if (pfd.revents & (POLLERR | POLLNVAL))
            return -1;
        if (!(pfd.revents & POLLOUT))
            continue;
        w = write(port, p, MIN(len, (gsize) PORT_WRITE_MAX));
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= w;
    }
    return 1;
}

static int
vmbkFilesRead(int port, uint32_t id, const char *payload, GByteArray *in)
{
    g_autofree char *path = vmbkFilesPath(VMBK_AGENT_MSG_FILES_READ, id, payload);
    g_autofree char *follow = vmbkAgentPayloadGet(payload, "follow");
    g_autofree char *sparse = vmbkAgentPayloadGet(payload, "sparse");
    g_autofree uint8_t *buf = NULL;
    vmbk_autoclose int fd = -1;
    struct stat st;
    off_t pos = 0, end;
    int r;

    if (!path)
        return -1;
    fd = vmbkOpenat2(tree.rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY |
                     (g_strcmp0(follow, "0") == 0 ? O_NOFOLLOW : 0));
    if (fd < 0 || fstat(fd, &st) < 0)
        return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_READ, id, errno, path, NULL);
    if (!S_ISREG(st.st_mode))
        return vmbkFilesReplyErrno(VMBK_AGENT_MSG_FILES_READ, id, EINVAL, path,
                                   "not a regular file");
    buf = g_malloc(VMBK_AGENT_DATA_MAX);
    while (pos < st.st_size) {
        g_autoptr(GBytes) frame = NULL;
        g_autofree char *h = NULL;
        ssize_t n;

        end = st.st_size;
        if (g_strcmp0(sparse, "1") == 0) {
            off_t data = lseek(fd, pos, SEEK_DATA);
            if (data < 0 && errno == ENXIO)
                break;
            if (data >= 0) {
                pos = data;
                end = lseek(fd, pos, SEEK_HOLE);
                if (end < 0)
                    end = st.st_size;
            }
        }
        n = pread(fd, buf, MIN((off_t) VMBK_AGENT_DATA_MAX, end - pos), pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Shrunk (it cannot: read-only), or the disk went away. */
            return vmbkAgentError(id, "cannot read '%s' at %" PRId64 ": %s", path,
                                  (int64_t) pos, n < 0 ? g_strerror(errno) : "end of file");
        }
        h = g_strdup_printf("offset=%" PRId64 "\nmore=1\n", (int64_t) pos);
        frame = vmbkAgentFrameEncodeData(VMBK_AGENT_MSG_FILES_READ | VMBK_AGENT_RESPONSE, id, h,
                                         buf, n);
        if ((r = vmbkFilesStreamWrite(port, id, frame, in)) <= 0)
            return -1;
        pos += n;
    }
    {
        g_autofree char *last = g_strdup_printf("offset=%" PRId64 "\nsize=%" PRId64 "\n",
                                                (int64_t) pos, (int64_t) st.st_size);
        g_autoptr(GBytes) frame =
            vmbkAgentFrameEncode(VMBK_AGENT_MSG_FILES_READ | VMBK_AGENT_RESPONSE, id, last,
                                 strlen(last));
        return vmbkFilesStreamWrite(port, id, frame, in) > 0 ? 0 : -1;
    }
}

int
vmbkAgentFilesServe(int port, const vmbkAgentFrame *req, GByteArray *in)
{
    const char *payload = req->payload->str;
    g_autofree char *m = NULL;

    switch (req->type) {
    case VMBK_AGENT_MSG_FILES_MOUNT:
        return vmbkFilesMount(req->id, payload);
    case VMBK_AGENT_MSG_FILES_LS:
        return vmbkFilesLs(req->id, payload);
    case VMBK_AGENT_MSG_FILES_READ:
        return vmbkFilesRead(port, req->id, payload, in);
    case VMBK_AGENT_MSG_FILES_UMOUNT:
        m = vmbkAgentPayloadGet(payload, "mount");
        if (tree.handle && m && g_ascii_strtoull(m, NULL, 10) == tree.handle)
            vmbkFilesUnmount();
        return vmbkAgentSend(req->type | VMBK_AGENT_RESPONSE, req->id, "");
    default:
        return vmbkAgentError(req->id, "unknown request type %u", (unsigned int) req->type);
    }
}
