/* vmbk mount: a point's filesystems read-only on the host through FUSE (guestmount)
 *
 * The guest's filesystems are still parsed only inside guestmount's libguestfs appliance; the
 * host kernel sees a FUSE filesystem.  guestmount returns once the mount is up and serves it
 * until 'guestunmount MOUNTPOINT'.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "pointfs.h"
#include "inspection.h"
#include "vmbk.h"

/* Run guestmount: it forks its server and exits once mounted.  Its output goes to a file, not a
 * pipe, as the server it leaves behind would keep a pipe open. */
static int
vmbkRunGuestmount(GPtrArray *argv, const char *what)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *errpath = NULL;
    g_autofree char *errtext = NULL;
    g_auto(GStrv) envp = g_get_environ();
    vmbk_autoclose int errfd = -1;
    vmbk_autoclose int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    GPid pid;
    int status;

    /* As vmbkGuestfsNew() sets up its handles. */
    if (!g_environ_getenv(envp, "LIBGUESTFS_BACKEND"))
        envp = g_environ_setenv(envp, "LIBGUESTFS_BACKEND", "direct", TRUE);
    if (!g_environ_getenv(envp, "LIBGUESTFS_BACKEND_SETTINGS") && vmbkGuestfsNeedTcg())
        envp = g_environ_setenv(envp, "LIBGUESTFS_BACKEND_SETTINGS", "force_tcg", TRUE);

    if ((errfd = g_file_open_tmp("vmbk-guestmount-XXXXXX", &errpath, &err)) < 0) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create a temporary file: %s", err->message);
        return -1;
    }
    g_ptr_array_add(argv, NULL);
    fprintf(stderr, "%s: starting the libguestfs appliance to read %s (this can take a "
            "while)...\n", vmbk_progname, what);
    if (!g_spawn_async_with_fds(NULL, (char **) argv->pdata, envp, G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &pid, nullfd, nullfd, errfd, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot run '%s': %s", GUESTMOUNT, err->message);
        g_unlink(errpath);
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_file_get_contents(errpath, &errtext, NULL, NULL);
    g_unlink(errpath);
    if (!g_spawn_check_wait_status(status, NULL)) {
        if (errtext)
            g_strstrip(errtext);
        vmbkError(VMBK_ERR_OPERATION, "guestmount failed to mount %s: %s", what,
                  errtext && *errtext ? errtext : "no message");
        return -1;
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdMount)
{
    const char *repo_path = NULL, *point_id = NULL, *device = NULL;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', or latest (the default)", "ID" },
        { "device", 0, 0, G_OPTION_ARG_STRING, &device,
          "mount only this filesystem (see 'vmbk inspect')", "DEVICE" },
        { NULL },
    };
    g_autoptr(vmbkRepo) repo = NULL;
    g_autoptr(GPtrArray) points = NULL;
    g_autoptr(vmbkInspection) insp = NULL;
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *what = NULL;
    const char *mountpoint;
    vmbkPoint *point;
    bool absent = true;
    guint i, n = 0;

    if (vmbkParseOptions(cmd, entries,
                         "Mounts the point's filesystems read-only on MOUNTPOINT (an empty\n"
                         "directory) through FUSE, as the guest mounts them, and returns; they\n"
                         "stay mounted until 'guestunmount MOUNTPOINT' (or 'fusermount -u').",
                         &argc, &argv, 2, 2) < 0)
        return -1;
    if (!repo_path) {
        vmbkError(VMBK_ERR_USAGE, "mount: no repository given; pass -r REPO");
        return -1;
    }
    if (g_strcmp0(point_id, "live") == 0) {
        vmbkError(VMBK_ERR_USAGE, "mount: --point live is not supported (the live view would "
                  "have to outlive vmbk); use ls, cat or copy-out with --point live");
        return -1;
    }
    mountpoint = argv[2];
    if (!g_file_test(mountpoint, G_FILE_TEST_IS_DIR)) {
        vmbkError(VMBK_ERR_OPERATION, "mount: '%s' is not a directory", mountpoint);
        return -1;
    }
    if (!(repo = vmbkRepoOpen(repo_path, false)) || !(points = vmbkRepoPoints(repo, argv[1])) ||
        !(point = vmbkRepoFindPoint(repo, points, argv[1], point_id)))
        return -1;
    if (!(insp = vmbkInspectionLoad(point->dir, &absent)) && !absent)
        return -1;
    what = g_strdup_printf("point %s of domain '%s'", point->id, point->domain);

    g_ptr_array_add(args, g_strdup(GUESTMOUNT));
    g_ptr_array_add(args, g_strdup("--ro"));
    g_ptr_array_add(args, g_strdup("--format=qcow2")); /* for the -a after it */
    for (i = 0; i < point->disks->len; i++) {
        g_ptr_array_add(args, g_strdup("-a"));
        g_ptr_array_add(args, vmbkPointImagePath(point, g_ptr_array_index(point->disks, i)));
    }
    if (device) {
        g_ptr_array_add(args, g_strdup("-m"));
        g_ptr_array_add(args, g_strdup(device));
    } else if (!insp) {
        g_ptr_array_add(args, g_strdup("-i")); /* not indexed: let guestmount inspect */
    } else {
        for (i = 0; i < insp->filesystems->len; i++) {
            vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
            if (fs->mountpoint && insp->root) {
                g_ptr_array_add(args, g_strdup("-m"));
                g_ptr_array_add(args, g_strdup_printf("%s:%s", fs->device, fs->mountpoint));
                n++;
            }
        }
        if (n == 0) {
            for (i = 0; i < insp->filesystems->len; i++) {
                vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
                if (vmbkGuestFsMountable(fs)) {
                    device = fs->device;
                    n++;
                }
            }
            if (n != 1) {
                vmbkError(VMBK_ERR_USAGE, "%s has no operating system vmbk could inspect and "
                          "%u filesystems; pick one with --device (see 'vmbk inspect')", what,
                          n);
                return -1;
            }
            g_ptr_array_add(args, g_strdup("-m"));
            g_ptr_array_add(args, g_strdup(device));
        }
    }
    g_ptr_array_add(args, g_strdup(mountpoint));
    if (vmbkRunGuestmount(args, what) < 0)
        return -1;
    fprintf(stderr, "%s: %s is mounted read-only on '%s'; unmount it with 'guestunmount %s'\n",
            vmbk_progname, what, mountpoint, mountpoint);
    return 0;
}
