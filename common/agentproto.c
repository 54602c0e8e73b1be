/* vmbk: the protocol between hostctl and vmbk-agent (see agentproto.h) */
#include <config.h>

#include <string.h>

#include "agentproto.h"

static uint32_t crc_table[256];
static GOnce crc_once = G_ONCE_INIT;

static gpointer
vmbkAgentCrcInit(gpointer unused G_GNUC_UNUSED)
{
    uint32_t i, j, c;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    return NULL;
}

uint32_t
vmbkAgentCrc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    g_once(&crc_once, vmbkAgentCrcInit, NULL);
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void
vmbkAgentFrameFree(vmbkAgentFrame *frame)
{
    if (!frame)
        return;
    if (frame->payload)
        g_string_free(frame->payload, TRUE);
    g_free(frame);
}

const char *
vmbkAgentMsgName(uint16_t type)
{
    static const char *const names[] = {
        [VMBK_AGENT_MSG_HELLO] = "HELLO", [VMBK_AGENT_MSG_PING] = "PING",
        [VMBK_AGENT_MSG_LIST_DISKS] = "LIST_DISKS", [VMBK_AGENT_MSG_DIGEST] = "DIGEST",
        [VMBK_AGENT_MSG_SHUTDOWN] = "SHUTDOWN", [VMBK_AGENT_MSG_ERROR] = "ERROR",
        [VMBK_AGENT_MSG_PLUGIN_RUN] = "PLUGIN_RUN", [VMBK_AGENT_MSG_PLUGIN_DISK] = "PLUGIN_DISK",
        [VMBK_AGENT_MSG_PLUGIN_GO] = "PLUGIN_GO", [VMBK_AGENT_MSG_OUTPUT] = "OUTPUT",
        [VMBK_AGENT_MSG_PLUGIN_FS] = "PLUGIN_FS",
        [VMBK_AGENT_MSG_CANCEL] = "CANCEL",
        [VMBK_AGENT_MSG_FILES_MOUNT] = "FILES_MOUNT", [VMBK_AGENT_MSG_FILES_LS] = "FILES_LS",
        [VMBK_AGENT_MSG_FILES_READ] = "FILES_READ", [VMBK_AGENT_MSG_FILES_UMOUNT] = "FILES_UMOUNT",
    };

    type &= ~VMBK_AGENT_RESPONSE;
    /* The values have gaps (7-15, 21-31): a table entry there is NULL, and past it is none. */
    return type > 0 && type < G_N_ELEMENTS(names) && names[type] ? names[type] : "UNKNOWN";
}

static void
vmbkPut16(uint8_t *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

void
vmbkAgentPut32(uint8_t *p, uint32_t v)
{
    vmbkPut16(p, v & 0xffff);
    vmbkPut16(p + 2, v >> 16);
}

static uint16_t
vmbkGet16(const uint8_t *p)
{
    return p[0] | (p[1] << 8);
}

uint32_t
vmbkAgentGet32(const uint8_t *p)
{
    return vmbkGet16(p) | ((uint32_t) vmbkGet16(p + 2) << 16);
}

static uint32_t
vmbkAgentFrameCrc(const uint8_t *header, const void *payload, size_t len)
{
    uint8_t h[VMBK_AGENT_HEADER_SIZE];

    memcpy(h, header, sizeof(h));
    vmbkAgentPut32(h + 16, 0);
    return vmbkAgentCrc32(vmbkAgentCrc32(0, h, sizeof(h)), payload, len);
}

GBytes *
vmbkAgentFrameEncode(uint16_t type, uint32_t id, const char *payload, size_t len)
{
    uint8_t *buf = g_malloc0(VMBK_AGENT_HEADER_SIZE + len);

    memcpy(buf, VMBK_AGENT_MAGIC, 4);
    vmbkPut16(buf + 4, VMBK_AGENT_PROTO_VERSION);
    vmbkPut16(buf + 6, type);
    vmbkAgentPut32(buf + 8, id);
    vmbkAgentPut32(buf + 12, len);
    if (len)
        memcpy(buf + VMBK_AGENT_HEADER_SIZE, payload, len);
    vmbkAgentPut32(buf + 16, vmbkAgentFrameCrc(buf, payload, len));
    return g_bytes_new_take(buf, VMBK_AGENT_HEADER_SIZE + len);
}

int
vmbkAgentFrameTake(GByteArray *buf, vmbkAgentFrame **out, size_t *skipped)
{
    const uint8_t *h;
    uint32_t len;

    while (buf->len >= 4) {
        h = buf->data;
        if (memcmp(h, VMBK_AGENT_MAGIC, 4) != 0) {
            g_byte_array_remove_index(buf, 0);
            (*skipped)++;
            continue;
        }
        if (buf->len < VMBK_AGENT_HEADER_SIZE)
            return 0;
        len = vmbkAgentGet32(h + 12);
        if (vmbkGet16(h + 4) != VMBK_AGENT_PROTO_VERSION || len > VMBK_AGENT_MAX_PAYLOAD) {
            g_byte_array_remove_index(buf, 0);
            (*skipped)++;
            continue;
        }
        if (buf->len < VMBK_AGENT_HEADER_SIZE + len)
            return 0;
        if (vmbkAgentGet32(h + 16) != vmbkAgentFrameCrc(h, h + VMBK_AGENT_HEADER_SIZE, len)) {
            g_byte_array_remove_index(buf, 0);
            (*skipped)++;
            continue;
        }
        *out = g_new0(vmbkAgentFrame, 1);
        (*out)->version = vmbkGet16(h + 4);
        (*out)->type = vmbkGet16(h + 6);
        (*out)->id = vmbkAgentGet32(h + 8);
        (*out)->payload = g_string_new_len((const char *) h + VMBK_AGENT_HEADER_SIZE, len);
        g_byte_array_remove_range(buf, 0, VMBK_AGENT_HEADER_SIZE + len);
        return 1;
    }
    return 0;
}

char *
vmbkAgentPayloadGet(const char *payload, const char *key)
{
    size_t klen = strlen(key);
    const char *p = payload;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, key, klen) == 0 && p[klen] == '=')
            return g_strndup(p + klen + 1, (eol ? eol : p + strlen(p)) - (p + klen + 1));
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

GBytes *
vmbkAgentFrameEncodeData(uint16_t type, uint32_t id, const char *header, const void *data,
                         size_t len)
{
    g_autoptr(GString) payload = g_string_new(header);

    g_string_append_c(payload, '\n');
    g_string_append_len(payload, data, len);
    return vmbkAgentFrameEncode(type, id, payload->str, payload->len);
}

char *
vmbkAgentPayloadSplit(const GString *payload, const uint8_t **data, size_t *len)
{
    const char *end = g_strstr_len(payload->str, payload->len, "\n\n");

    if (!end) {
        *data = NULL;
        *len = 0;
        return g_strdup(payload->str);
    }
    *data = (const uint8_t *) end + 2;
    *len = payload->len - (end + 2 - payload->str);
    return g_strndup(payload->str, end + 1 - payload->str);
}

char *
vmbkAgentEscape(const char *value)
{
    return g_uri_escape_string(value, NULL, FALSE);
}

char *
vmbkAgentUnescape(const char *value)
{
    return value ? g_uri_unescape_string(value, NULL) : NULL;
}

void
vmbkAgentPut64(uint8_t *p, uint64_t v)
{
    vmbkAgentPut32(p, v & 0xffffffff);
    vmbkAgentPut32(p + 4, v >> 32);
}

uint64_t
vmbkAgentGet64(const uint8_t *p)
{
    return vmbkAgentGet32(p) | (uint64_t) vmbkAgentGet32(p + 4) << 32;
}
