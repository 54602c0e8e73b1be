/* vmbk: loading a plugin and the helpers vmbk-plugin.h promises it (see pluginapi.h) */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "pluginapi.h"
#include "vmbk-error.h"

bool
vmbkPluginNameValid(const char *name)
{
    const char *p;

    if (!*name || strlen(name) > 64)
        return false;
    for (p = name; *p; p++) {
        if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '-' && *p != '_')
            return false;
    }
    return true;
}

vmbkPluginLoaded *
vmbkPluginLoad(const char *path)
{
    g_autoptr(vmbkPluginLoaded) pl = g_new0(vmbkPluginLoaded, 1);
    struct vmbk_plugin *(*init)(void);
    struct vmbk_plugin *p;

    pl->path = g_strdup(path);
    if (!(pl->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        vmbkError(VMBK_ERR_OPERATION, "cannot load the plugin '%s': %s", path, dlerror());
        return NULL;
    }
    *(void **) &init = dlsym(pl->dl, "vmbk_plugin_init");
    if (!init) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a vmbk plugin: it has no vmbk_plugin_init",
                  path);
        return NULL;
    }
    if (!(p = init())) {
        vmbkError(VMBK_ERR_OPERATION, "the plugin '%s' did not register (vmbk_plugin_init "
                  "returned NULL)", path);
        return NULL;
    }
    if (p->_api_version != VMBK_API_VERSION) {
        vmbkError(VMBK_ERR_OPERATION, "the plugin '%s' uses API version %d; this vmbk knows "
                  "version %d only: rebuild it against this vmbk's vmbk-plugin.h", path,
                  p->_api_version, VMBK_API_VERSION);
        return NULL;
    }
    if (p->_struct_size < offsetof(struct vmbk_plugin, description)) {
        vmbkError(VMBK_ERR_OPERATION, "the plugin '%s' is damaged: its struct is %llu bytes",
                  path, (unsigned long long) p->_struct_size);
        return NULL;
    }
    /* Zero-filled, then as much of the plugin's as it has: newer fields stay NULL. */
    memcpy(&pl->p, p, MIN(sizeof(pl->p), p->_struct_size));
    if (!pl->p.name || !vmbkPluginNameValid(pl->p.name) || !pl->p.version) {
        vmbkError(VMBK_ERR_OPERATION, "the plugin '%s' has no valid name or version (a name "
                  "is lower case letters, digits, '-' and '_')", path);
        return NULL;
    }
    if (!pl->p.disk_begin && !pl->p.fs_begin) {
        vmbkError(VMBK_ERR_OPERATION, "the plugin '%s' does nothing: it has neither disk_begin "
                  "nor fs_begin", pl->p.name);
        return NULL;
    }
    return g_steal_pointer(&pl);
}

void
vmbkPluginUnload(vmbkPluginLoaded *pl)
{
    if (!pl)
        return;
    /* The plugin's own strings live in the object: never dlclose under them. */
    g_free(pl->path);
    g_free(pl);
}

const char *
vmbkPluginKind(const struct vmbk_plugin *p)
{
    if (p->disk_begin && p->fs_begin)
        return "block,file";
    return p->disk_begin ? "block" : "file";
}

int
vmbkPluginConfigure(vmbkPluginLoaded *pl, char **config)
{
    size_t i;

    if (pl->p.load && pl->p.load() < 0)
        goto failed;
    for (i = 0; config && config[i]; i++) {
        g_autofree char *key = g_strdup(config[i]);
        char *eq = strchr(key, '=');

        *eq = '\0';
        if (!pl->p.config) {
            vmbkError(VMBK_ERR_USAGE, "it takes no parameters, not '%s'", key);
            return -1;
        }
        if (pl->p.config(key, eq + 1) < 0) {
            g_autofree char *why = g_strdup(vmbkErrorMessage());
            vmbkErrorReset();
            vmbkError(VMBK_ERR_USAGE, "%s=%s: %s", key, eq + 1, why ? why : "rejected");
            return -1;
        }
    }
    if (pl->p.config_complete && pl->p.config_complete() < 0)
        goto failed;
    return 0;
 failed:
    {
        g_autofree char *why = g_strdup(vmbkErrorMessage());
        vmbkErrorReset();
        vmbkError(VMBK_ERR_USAGE, "%s", why ? why : "its configuration was refused");
    }
    return -1;
}

void
vmbk_error(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vmbkError(VMBK_ERR_OPERATION, "%s", msg);
}

void
vmbk_debug(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    vmbkDebug("%s", msg);
}

int
vmbk_parse_bool(const char *value)
{
    static const char *const yes[] = { "1", "yes", "true", "on", NULL };
    static const char *const no[] = { "0", "no", "false", "off", NULL };
    g_autofree char *v = g_ascii_strdown(value ? value : "", -1);

    if (g_strv_contains(yes, v))
        return 1;
    if (g_strv_contains(no, v))
        return 0;
    vmbk_error("'%s' is not a boolean (use yes or no)", value ? value : "");
    return -1;
}

int
vmbk_parse_size(const char *value, uint64_t *size)
{
    char *end;
    uint64_t n;
    int shift = 0;

    if (!value || !g_ascii_isdigit(*value))
        goto bad;
    errno = 0;
    n = g_ascii_strtoull(value, &end, 10);
    if (errno)
        goto bad;
    switch (g_ascii_toupper(*end)) {
    case '\0': break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: goto bad;
    }
    if (*end && end[1] && !(g_ascii_toupper(end[1]) == 'B' || g_ascii_toupper(end[1]) == 'I'))
        goto bad;
    if (shift && n > (UINT64_MAX >> shift))
        goto bad;
    *size = n << shift;
    return 0;
 bad:
    vmbk_error("'%s' is not a size (a number with an optional K, M, G or T)",
               value ? value : "");
    return -1;
}
