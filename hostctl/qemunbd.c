/* vmbk: an image served over NBD by qemu-nbd on a unix socket
 *
 * qemu-nbd --fork returns once the socket is listening, which is exactly the readiness we need;
 * --persistent keeps it up between our connections, and we stop it ourselves with SIGTERM.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "qemunbd.h"
#include "spawn.h"
#include "vmbk-error.h"

vmbkQemuNbd *
vmbkQemuNbdStart(const char *image, const char *format, bool readonly, unsigned int connections,
                 const char *dir)
{
    g_autoptr(vmbkQemuNbd) srv = g_new0(vmbkQemuNbd, 1);
    g_autofree char *shared = g_strdup_printf("--shared=%u", connections);
    g_autofree char *fmt = g_strdup_printf("--format=%s", format);
    g_autofree char *sock = NULL;
    g_autofree char *pid = NULL;
    g_autofree char *sockopt = NULL;
    g_autofree char *pidopt = NULL;
    g_autofree char *pidtext = NULL;
    g_autoptr(GError) err = NULL;
    static gint counter;
    int n = g_atomic_int_add(&counter, 1);

    sock = g_strdup_printf("%s/qemu-nbd-%d.sock", dir, n);
    pid = g_strdup_printf("%s/qemu-nbd-%d.pid", dir, n);
    sockopt = g_strdup_printf("--socket=%s", sock);
    pidopt = g_strdup_printf("--pid-file=%s", pid);
    /* Writes: no flushes of our own (the caller fsyncs the image once qemu-nbd has closed it),
     * and io_uring where the kernel allows it (measured here: a third faster). */
    {
        /* Read-only servers also say which layer of a chain holds each block
         * (qemu:allocation-depth), from which a plugin learns what a point changed. */
        const char *argv[] = {
            QEMU_NBD, "--fork", "--persistent", sockopt, pidopt, fmt, shared,
            readonly ? "--cache=writeback" : "--cache=unsafe", "--aio=io_uring",
            readonly ? "--read-only" : "--discard=unmap",
            readonly ? "--allocation-depth" : "--", readonly ? "--" : image, readonly ? image : NULL,
            NULL,
        };
        if (vmbkRun(argv, NULL) < 0) {
            vmbkErrorReset();
            argv[8] = "--aio=threads";
            if (vmbkRun(argv, NULL) < 0)
                return NULL;
        }
    }
    srv->socket = g_steal_pointer(&sock);
    srv->pidfile = g_steal_pointer(&pid);
    if (!g_file_get_contents(srv->pidfile, &pidtext, NULL, &err) ||
        (srv->pid = atoi(pidtext)) <= 0) {
        vmbkError(VMBK_ERR_INTERNAL, "qemu-nbd serving '%s' left no pid file", image);
        return NULL;
    }
    return g_steal_pointer(&srv);
}

void
vmbkQemuNbdStop(vmbkQemuNbd *srv)
{
    int i;

    if (!srv)
        return;
    /* vmbk is a child subreaper (main()), so the forked server is our child: wait for it, so
     * that the image is closed when we return. */
    if (srv->pid > 0 && kill(srv->pid, SIGTERM) == 0) {
        for (i = 0; i < 1000; i++) {
            pid_t r = waitpid(srv->pid, NULL, WNOHANG);
            if (r == srv->pid || (r < 0 && errno == ECHILD))
                break;
            g_usleep(10 * 1000);
        }
        if (i == 1000) {
            kill(srv->pid, SIGKILL);
            waitpid(srv->pid, NULL, 0);
        }
    }
    if (srv->socket)
        g_unlink(srv->socket);
    if (srv->pidfile)
        g_unlink(srv->pidfile);
    g_free(srv->socket);
    g_free(srv->pidfile);
    g_free(srv);
}

char *
vmbkQemuNbdUri(const vmbkQemuNbd *srv)
{
    return g_strdup_printf("nbd+unix:///?socket=%s", srv->socket);
}
