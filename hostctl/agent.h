/* vmbk: talking to vmbk-agent in the appliance over its virtio-serial channel (unix socket) */
#pragma once

#include <stdint.h>

#include <glib.h>

#include "agentproto.h"

typedef struct _vmbkAgent vmbkAgent;
struct _vmbkAgent {
    int fd;
    char *socket;
    uint32_t next_id;
    GByteArray *in;
    char *hello; /* the HELLO response's payload */
};

/* Connect to the channel's socket and say HELLO until the agent answers, for at most timeout_ms
 * (the socket appears when qemu starts; the agent answers once the appliance has booted). */
vmbkAgent *vmbkAgentConnect(const char *socket, unsigned int timeout_ms);
void vmbkAgentClose(vmbkAgent *agent);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkAgent, vmbkAgentClose);

/* One request and its response's payload, or NULL (reported: the agent's error message, or no
 * answer within timeout_ms, or the channel closed).  interrupted: stop waiting when it is set
 * (a signal), may be NULL. */
char *vmbkAgentRequest(vmbkAgent *agent, vmbkAgentMsg type, const char *payload,
                       unsigned int timeout_ms, volatile int *interrupted);

/* For conversations (a plugin run): send a frame, and take the next frame with this id, waiting
 * as long as the channel is open; -1 (reported) when it closes or on interrupted. */
int vmbkAgentSendFrame(vmbkAgent *agent, GBytes *frame);
int vmbkAgentNext(vmbkAgent *agent, uint32_t id, volatile int *interrupted,
                  vmbkAgentFrame **out);
