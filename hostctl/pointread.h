/* vmbk: reading a point's disk back, checked against its digest */
#pragma once

#include <stdbool.h>

#include "repo.h"

/* Check that the disk's image and its backing chain are where the points say, and sound
 * (qemu-img check).  Reports the point and disk at fault. */
int vmbkPointCheckChain(GPtrArray *points, const vmbkPoint *point, const vmbkPointDisk *disk);

/* Read the disk's guest-visible content at the point and check it against the point's digest;
 * with dst (an image of dst_format, created here, which must not exist), also write it there.
 * A mismatch is reported naming the point and the disk, and dst is removed. */
int vmbkPointReadDisk(const vmbkPoint *point, const vmbkPointDisk *disk, const char *dst,
                      const char *dst_format, bool progress);
