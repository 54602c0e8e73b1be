/* vmbk: pick KVM or TCG for the VMs vmbk starts */
#pragma once

typedef enum {
    VMBK_ACCEL_TCG = 0,
    VMBK_ACCEL_KVM,

    VMBK_ACCEL_LAST
} vmbkAccel;

/* "kvm" or "tcg"; as libvirt's <domain type=...> wants it: "kvm" or "qemu". */
const char *vmbkAccelName(vmbkAccel accel);
const char *vmbkAccelDomainType(vmbkAccel accel);

/* Decide, honouring VMBK_ACCEL=kvm|tcg.  Without it, boot a 512-byte guest under KVM and wait at
 * most timeout_ms for it to report in: a /dev/kvm that exists but hangs ends up as TCG.  When the
 * answer is TCG for a reason the user may want to know, *notice says why.  Returns -1 (reported) on
 * a bad VMBK_ACCEL or when qemu cannot be run at all. */
int vmbkAccelProbe(unsigned int timeout_ms, vmbkAccel *accel, char **notice);
