/* vmbk: talking to vmbk-agent in the appliance (see common/agentproto.h for the frames)
 *
 * Each vmbk command connects anew to the channel's unix socket (qemu listens on it).  What is
 * written before the agent holds its port open is dropped, so HELLO is repeated, each time with a
 * new id, until an answer comes; answers to other ids are stale and skipped.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "vmbk-error.h"

#define HELLO_INTERVAL_MS 500

static int
vmbkAgentSocketConnect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int
vmbkAgentWrite(vmbkAgent *agent, uint16_t type, uint32_t id, const char *payload)
{
    g_autoptr(GBytes) frame = vmbkAgentFrameEncode(type, id, payload, strlen(payload));

    return vmbkAgentSendFrame(agent, frame);
}

int
vmbkAgentSendFrame(vmbkAgent *agent, GBytes *frame)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(frame, &len);

    while (len > 0) {
        ssize_t r = send(agent->fd, p, len, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent channel '%s' closed: the "
                      "appliance stopped or crashed; see 'vmbk appliance status'", agent->socket);
            return -1;
        }
        if (r < 0) {
            vmbkErrorSystem(errno, "cannot write to the appliance's agent channel '%s'",
                            agent->socket);
            return -1;
        }
        p += r;
        len -= r;
    }
    return 0;
}

/* Wait for the response to id until deadline (monotonic µs): 1 with *out, 0 on timeout, -1 on
 * error (reported). */
static int
vmbkAgentWait(vmbkAgent *agent, uint32_t id, gint64 deadline, volatile int *interrupted,
              vmbkAgentFrame **out)
{
    uint8_t chunk[65536];

    for (;;) {
        g_autoptr(vmbkAgentFrame) frame = NULL;
        struct pollfd pfd = { .fd = agent->fd, .events = POLLIN };
        size_t skipped = 0;
        gint64 left;
        ssize_t r;

        if (vmbkAgentFrameTake(agent->in, &frame, &skipped) == 1) {
            if (frame->id == id) {
                *out = g_steal_pointer(&frame);
                return 1;
            }
            vmbkDebug("agent: skipping a stale %s response (id %u)",
                      vmbkAgentMsgName(frame->type), frame->id);
            continue;
        }
        if (interrupted && *interrupted) {
            vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *interrupted);
            return -1;
        }
        left = (deadline - g_get_monotonic_time()) / 1000;
        if (left <= 0)
            return 0;
        /* Wake up now and then to notice a signal. */
        r = poll(&pfd, 1, MIN(left, 200));
        if (r < 0 && errno != EINTR) {
            vmbkErrorSystem(errno, "cannot wait for the appliance's agent");
            return -1;
        }
        if (r <= 0)
            continue;
        r = recv(agent->fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent channel '%s' closed: the "
                      "appliance stopped or crashed; see 'vmbk appliance status'", agent->socket);
            return -1;
        }
        g_byte_array_append(agent->in, chunk, r);
    }
}

vmbkAgent *
vmbkAgentConnect(const char *socket, unsigned int timeout_ms)
{
    g_autoptr(vmbkAgent) agent = g_new0(vmbkAgent, 1);
    gint64 deadline = g_get_monotonic_time() + (gint64) timeout_ms * 1000;
    int e = 0;

    agent->fd = -1;
    agent->socket = g_strdup(socket);
    agent->in = g_byte_array_new();
    agent->next_id = g_random_int_range(1, 1 << 30);
    while ((agent->fd = vmbkAgentSocketConnect(socket)) < 0) {
        e = errno;
        if (g_get_monotonic_time() > deadline) {
            vmbkErrorSystem(e, "cannot connect to the appliance's agent channel '%s'", socket);
            return NULL;
        }
        g_usleep(50 * 1000);
    }
    for (;;) {
        g_autoptr(vmbkAgentFrame) frame = NULL;
        uint32_t id = agent->next_id++;
        gint64 until = MIN(deadline, g_get_monotonic_time() + HELLO_INTERVAL_MS * 1000);
        int r;

        if (vmbkAgentWrite(agent, VMBK_AGENT_MSG_HELLO, id, "") < 0)
            return NULL;
        if ((r = vmbkAgentWait(agent, id, until, NULL, &frame)) < 0)
            return NULL;
        if (r == 1) {
            if (frame->type != (VMBK_AGENT_MSG_HELLO | VMBK_AGENT_RESPONSE)) {
                vmbkError(VMBK_ERR_OPERATION, "the appliance's agent answered HELLO with %s",
                          vmbkAgentMsgName(frame->type));
                return NULL;
            }
            agent->hello = g_strdup(frame->payload->str);
            return g_steal_pointer(&agent);
        }
        if (g_get_monotonic_time() >= deadline) {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent did not answer within %u s; "
                      "see its console log, or 'vmbk appliance stop' and start it again",
                      timeout_ms / 1000);
            return NULL;
        }
    }
}

void
vmbkAgentClose(vmbkAgent *agent)
{
    if (!agent)
        return;
    if (agent->fd >= 0)
        close(agent->fd);
    g_byte_array_unref(agent->in);
    g_free(agent->socket);
    g_free(agent->hello);
    g_free(agent);
}

char *
vmbkAgentRequest(vmbkAgent *agent, vmbkAgentMsg type, const char *payload,
                 unsigned int timeout_ms, volatile int *interrupted)
{
    g_autoptr(vmbkAgentFrame) frame = NULL;
    uint32_t id = agent->next_id++;
    int r;

    /* Interrupted: start nothing the agent would then be busy with. */
    if (interrupted && *interrupted) {
        vmbkError(VMBK_ERR_OPERATION, "interrupted by signal %d", (int) *interrupted);
        return NULL;
    }
    if (vmbkAgentWrite(agent, type, id, payload) < 0)
        return NULL;
    r = vmbkAgentWait(agent, id, g_get_monotonic_time() + (gint64) timeout_ms * 1000,
                      interrupted, &frame);
    if (r < 0)
        return NULL;
    if (r == 0) {
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent did not answer %s within %u s",
                  vmbkAgentMsgName(type), timeout_ms / 1000);
        return NULL;
    }
    if (frame->type == VMBK_AGENT_MSG_ERROR) {
        g_autofree char *msg = vmbkAgentPayloadGet(frame->payload->str, "message");
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent failed %s: %s",
                  vmbkAgentMsgName(type), msg ? msg : "no message");
        return NULL;
    }
    if (frame->type != (type | VMBK_AGENT_RESPONSE)) {
        vmbkError(VMBK_ERR_OPERATION, "the appliance's agent answered %s with %s",
                  vmbkAgentMsgName(type), vmbkAgentMsgName(frame->type));
        return NULL;
    }
    return g_string_free(g_steal_pointer(&frame->payload), FALSE);
}

int
vmbkAgentNext(vmbkAgent *agent, uint32_t id, volatile int *interrupted, vmbkAgentFrame **out)
{
    return vmbkAgentWait(agent, id, G_MAXINT64, interrupted, out);
}
