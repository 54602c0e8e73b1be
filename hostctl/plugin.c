/* vmbk: finding, loading and running plugins */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backupjob.h"
#include "digest.h"
#include "agentproto.h"
#include "plugin.h"
#include "vmbk-error.h"

void
vmbkPluginSpecFree(vmbkPluginSpec *spec)
{
    if (!spec)
        return;
    g_free(spec->name);
    g_free(spec->path);
    g_free(spec->plugin_name);
    g_free(spec->version);
    g_free(spec->kind);
    if (spec->config)
        g_ptr_array_free(spec->config, TRUE);
    g_free(spec);
}

char **
vmbkPluginDirs(void)
{
    const char *path = g_getenv("VMBK_PLUGIN_PATH");

    if (path && *path)
        return g_strsplit(path, ":", -1);
    return g_strsplit(PLUGINDIR, ":", -1);
}

/* The shared object of the plugin named name, or NULL. */
static char *
vmbkPluginFind(const char *name)
{
    g_auto(GStrv) dirs = vmbkPluginDirs();
    g_autofree char *file = g_strdup_printf("vmbk-%s-plugin.so", name);
    size_t i;

    for (i = 0; dirs[i]; i++) {
        /* Installed: DIR/vmbk-NAME-plugin.so; in the build tree: DIR/NAME/.libs/... */
        g_autofree char *a = g_build_filename(dirs[i], file, NULL);
        g_autofree char *b = g_build_filename(dirs[i], name, ".libs", file, NULL);

        if (!*dirs[i])
            continue;
        if (g_file_test(a, G_FILE_TEST_IS_REGULAR))
            return g_steal_pointer(&a);
        if (g_file_test(b, G_FILE_TEST_IS_REGULAR))
            return g_steal_pointer(&b);
    }
    return NULL;
}

vmbkPluginSpec *
vmbkPluginSpecParse(const char *arg)
{
    g_autoptr(vmbkPluginSpec) spec = g_new0(vmbkPluginSpec, 1);
    const char *colon = strchr(arg, ':');
    g_auto(GStrv) pairs = NULL;
    size_t i;

    spec->name = colon ? g_strndup(arg, colon - arg) : g_strdup(arg);
    spec->config = g_ptr_array_new_with_free_func(g_free);
    if (colon && colon[1]) {
        pairs = g_strsplit(colon + 1, ",", -1);
        for (i = 0; pairs[i]; i++) {
            const char *eq = strchr(pairs[i], '=');
            if (!eq || eq == pairs[i]) {
                vmbkError(VMBK_ERR_USAGE, "--plugin %s: '%s' is not key=value", arg, pairs[i]);
                return NULL;
            }
            g_ptr_array_add(spec->config, g_strdup(pairs[i]));
        }
    }
    if (strchr(spec->name, '/')) {
        /* A path: load that file (its name comes from the plugin itself). */
        if (!g_file_test(spec->name, G_FILE_TEST_IS_REGULAR)) {
            vmbkError(VMBK_ERR_USAGE, "--plugin: no plugin file '%s'", spec->name);
            return NULL;
        }
        spec->path = g_canonicalize_filename(spec->name, NULL);
        /* Until it says its own name: vmbk-NAME-plugin.so says NAME. */
        g_free(spec->name);
        spec->name = g_path_get_basename(spec->path);
        if (g_str_has_prefix(spec->name, "vmbk-") && g_str_has_suffix(spec->name, "-plugin.so")) {
            char *n = g_strndup(spec->name + 5, strlen(spec->name) - 5 - strlen("-plugin.so"));
            g_free(spec->name);
            spec->name = n;
        }
        return g_steal_pointer(&spec);
    }
    if (g_str_equal(spec->name, "qcow2") || g_str_equal(spec->name, "catalog")) {
        vmbkError(VMBK_ERR_USAGE, "--plugin %s: the %s plugin is built in and always runs%s",
                  spec->name, spec->name,
                  g_str_equal(spec->name, "catalog") ? " (turn it off with --no-catalog)" : "");
        return NULL;
    }
    if (!vmbkPluginNameValid(spec->name) || !(spec->path = vmbkPluginFind(spec->name))) {
        g_auto(GStrv) dirs = vmbkPluginDirs();
        g_autofree char *where = g_strjoinv(":", dirs);
        vmbkError(VMBK_ERR_USAGE, "no plugin named '%s' in %s; 'vmbk plugins' lists those "
                  "installed", spec->name, where);
        return NULL;
    }
    return g_steal_pointer(&spec);
}

/* Run 'vmbk plugin-run ARGS...' in a child; on failure report what it said, as the plugin's.  Its
 * other messages (warnings) are passed on to our stderr; its standard output goes to *out. */
static int
vmbkPluginSpawn(const vmbkPluginSpec *spec, GPtrArray *args, const char *what,
                volatile int *interrupted, char **out)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(GString) errors = g_string_new(NULL);
    g_autoptr(GString) output = g_string_new(NULL);
    g_autofree char *last = NULL;
    g_autofree char *self = NULL;
    GPid pid;
    int fds[2], status = 0, open_fds = 2, asked = 0;
    guint i;
    char **lines;

    /* Ourselves, by name, so that ps shows what runs. */
    if (!(self = g_file_read_link("/proc/self/exe", NULL)))
        self = g_strdup("/proc/self/exe");
    g_ptr_array_add(argv, self);
    g_ptr_array_add(argv, (char *) "plugin-run");
    g_ptr_array_add(argv, (char *) "--plugin");
    g_ptr_array_add(argv, spec->path);
    for (i = 0; i < spec->config->len; i++) {
        g_ptr_array_add(argv, (char *) "--config");
        g_ptr_array_add(argv, g_ptr_array_index(spec->config, i));
    }
    for (i = 0; args && i < args->len; i++)
        g_ptr_array_add(argv, g_ptr_array_index(args, i));
    g_ptr_array_add(argv, NULL);

    if (!g_spawn_async_with_pipes(NULL, (char **) argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  NULL, NULL, &pid, NULL, &fds[0], &fds[1], &err)) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot start the runner of plugin '%s': %s", spec->name,
                  err->message);
        return -1;
    }
    while (open_fds > 0) {
        struct pollfd pfd[2] = { { .fd = fds[0], .events = POLLIN },
                                 { .fd = fds[1], .events = POLLIN } };

        /* Interrupted: ask the runner to stop; a plugin deaf to that for 10 s is killed. */
        if (interrupted && *interrupted)
            kill(pid, ++asked > 50 ? SIGKILL : SIGTERM);
        if (poll(pfd, 2, 200) <= 0)
            continue;
        for (i = 0; i < 2; i++) {
            char buf[4096];
            ssize_t n;

            if (fds[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if ((n = read(fds[i], buf, sizeof(buf))) <= 0) {
                close(fds[i]);
                fds[i] = -1;
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            g_string_append_len(i == 0 ? output : errors, buf, n);
        }
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(pid);

    /* All lines but a failure's last are the runner's warnings. */
    lines = g_strsplit(g_strchomp(errors->str), "\n", -1);
    for (i = 0; lines[i] && *lines[i]; i++) {
        if (!lines[i + 1] && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            last = g_strdup(lines[i]);
            break;
        }
        fprintf(stderr, "%s\n", lines[i]);
    }
    g_strfreev(lines);

    if (WIFSIGNALED(status)) {
        vmbkError(VMBK_ERR_OPERATION, "plugin '%s' crashed (%s) %s", spec->name,
                  g_strsignal(WTERMSIG(status)), what);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const char *msg = last;
        if (msg && g_str_has_prefix(msg, "vmbk plugin-run: "))
            msg += strlen("vmbk plugin-run: ");
        else if (msg && g_str_has_prefix(msg, "vmbk: "))
            msg += strlen("vmbk: ");
        vmbkError(WIFEXITED(status) && WEXITSTATUS(status) == 2 ? VMBK_ERR_USAGE
                                                                 : VMBK_ERR_OPERATION,
                  "plugin '%s' failed %s: %s", spec->name, what, msg ? msg : "no message");
        return -1;
    }
    if (out)
        *out = g_string_free(g_steal_pointer(&output), FALSE);
    return 0;
}

int
vmbkPluginCheck(vmbkPluginSpec *spec)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new();

    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;
    g_auto(GStrv) words = NULL;

    g_ptr_array_add(args, (char *) "--check");
    if (vmbkPluginSpawn(spec, args, "to load", NULL, &out) < 0)
        return -1;
    /* "NAME VERSION", then key=value lines */
    lines = g_strsplit(out, "\n", 2);
    words = g_strsplit(g_strstrip(lines[0]), " ", 2);
    if (!words[0] || !words[1]) {
        vmbkError(VMBK_ERR_INTERNAL, "the runner of plugin '%s' said '%s' to --check",
                  spec->name, out);
        return -1;
    }
    g_free(spec->plugin_name);
    spec->plugin_name = g_strdup(words[0]);
    g_free(spec->version);
    spec->version = g_strdup(words[1]);
    g_free(spec->kind);
    if (lines[1]) {
        g_autofree char *view = vmbkAgentPayloadGet(lines[1], "view");
        spec->kind = vmbkAgentPayloadGet(lines[1], "kind");
        spec->full_view = g_strcmp0(view, "full") == 0;
    }
    return 0;
}

gint
vmbkPluginStrCmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The outputs the run left in the plugin's folder, with their digests. */
static GPtrArray *
vmbkPluginCollect(const char *dir)
{
    g_autoptr(GPtrArray) outputs =
        g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointOutputFree);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    guint i;

    while (d && (name = g_dir_read_name(d)))
        g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, vmbkPluginStrCmp);
    for (i = 0; i < names->len; i++) {
        g_autofree char *path = g_build_filename(dir, g_ptr_array_index(names, i), NULL);
        vmbkPointOutput *o = g_new0(vmbkPointOutput, 1);

        g_ptr_array_add(outputs, o);
        o->name = g_strdup(g_ptr_array_index(names, i));
        if (!(o->digest = vmbkDigestFileTree(path, &o->size)))
            return NULL;
    }
    return g_steal_pointer(&outputs);
}

int
vmbkPluginRunPoint(const vmbkPluginSpec *spec, const vmbkPluginRun *run, vmbkPointPlugin **out)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *what = g_strdup_printf("at point %s of domain '%s'", run->id, run->domain);
    g_autofree char *jobdir = NULL;
    guint i;
    int r;

#define ARG(opt, value)                                  \
    do {                                                 \
        g_ptr_array_add(args, g_strdup(opt));            \
        g_ptr_array_add(args, g_strdup(value));          \
    } while (0)
    ARG("--domain", run->domain);
    ARG("--uuid", run->uuid);
    ARG("--id", run->id);
    ARG("--level", run->level);
    ARG("--time", run->time);
    ARG("--consistency", run->consistency);
    ARG("--dir", run->dir);
    if (run->parent) {
        ARG("--parent", run->parent);
        ARG("--parent-dir", run->parent_dir);
    }
    for (i = 0; i < run->targets->len; i++) {
        g_autofree char *d = g_strdup_printf("%s=%s", (char *) g_ptr_array_index(run->targets, i),
                                             (char *) g_ptr_array_index(run->images, i));
        ARG("--disk", d);
    }
    /* Ours, not the runner's: whatever a crashed runner left serving there, we stop. */
    if (!(jobdir = vmbkJobDirCreate(run->uuid, "plugin")))
        return -1;
    ARG("--jobdir", jobdir);
#undef ARG
    r = vmbkPluginSpawn(spec, args, what, run->interrupted, NULL);
    vmbkJobDirRemove(jobdir);
    if (r < 0)
        return -1;
    vmbkDebug("plugin %s: runner done; recording its outputs", spec->name);
    return vmbkPluginRecord(spec, run->dir, out);
}

int
vmbkPluginRecord(const vmbkPluginSpec *spec, const char *pointdir, vmbkPointPlugin **out)
{
    g_autofree char *dir = NULL;
    vmbkPointPlugin *pp;
    guint i;

    /* The runner names the folder after the plugin's own name. */
    pp = g_new0(vmbkPointPlugin, 1);
    *out = pp;
    pp->name = g_strdup(spec->plugin_name);
    pp->version = g_strdup(spec->version);
    pp->config = g_ptr_array_new_with_free_func(g_free);
    for (i = 0; i < spec->config->len; i++)
        g_ptr_array_add(pp->config, g_strdup(g_ptr_array_index(spec->config, i)));
    dir = g_build_filename(pointdir, pp->name, NULL);
    if (!(pp->outputs = vmbkPluginCollect(dir)))
        return -1;
    return 0;
}
