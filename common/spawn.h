/* vmbk: running helper programs (qemu-img, qemu-nbd) with an argv, never through a shell */
#pragma once

#include <glib.h>

/* Run argv (argv[0] an absolute path) to completion.  On success return 0 and, if out is not NULL,
 * its standard output; on failure report the program's name and the last lines of its standard
 * error, and return -1. */
int vmbkRun(const char *const *argv, char **out);
