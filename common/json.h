/* vmbk: a small JSON writer for --json output */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

typedef struct _vmbkJson vmbkJson;

vmbkJson *vmbkJsonNew(void);
void vmbkJsonFree(vmbkJson *json);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkJson, vmbkJsonFree);

void vmbkJsonBeginObject(vmbkJson *json);
void vmbkJsonBeginArray(vmbkJson *json);
void vmbkJsonEnd(vmbkJson *json);
/* Inside an object: the key of the next value. */
void vmbkJsonKey(vmbkJson *json, const char *key);
void vmbkJsonString(vmbkJson *json, const char *str); /* NULL is null */
void vmbkJsonInt(vmbkJson *json, int64_t val);
void vmbkJsonBool(vmbkJson *json, bool val);
void vmbkJsonNull(vmbkJson *json);

#define vmbkJsonKeyString(j, k, v) (vmbkJsonKey(j, k), vmbkJsonString(j, v))
#define vmbkJsonKeyInt(j, k, v) (vmbkJsonKey(j, k), vmbkJsonInt(j, v))
#define vmbkJsonKeyBool(j, k, v) (vmbkJsonKey(j, k), vmbkJsonBool(j, v))

/* Print the finished document and a newline. */
void vmbkJsonPrint(vmbkJson *json, FILE *fp);
