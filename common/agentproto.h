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
 * Payloads are UTF-8 text, "key=value" lines; a value runs to the end of its line.  A response is
 * either the request's type with VMBK_AGENT_RESPONSE set, or VMBK_AGENT_MSG_ERROR with a
 * "message=" line.  The port drops what the host sends while the agent does not hold it open, so
 * a reader that finds no magic skips a byte and tries again: the next frame resynchronises.
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
    VMBK_AGENT_MSG_DIGEST,     /* serial=, timeout= -> serial, size, algorithm, root, seconds */
    VMBK_AGENT_MSG_SHUTDOWN,   /* -> nothing; the agent exits and the appliance powers off */
    VMBK_AGENT_MSG_ERROR,      /* (response only) message= */

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

/* The value of key in a "key=value" payload, or NULL. */
char *vmbkAgentPayloadGet(const char *payload, const char *key);
