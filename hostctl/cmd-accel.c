/* vmbk accel: KVM or TCG for the VMs vmbk starts */
#include <config.h>

#include <stdio.h>

#include "accel.h"
#include "vmbk.h"

#define VMBK_ACCEL_TIMEOUT_MS 5000

VMBK_COMMAND(vmbkCmdAccel)
{
    g_autofree char *notice = NULL;
    vmbkAccel accel;

    if (vmbkParseOptions(cmd, NULL,
                         "Boots a 512-byte guest under KVM for at most 5 s; a /dev/kvm that is\n"
                         "absent or hangs means TCG.  VMBK_ACCEL=kvm|tcg overrides the probe.",
                         &argc, &argv, 0, 0) < 0)
        return -1;
    if (vmbkAccelProbe(VMBK_ACCEL_TIMEOUT_MS, &accel, &notice) < 0)
        return -1;
    if (notice)
        fprintf(stderr, "%s: %s\n", vmbk_progname, notice);
    printf("%s\n", vmbkAccelName(accel));
    return 0;
}
