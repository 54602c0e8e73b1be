/* vmbk: pick KVM or TCG for the VMs vmbk starts
 *
 * /dev/kvm existing is not enough: under some nested set-ups the first KVM_RUN never comes back.
 * So we boot the smallest guest there is, a boot sector that writes to the isa-debug-exit port,
 * and take KVM only if qemu exits with the value that guest wrote, within a few seconds.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "accel.h"
#include "vmbk-error.h"

/* mov al, 1; out 0xf4, al; cli; hlt; jmp $-2: qemu exits with status (1 << 1) | 1 = 3. */
static const unsigned char probe_code[] = { 0xb0, 0x01, 0xe6, 0xf4, 0xfa, 0xf4, 0xeb, 0xfd };
#define PROBE_EXIT_STATUS 3

/* jmp $: a vCPU that never reports, as a hanging KVM looks to us (VMBK_TEST_PROBE_HANG=1). */
static const unsigned char probe_hang_code[] = { 0xeb, 0xfe };

/* The tests exercise the probe's boot under TCG, as this machine has no working KVM:
 * VMBK_TEST_PROBE_ACCEL=tcg boots the probe guest with that accelerator instead of kvm. */
static const char *
vmbkAccelProbeAccel(void)
{
    const char *accel = g_getenv("VMBK_TEST_PROBE_ACCEL");
    return accel && *accel ? accel : "kvm";
}

const char *
vmbkAccelName(vmbkAccel accel)
{
    return accel == VMBK_ACCEL_KVM ? "kvm" : "tcg";
}

const char *
vmbkAccelDomainType(vmbkAccel accel)
{
    return accel == VMBK_ACCEL_KVM ? "kvm" : "qemu";
}

static char *
vmbkAccelWriteBootSector(void)
{
    unsigned char sector[512] = { 0 };
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    int fd;

    if (g_getenv("VMBK_TEST_PROBE_HANG"))
        memcpy(sector, probe_hang_code, sizeof(probe_hang_code));
    else
        memcpy(sector, probe_code, sizeof(probe_code));
    sector[510] = 0x55;
    sector[511] = 0xaa;

    if ((fd = g_file_open_tmp("vmbk-kvm-probe-XXXXXX.img", &path, &err)) < 0) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create the KVM probe image: %s", err->message);
        return NULL;
    }
    if (write(fd, sector, sizeof(sector)) != sizeof(sector)) {
        vmbkErrorSystem(errno, "cannot write the KVM probe image '%s'", path);
        close(fd);
        g_unlink(path);
        return NULL;
    }
    close(fd);
    return g_steal_pointer(&path);
}

/* Returns the exit status of qemu, or -1 if it had to be killed after timeout_ms. */
static int
vmbkAccelBoot(const char *image, unsigned int timeout_ms, int *status)
{
    g_autofree char *drive = g_strdup_printf("file=%s,format=raw,if=ide,snapshot=on", image);
    const char *argv[] = {
        QEMU_SYSTEM, "-accel", vmbkAccelProbeAccel(), "-machine", "pc", "-m", "16", "-nodefaults",
        "-no-user-config", "-display", "none", "-serial", "none", "-monitor", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-drive", drive, NULL,
    };
    g_autoptr(GError) err = NULL;
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    GPid pid;

    if (!g_spawn_async(NULL, (char **) argv, NULL,
                       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                           G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, &pid, &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot run '%s' for the KVM probe: %s", QEMU_SYSTEM,
                  err->message);
        return -1;
    }

    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR) {
            vmbkErrorSystem(errno, "cannot wait for the KVM probe");
            return -1;
        }
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            *status = -1;
            return 0;
        }
        g_usleep(20 * 1000);
    }
}

int
vmbkAccelProbe(unsigned int timeout_ms, vmbkAccel *accel, char **notice)
{
    const char *env = g_getenv("VMBK_ACCEL");
    g_autofree char *image = NULL;
    int status;
    int fd = -1;

    *notice = NULL;
    if (env && *env) {
        if (g_str_equal(env, "kvm")) {
            *accel = VMBK_ACCEL_KVM;
        } else if (g_str_equal(env, "tcg")) {
            *accel = VMBK_ACCEL_TCG;
        } else {
            vmbkError(VMBK_ERR_USAGE, "VMBK_ACCEL='%s' is not valid; use 'kvm' or 'tcg'", env);
            return -1;
        }
        return 0;
    }

    *accel = VMBK_ACCEL_TCG;
    if (!g_getenv("VMBK_TEST_PROBE_ACCEL") && (fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
        *notice = g_strdup_printf("/dev/kvm cannot be opened (%s); using TCG (software emulation)",
                                  g_strerror(errno));
        return 0;
    }
    if (fd >= 0)
        close(fd);

    if (!(image = vmbkAccelWriteBootSector()))
        return -1;
    if (vmbkAccelBoot(image, timeout_ms, &status) < 0) {
        g_unlink(image);
        return -1;
    }
    g_unlink(image);

    if (status == -1) {
        *notice = g_strdup_printf("KVM did not boot a test guest within %u ms; "
                                  "using TCG (software emulation)", timeout_ms);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == PROBE_EXIT_STATUS) {
        *accel = VMBK_ACCEL_KVM;
    } else {
        *notice = g_strdup("KVM failed to boot a test guest; using TCG (software emulation)");
    }
    return 0;
}
