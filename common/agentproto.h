/* vmbk: the protocol between hostctl and vmbk-agent, over the appliance's virtio-serial port
 *
 * Every message is one frame: a 24-byte header, all fields little-endian, then the payload.
 *
 *   magic    4 bytes  "VMBK"
 *   version  u16      VMBK_AGENT_PROTO_VERSION
 *   type     u16      vmbkAgentMsg
 *   id       u32      chosen by hostctl; a response carries its request's id
 *   length   u32      payload bytes, at most VMBK_AGENT_MAX_PAYLOAD
 *   crc      u32      CRC-32 (IEEE) of the header (crc field as zero) and the payload
 *   reserved u32      zero
 *
 * Payloads are UTF-8 text, "key=value" lines; a value runs to the end of its line.  A payload
 * that carries bytes (a plugin, extents, output data) is such a header, an empty line, then the
 * bytes (vmbkAgentPayloadSplit).  A response is either the request's type with
 * VMBK_AGENT_RESPONSE set, or VMBK_AGENT_MSG_ERROR with a "message=" line.
 *
 * Running a plugin (PLUGIN_*) is a conversation under the id of its PLUGIN_RUN: hostctl sends
 * PLUGIN_RUN (the plugin's shared object and configuration), one or more PLUGIN_DISK (the extents
 * to give it; the disks are hotplugged already) for a block-level plugin, one PLUGIN_FS per
 * filesystem to walk (in the order of the point's inspection; the hotplugged disk by serial= and
 * partition=, 0 for the whole disk) for a file-level one, both for a plugin that is both, then
 * PLUGIN_GO.  The agent mounts each filesystem read-only before it starts the plugin and unmounts
 * it when the plugin has ended, however it ended; one it cannot mount is skipped, and an OUTPUT
 * "op=warn" says so.  The agent runs the plugin in a
 * child process, which sends OUTPUT frames: hostctl owns the outputs and writes them into the
 * point.  OUTPUT frames with "sync=1" (open, in_parent, convert, close) wait for their response;
 * the others are not answered, and a failure among them is reported by the next close.  The
 * conversation ends with PLUGIN_RUN's response, or an ERROR (the plugin failed or crashed).
 * CANCEL (same id) kills the child.  The port drops what the host sends while the agent does not hold it open, so
 * a reader that finds no magic skips a byte and tries again: the next frame resynchronises.
 *
 * Reading files (FILES_*, 'vmbk ls|cat|copy-out --via appliance'): FILES_MOUNT mounts the
 * filesystems of hotplugged disks read-only as one tree (the guest's mountpoints) and answers
 * with a mount handle; FILES_LS and FILES_READ name a path in that tree, resolved in it as the
 * guest would (symlinks and ".." never leave it); FILES_UMOUNT unmounts it.  A path that cannot be
 * resolved is not an ERROR: the response says errno= (the Linux number) and what= it failed
 * on, so hostctl words the message as its host path does.  FILES_READ answers with a stream of
 * FILES_READ responses, each with offset= and bytes, "more=1" on all but the last, which says
 * size=; hostctl may CANCEL it (same id).  Names and paths are escaped (vmbkAgentEscape).  A
 * stat is one line of space-separated fields (VMBK_AGENT_STAT_FIELDS).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#define VMBK_AGENT_PROTO_VERSION 1
#define VMBK_AGENT_MAGIC "VMBK"
#define VMBK_AGENT_HEADER_SIZE 24
#define VMBK_AGENT_MAX_PAYLOAD (1024 * 1024)
#define VMBK_AGENT_RESPONSE 0x8000
/* The virtio-serial port's name, as appliance.xml declares it. */
#define VMBK_AGENT_PORT "org.vmbk.agent"

typedef enum {
    VMBK_AGENT_MSG_HELLO = 1,  /* -> version, agent, uptime, kernel */
    VMBK_AGENT_MSG_PING,       /* -> uptime */
    VMBK_AGENT_MSG_LIST_DISKS, /* -> "disk=SERIAL SIZE DEVICE" lines */
    VMBK_AGENT_MSG_DIGEST,     /* serial=, timeout= -> serial, size, algorithm, root, seconds;
                                * with leaf ranges as bytes (u64 first, u64 count): their hashes
                                * as bytes, at most VMBK_AGENT_DIGEST_LEAVES a request */
    VMBK_AGENT_MSG_SHUTDOWN,   /* -> nothing; the agent exits and the appliance powers off */
    VMBK_AGENT_MSG_ERROR,      /* (response only) message= */

    /* Plugins (see above); values 16 to 31. */
    VMBK_AGENT_MSG_PLUGIN_RUN = 16, /* plugin=, config=, point's fields; bytes: the .so */
    VMBK_AGENT_MSG_PLUGIN_DISK,     /* target=, serial=, size=, parent=, last=; bytes: extents */
    VMBK_AGENT_MSG_PLUGIN_GO,       /* (not answered) run it */
    VMBK_AGENT_MSG_OUTPUT,          /* agent -> hostctl: op=, handle=, ...; bytes: data */
    VMBK_AGENT_MSG_CANCEL,          /* (not answered) stop the plugin run (or read) with this id */
    VMBK_AGENT_MSG_PLUGIN_FS,       /* name=, device=, type=, mountpoint=, serial=, partition= */

    /* Files of hotplugged disks (see above); values 32 to 47. */
    VMBK_AGENT_MSG_FILES_MOUNT = 32, /* fs=SERIAL PARTITION TYPE MOUNTPOINT lines (in mount
                                      * order, "/" first; PARTITION 0: the whole disk; TYPE "":
                                      * any), timeout= -> mount=HANDLE, or errno=, what=, message=
                                      * for the filesystem that failed */
    VMBK_AGENT_MSG_FILES_LS,         /* mount=, path=, follow=0|1, list=0|1, start=N -> self=STAT
                                      * and, with list and a directory, entry=STAT lines from the
                                      * start-th in name order, next=N when more are left; or
                                      * errno=, what= */
    VMBK_AGENT_MSG_FILES_READ,       /* mount=, path=, follow=0|1, sparse=0|1 -> a stream (see
                                      * above); sparse: holes are not sent */
    VMBK_AGENT_MSG_FILES_UMOUNT,     /* mount= -> nothing */

    VMBK_AGENT_MSG_LAST
} vmbkAgentMsg;

typedef struct _vmbkAgentFrame vmbkAgentFrame;
struct _vmbkAgentFrame {
    uint16_t version;
    uint16_t type;
    uint32_t id;
    GString *payload;
};

void vmbkAgentFrameFree(vmbkAgentFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkAgentFrame, vmbkAgentFrameFree);

const char *vmbkAgentMsgName(uint16_t type);

uint32_t vmbkAgentCrc32(uint32_t crc, const void *buf, size_t len);

/* Header and payload, ready to write. */
GBytes *vmbkAgentFrameEncode(uint16_t type, uint32_t id, const char *payload, size_t len);

/* Take one frame from the front of buf if a whole one is there: 1 (and *out), 0 (need more), or
 * skip bytes that cannot start a valid frame (bad magic, version, length or CRC) and return 0;
 * *skipped counts them. */
int vmbkAgentFrameTake(GByteArray *buf, vmbkAgentFrame **out, size_t *skipped);

/* Leaf hashes one DIGEST answers with (32 bytes each). */
#define VMBK_AGENT_DIGEST_LEAVES 30000

/* A PLUGIN_DISK extent, little-endian on the wire. */
#define VMBK_AGENT_EXTENT_SIZE 20 /* u64 offset, u64 length, u32 type (VMBK_EXTENT_*) */
/* Output data per OUTPUT frame: what a frame holds, less room for the header. */
#define VMBK_AGENT_DATA_MAX (VMBK_AGENT_MAX_PAYLOAD - 4096)

/* A FILES_LS stat line: name type mode uid gid size atime atime_ns mtime mtime_ns ino link
 * (type: one of "-dlcbps"; name and link escaped, link "" when not a symlink). */
#define VMBK_AGENT_STAT_FIELDS 12

/* A frame of a header and bytes. */
GBytes *vmbkAgentFrameEncodeData(uint16_t type, uint32_t id, const char *header,
                                 const void *data, size_t len);
/* Split a payload into its header (a string, returned) and its bytes (*data, *len: in payload;
 * none if it has no empty line). */
char *vmbkAgentPayloadSplit(const GString *payload, const uint8_t **data, size_t *len);

/* A value that may hold any byte, escaped for a "key=value" line, and back. */
char *vmbkAgentEscape(const char *value);
char *vmbkAgentUnescape(const char *value);

void vmbkAgentPut64(uint8_t *p, uint64_t v);
uint64_t vmbkAgentGet64(const uint8_t *p);
void vmbkAgentPut32(uint8_t *p, uint32_t v);
uint32_t vmbkAgentGet32(const uint8_t *p);

/* The value of key in a "key=value" payload, or NULL. */
char *vmbkAgentPayloadGet(const char *payload, const char *key);
