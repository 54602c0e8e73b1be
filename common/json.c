/* vmbk: a small JSON writer for --json output
 *
 * Pretty-printed with two spaces, as jq prints; strings are escaped per RFC 8259 and invalid UTF-8
 * (file names from a guest can be anything) is replaced by U+FFFD.
 */
#include <config.h>

#include <inttypes.h>

#include "json.h"

typedef struct {
    char close;     /* '}' or ']' */
    gboolean empty; /* no element written yet */
} vmbkJsonLevel;

struct _vmbkJson {
    GString *buf;
    GArray *levels; /* of vmbkJsonLevel, one per open container */
    bool after_key;
};

vmbkJson *
vmbkJsonNew(void)
{
    vmbkJson *json = g_new0(vmbkJson, 1);

    json->buf = g_string_new(NULL);
    json->levels = g_array_new(FALSE, FALSE, sizeof(vmbkJsonLevel));
    return json;
}

void
vmbkJsonFree(vmbkJson *json)
{
    if (!json)
        return;
    g_string_free(json->buf, TRUE);
    g_array_free(json->levels, TRUE);
    g_free(json);
}

static void
vmbkJsonNewline(vmbkJson *json)
{
    g_string_append_c(json->buf, '\n');
    for (guint i = 0; i < json->levels->len; i++)
        g_string_append(json->buf, "  ");
}

/* Separator and indentation before a value or a key. */
static void
vmbkJsonValueStart(vmbkJson *json)
{
    vmbkJsonLevel *level;

    if (json->after_key) {
        json->after_key = false;
        return;
    }
    if (json->levels->len == 0)
        return;
    level = &g_array_index(json->levels, vmbkJsonLevel, json->levels->len - 1);
    if (!level->empty)
        g_string_append_c(json->buf, ',');
    level->empty = FALSE;
    vmbkJsonNewline(json);
}

static void
vmbkJsonBegin(vmbkJson *json, char open, char close)
{
    vmbkJsonLevel level = { close, TRUE };

    vmbkJsonValueStart(json);
    g_string_append_c(json->buf, open);
    g_array_append_val(json->levels, level);
}

void
vmbkJsonBeginObject(vmbkJson *json)
{
    vmbkJsonBegin(json, '{', '}');
}

void
vmbkJsonBeginArray(vmbkJson *json)
{
    vmbkJsonBegin(json, '[', ']');
}

void
vmbkJsonEnd(vmbkJson *json)
{
    vmbkJsonLevel level = g_array_index(json->levels, vmbkJsonLevel, json->levels->len - 1);

    g_array_set_size(json->levels, json->levels->len - 1);
    if (!level.empty)
        vmbkJsonNewline(json);
    g_string_append_c(json->buf, level.close);
}

static void
vmbkJsonQuote(GString *buf, const char *str)
{
    const char *p = str;

    g_string_append_c(buf, '"');
    while (*p) {
        gunichar c = g_utf8_get_char_validated(p, -1);

        if (c == (gunichar) -1 || c == (gunichar) -2) {
            g_string_append(buf, "\\ufffd");
            p++;
            continue;
        }
        switch (c) {
        case '"':
            g_string_append(buf, "\\\"");
            break;
        case '\\':
            g_string_append(buf, "\\\\");
            break;
        case '\n':
            g_string_append(buf, "\\n");
            break;
        case '\r':
            g_string_append(buf, "\\r");
            break;
        case '\t':
            g_string_append(buf, "\\t");
            break;
        default:
            if (c < 0x20)
                g_string_append_printf(buf, "\\u%04x", c);
            else
                g_string_append_len(buf, p, g_utf8_next_char(p) - p);
        }
        p = g_utf8_next_char(p);
    }
    g_string_append_c(buf, '"');
}

void
vmbkJsonKey(vmbkJson *json, const char *key)
{
    vmbkJsonValueStart(json);
    vmbkJsonQuote(json->buf, key);
    g_string_append(json->buf, ": ");
    json->after_key = true;
}

void
vmbkJsonString(vmbkJson *json, const char *str)
{
    vmbkJsonValueStart(json);
    if (str)
        vmbkJsonQuote(json->buf, str);
    else
        g_string_append(json->buf, "null");
}

void
vmbkJsonInt(vmbkJson *json, int64_t val)
{
    vmbkJsonValueStart(json);
    g_string_append_printf(json->buf, "%" PRId64, val);
}

void
vmbkJsonBool(vmbkJson *json, bool val)
{
    vmbkJsonValueStart(json);
    g_string_append(json->buf, val ? "true" : "false");
}

void
vmbkJsonNull(vmbkJson *json)
{
    vmbkJsonValueStart(json);
    g_string_append(json->buf, "null");
}

void
vmbkJsonPrint(vmbkJson *json, FILE *fp)
{
    fprintf(fp, "%s\n", json->buf->str);
    fflush(fp);
}
