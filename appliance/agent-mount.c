/* vmbk-agent: finding a hotplugged disk's partition and mounting a guest filesystem read-only,
 * for the file reads (agent-files.c) and the file-level plugins (agent-walk.c) alike
 *
 * A guest filesystem is mounted read-only, nosuid, nodev, noexec; ext2/3/4 with noload and xfs
 * with norecovery, so a dirty journal is not replayed.  It is mounted on a directory the caller
 * holds open (through /proc/self/fd), never on a path the kernel would resolve again.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "agent.h"
#include "vmbk-error.h"

/* The device of partition part (0: the whole disk) of the disk with this serial, waiting for the
 * kernel to have scanned its partitions. */
char *
vmbkAgentPartition(const char *serial, unsigned int part, unsigned int timeout_s)
{
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_s * G_USEC_PER_SEC;
    g_autofree char *path = NULL;
    int fd;

    if ((fd = vmbkAgentOpenDisk(serial, timeout_s, 0, &path)) < 0)
        return NULL;
    close(fd);
    if (part == 0)
        return g_steal_pointer(&path);
    for (;;) {
        const char *disk = path + strlen("/dev/");
        g_autofree char *sys = g_strdup_printf("/sys/block/%s", disk);
        g_autoptr(GDir) d = g_dir_open(sys, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
            g_autofree char *pf = g_strdup_printf("%s/%s/partition", sys, name);
            g_autofree char *num = NULL;
            g_autofree char *dev = NULL;

            if (!g_file_get_contents(pf, &num, NULL, NULL) ||
                g_ascii_strtoull(num, NULL, 10) != part)
                continue;
            dev = g_strdup_printf("/dev/%s", name);
            if (access(dev, F_OK) == 0)
                return g_steal_pointer(&dev);
        }
        if (g_get_monotonic_time() > deadline) {
            vmbkError(VMBK_ERR_OPERATION, "disk '%s' (%s) has no partition %u", serial, path,
                      part);
            return NULL;
        }
        g_usleep(20 * 1000);
    }
}

/* Mount dev (type: "" tries the usual ones) on the directory fd. */
int
vmbkAgentMountRo(const char *dev, const char *type, int fd)
{
    static const char *const any[] = { "ext4", "xfs", "btrfs", "vfat", "ntfs3", "iso9660", NULL };
    const char *one[] = { type, NULL };
    const char *const *types = *type ? one : any;
    g_autofree char *target = g_strdup_printf("/proc/self/fd/%d", fd);
    int e = ENODEV;
    size_t i;

    for (i = 0; types[i]; i++) {
        const char *t = types[i], *opts = NULL;

        if (g_str_equal(t, "ext2") || g_str_equal(t, "ext3") || g_str_equal(t, "ext4"))
            opts = "noload";
        else if (g_str_equal(t, "xfs"))
            opts = "norecovery";
        else if (g_str_equal(t, "ntfs"))
            t = "ntfs3";
        if (mount(dev, target, t, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0)
            return 0;
        e = errno;
    }
    errno = e;
    return -1;
}
