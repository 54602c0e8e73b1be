/* vmbk-agent: what agent.c shares with the agent's other parts */
#pragma once

#include <stdint.h>

#include <glib.h>

#include "agentproto.h"

/* Write a frame to the port; the payload is a string, or a header and bytes. */
int vmbkAgentSend(uint16_t type, uint32_t id, const char *payload);
int vmbkAgentSendFrame(GBytes *frame);
/* Write a whole frame to fd: 0, or -1 with errno. */
int vmbkAgentWriteFrame(int fd, GBytes *frame);
/* An ERROR response (also written to the console). */
int vmbkAgentError(uint32_t id, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Open (O_RDONLY | flags) the hotplugged disk with this serial, waiting up to timeout_s for it
 * to appear; *path: its device.  -1 (reported with vmbkError) if it does not. */
int vmbkAgentOpenDisk(const char *serial, unsigned int timeout_s, int flags, char **path);

/* The device of the hotplugged disk with this serial ("sdb"), or NULL. */
char *vmbkAgentFindDisk(const char *serial);

/* agent-mount.c: the device of partition part (0: the whole disk) of the disk with this serial,
 * waiting up to timeout_s for the kernel to have scanned it; NULL (reported with vmbkError). */
char *vmbkAgentPartition(const char *serial, unsigned int part, unsigned int timeout_s);
/* Mount dev read-only (type "": the usual ones are tried) on the directory dirfd: 0, or -1 with
 * errno. */
int vmbkAgentMountRo(const char *dev, const char *type, int dirfd);

/* agent-files.c: FILES_MOUNT, FILES_LS, FILES_READ, FILES_UMOUNT (in: as for plugins: a
 * FILES_READ stream watches the port for its CANCEL). */
int vmbkAgentFilesServe(int port, const vmbkAgentFrame *req, GByteArray *in);
/* Unmount the files tree if one of its disks is gone. */
void vmbkAgentFilesReap(void);

/* agent-plugin.c: PLUGIN_RUN, PLUGIN_DISK, PLUGIN_GO, CANCEL.  in: what the main loop has read
 * from the port and not yet served (a run reads the port itself while its plugin runs). */
int vmbkAgentPluginServe(int port, const vmbkAgentFrame *req, GByteArray *in);
