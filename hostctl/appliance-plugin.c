/* vmbk: running a plugin inside the backup appliance (see agentproto.h)
 *
 * The plugin's code runs in the appliance, on the point's images hotplugged read-only; nothing
 * of it runs on the host.  For a block-level plugin vmbk works out the extents each disk gives it
 * (as the host's runner does, from qemu-nbd's allocation depth); for a file-level one it names
 * the filesystems to walk, those of the point's inspection the host's runner would walk, which
 * the agent mounts read-only and walks as the host's runner does.  It sends them with the
 * plugin's shared object, and then serves the plugin's OUTPUT frames with the same sink as the
 * host's runner: vmbk alone creates, writes and names the files of the point.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <libnbd.h>

#include "appliance.h"
#include "appliancefs.h"
#include "backupjob.h"
#include "inspection.h"
#include "runner.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

/* What a plugin can send to the appliance. */
#define VMBK_APPLIANCE_PLUGIN_MAX (VMBK_AGENT_MAX_PAYLOAD - 64 * 1024)

typedef struct {
    uint32_t handle;
    struct vmbk_output *out;
    char *error; /* the first failure of a write, reported by the next close */
} vmbkRemoteOutput;

static void
vmbkRemoteOutputFree(vmbkRemoteOutput *o)
{
    g_free(o->error);
    g_free(o);
}

typedef struct {
    vmbkApplianceSession *s;
    uint32_t id;
    struct vmbk_sink *sink;
    GHashTable *outputs; /* handle -> vmbkRemoteOutput */
    GByteArray *extents;
    const vmbkApplianceDisk *disk;
    const char *parent;
    uint64_t size;
} vmbkRemoteRun;

static int
vmbkRemoteSend(vmbkRemoteRun *r, uint16_t type, const char *header, const void *data,
               size_t len)
{
    g_autoptr(GBytes) frame = vmbkAgentFrameEncodeData(type, r->id, header, data, len);

    return vmbkAgentSendFrame(r->s->agent, frame);
}

/* Send the extents gathered so far for the disk. */
static int
vmbkRemoteFlushExtents(vmbkRemoteRun *r)
{
    g_autofree char *header = g_strdup_printf("target=%s\nserial=%s\nsize=%" PRIu64 "\n%s%s%s",
                                              r->disk->target, r->disk->serial, r->size,
                                              r->parent ? "parent=" : "",
                                              r->parent ? r->parent : "", r->parent ? "\n" : "");
    int ret = vmbkRemoteSend(r, VMBK_AGENT_MSG_PLUGIN_DISK, header, r->extents->data,
                             r->extents->len);

    g_byte_array_set_size(r->extents, 0);
    return ret;
}

static int
vmbkRemoteExtent(void *opaque, uint64_t offset, uint64_t length, int type)
{
    vmbkRemoteRun *r = opaque;
    uint8_t e[VMBK_AGENT_EXTENT_SIZE];

    vmbkAgentPut64(e, offset);
    vmbkAgentPut64(e + 8, length);
    vmbkAgentPut32(e + 16, type);
    g_byte_array_append(r->extents, e, sizeof(e));
    if (r->extents->len + VMBK_AGENT_EXTENT_SIZE > VMBK_AGENT_DATA_MAX)
        return vmbkRemoteFlushExtents(r);
    return 0;
}

/* One PLUGIN_DISK conversation: the disk's extents, from the image's export. */
static int
vmbkRemoteDisk(vmbkRemoteRun *r, const vmbkApplianceDisk *d, bool changed,
               volatile int *interrupted)
{
    g_autoptr(vmbkNbd) nbd = NULL;
    int64_t size;

    if (!(nbd = vmbkApplianceDiskConnect(d, &size)))
        return -1;
    r->disk = d;
    r->size = size;
    if (vmbkRunnerExtents(nbd, d->target, size, changed, vmbkRemoteExtent, r, interrupted) < 0)
        return -1;
    nbd_shutdown(nbd, 0);
    /* Also a disk with no extents is announced: the plugin sees disk_begin and disk_end. */
    return vmbkRemoteFlushExtents(r);
}

static vmbkRemoteOutput *
vmbkRemoteFind(vmbkRemoteRun *r, const char *header)
{
    g_autofree char *h = vmbkAgentPayloadGet(header, "handle");

    return h ? g_hash_table_lookup(r->outputs, GUINT_TO_POINTER(strtoul(h, NULL, 10))) : NULL;
}

static uint64_t
vmbkRemoteU64(const char *header, const char *key)
{
    g_autofree char *v = vmbkAgentPayloadGet(header, key);

    return v ? g_ascii_strtoull(v, NULL, 10) : 0;
}

/* Carry out one OUTPUT; a sync one is answered. */
static int
vmbkRemoteOutputOp(vmbkRemoteRun *r, const vmbkAgentFrame *f)
{
    const uint8_t *data;
    size_t len;
    g_autofree char *header = vmbkAgentPayloadSplit(f->payload, &data, &len);
    g_autofree char *op = vmbkAgentPayloadGet(header, "op");
    g_autofree char *sync = vmbkAgentPayloadGet(header, "sync");
    g_autofree char *name_e = vmbkAgentPayloadGet(header, "name");
    g_autofree char *name = vmbkAgentUnescape(name_e);
    g_autofree char *answer = NULL;
    vmbkRemoteOutput *o = vmbkRemoteFind(r, header);
    int rc = 0;

    vmbkErrorReset();
    if (!op) {
        vmbkError(VMBK_ERR_OPERATION, "an OUTPUT without op");
        rc = -1;
    } else if (g_str_equal(op, "open")) {
        uint32_t handle = vmbkRemoteU64(header, "handle");
        struct vmbk_output *out;

        if (o || handle == 0) {
            vmbkError(VMBK_ERR_OPERATION, "output handle %u is in use", handle);
            rc = -1;
        } else if (!(out = vmbk_output_open(r->sink, name, vmbkRemoteU64(header, "flags")))) {
            rc = -1;
        } else {
            o = g_new0(vmbkRemoteOutput, 1);
            o->handle = handle;
            o->out = out;
            g_hash_table_insert(r->outputs, GUINT_TO_POINTER(handle), o);
        }
    } else if (g_str_equal(op, "warn")) {
        /* A filesystem the appliance cannot mount is skipped, said, not fatal (as on the host). */
        g_autofree char *m_e = vmbkAgentPayloadGet(header, "message");
        g_autofree char *m = vmbkAgentUnescape(m_e);
        fprintf(stderr, "%s: warning: %s\n", vmbk_progname, m ? m : "");
    } else if (g_str_equal(op, "in_parent")) {
        if ((rc = vmbk_output_in_parent(r->sink, name)) >= 0) {
            answer = g_strdup_printf("result=%d\n", rc);
            rc = 0;
        }
    } else if (!o) {
        vmbkError(VMBK_ERR_OPERATION, "%s of an output that is not open", op);
        rc = -1;
    } else if (g_str_equal(op, "close")) {
        rc = vmbk_output_close(o->out);
        if (rc == 0 && o->error) {
            vmbkError(VMBK_ERR_OPERATION, "%s", o->error);
            rc = -1;
        }
        g_hash_table_remove(r->outputs, GUINT_TO_POINTER(o->handle));
    } else if (o->error) {
        /* The output failed already: the rest of its writes go nowhere. */
    } else if (g_str_equal(op, "write")) {
        rc = vmbk_output_write(o->out, data, len);
    } else if (g_str_equal(op, "pwrite")) {
        rc = vmbk_output_pwrite(o->out, data, len, vmbkRemoteU64(header, "offset"));
    } else if (g_str_equal(op, "zero")) {
        rc = vmbk_output_zero(o->out, vmbkRemoteU64(header, "offset"),
                              vmbkRemoteU64(header, "count"));
    } else if (g_str_equal(op, "truncate")) {
        rc = vmbk_output_truncate(o->out, vmbkRemoteU64(header, "size"));
    } else if (g_str_equal(op, "convert")) {
        g_autofree char *fmt_e = vmbkAgentPayloadGet(header, "format");
        g_autofree char *opt_e = vmbkAgentPayloadGet(header, "options");
        g_autofree char *fmt = vmbkAgentUnescape(fmt_e);
        g_autofree char *opt = vmbkAgentUnescape(opt_e);
        rc = vmbk_output_convert(o->out, name, fmt, opt && *opt ? opt : NULL);
    } else {
        vmbkError(VMBK_ERR_OPERATION, "unknown output operation '%s'", op);
        rc = -1;
    }

    if (g_strcmp0(sync, "1") == 0) {
        g_autofree char *msg = NULL;
        g_autoptr(GBytes) frame = NULL;

        if (rc < 0) {
            g_autofree char *why = g_strdup(vmbkErrorMessage() ? vmbkErrorMessage() : "failed");
            msg = g_strdup_printf("message=%s\n", g_strdelimit(why, "\n", ' '));
            frame = vmbkAgentFrameEncode(VMBK_AGENT_MSG_ERROR, r->id, msg, strlen(msg));
        } else {
            msg = g_strdup(answer ? answer : "");
            frame = vmbkAgentFrameEncode(VMBK_AGENT_MSG_OUTPUT | VMBK_AGENT_RESPONSE, r->id,
                                         msg, strlen(msg));
        }
        vmbkErrorReset();
        return vmbkAgentSendFrame(r->s->agent, frame);
    }
    if (rc < 0 && o && !o->error)
        o->error = g_strdup(vmbkErrorMessage() ? vmbkErrorMessage() : "a write failed");
    vmbkErrorReset();
    return 0;
}

/* One PLUGIN_FS per filesystem the host's runner would walk (vmbkFsWalk): the mountable ones of
 * the inspection, in its order. */
static int
vmbkRemoteFilesystems(vmbkRemoteRun *r, GPtrArray *disks, const vmbkInspection *insp,
                      const char *what)
{
    guint i;

    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *gfs = g_ptr_array_index(insp->filesystems, i);
        g_autofree char *name = NULL;
        g_autofree char *n = NULL;
        g_autofree char *dev = NULL;
        g_autofree char *type = NULL;
        g_autofree char *mp = NULL;
        g_autofree char *header = NULL;
        const char *serial;
        unsigned int part;

        if (!vmbkGuestFsMountable(gfs))
            continue;
        if (vmbkApplianceFsDevice(disks, gfs->device, what, &serial, &part) < 0)
            return -1;
        name = vmbkFsWalkName(gfs->device);
        n = vmbkAgentEscape(name);
        dev = vmbkAgentEscape(gfs->device);
        type = vmbkAgentEscape(gfs->type ? gfs->type : "");
        mp = vmbkAgentEscape(gfs->mountpoint ? gfs->mountpoint : "");
        header = g_strdup_printf("name=%s\ndevice=%s\ntype=%s\nmountpoint=%s\nserial=%s\n"
                                 "partition=%u\n", n, dev, type, mp, serial, part);
        if (vmbkRemoteSend(r, VMBK_AGENT_MSG_PLUGIN_FS, header, NULL, 0) < 0)
            return -1;
    }
    return 0;
}

/* The header of PLUGIN_RUN: the plugin, its configuration, the point (free text escaped). */
static char *
vmbkRemoteRunHeader(const vmbkPluginSpec *spec, const vmbkPluginRun *run)
{
    g_autoptr(GString) h = g_string_new(NULL);
    const char *const keys[] = { "plugin", "domain", "uuid", "id", "level", "time",
                                 "consistency" };
    const char *const values[] = { spec->plugin_name, run->domain, run->uuid, run->id,
                                   run->level, run->time, run->consistency };
    guint i;

    for (i = 0; i < G_N_ELEMENTS(keys); i++) {
        g_autofree char *v = vmbkAgentEscape(values[i] ? values[i] : "");
        g_string_append_printf(h, "%s=%s\n", keys[i], v);
    }
    for (i = 0; i < spec->config->len; i++) {
        g_autofree char *v = vmbkAgentEscape(g_ptr_array_index(spec->config, i));
        g_string_append_printf(h, "config=%s\n", v);
    }
    return g_string_free(g_steal_pointer(&h), FALSE);
}

int
vmbkAppliancePluginRun(vmbkApplianceSession *s, GPtrArray *disks, const vmbkInspection *insp,
                       const vmbkPluginSpec *spec, const vmbkPluginRun *run,
                       vmbkPointPlugin **out)
{
    g_autofree char *outdir = g_build_filename(run->dir, spec->plugin_name, NULL);
    g_autofree char *pdir = run->parent_dir ? g_build_filename(run->parent_dir,
                                                               spec->plugin_name, NULL)
                                            : NULL;
    g_autofree char *header = NULL;
    g_autofree char *so = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) outputs =
        g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify) vmbkRemoteOutputFree);
    g_autoptr(GByteArray) extents = g_byte_array_new();
    g_autofree char *jobdir = NULL;
    vmbkRemoteRun r = { .s = s, .id = s->agent->next_id++, .outputs = outputs,
                        .extents = extents };
    const char *parent = run->parent;
    bool block = !spec->kind || strstr(spec->kind, "block");
    bool files = spec->kind && strstr(spec->kind, "file");
    g_autofree char *what = g_strdup_printf("point %s of domain '%s'", run->id, run->domain);
    bool changed;
    gint64 t0 = g_get_monotonic_time();
    gsize len;
    guint i;
    int ret = -1;

    *out = NULL;
    if (files && !insp) {
        vmbkError(VMBK_ERR_INTERNAL, "plugin '%s' works on files, and the point has no "
                  "inspection", spec->plugin_name);
        return -1;
    }
    if (!g_file_get_contents(spec->path, &so, &len, &err)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read plugin '%s': %s", spec->name, err->message);
        return -1;
    }
    if (len > VMBK_APPLIANCE_PLUGIN_MAX) {
        vmbkError(VMBK_ERR_OPERATION, "plugin '%s' is %" G_GSIZE_FORMAT " bytes; at most %d "
                  "can be sent to the appliance", spec->name, len, VMBK_APPLIANCE_PLUGIN_MAX);
        return -1;
    }
    if (g_file_test(outdir, G_FILE_TEST_EXISTS) || g_file_test(outdir, G_FILE_TEST_IS_SYMLINK)) {
        vmbkError(VMBK_ERR_OPERATION, "the point has outputs of a plugin named '%s' already",
                  spec->plugin_name);
        return -1;
    }
    /* Only a parent that has our outputs is one to build on. */
    if (pdir && !g_file_test(pdir, G_FILE_TEST_IS_DIR))
        parent = NULL;
    changed = parent && !spec->full_view;
    r.parent = changed ? parent : NULL;
    if (!(jobdir = vmbkJobDirCreate(run->uuid, "plugin")))
        return -1;
    r.sink = vmbkSinkNew(outdir, parent ? pdir : NULL, jobdir);

    header = vmbkRemoteRunHeader(spec, run);
    if (vmbkRemoteSend(&r, VMBK_AGENT_MSG_PLUGIN_RUN, header, so, len) < 0)
        goto out;
    for (i = 0; block && i < disks->len; i++) {
        if (vmbkRemoteDisk(&r, g_ptr_array_index(disks, i), changed, run->interrupted) < 0)
            goto cancel;
    }
    if (files && vmbkRemoteFilesystems(&r, disks, insp, what) < 0)
        goto cancel;
    if (vmbkRemoteSend(&r, VMBK_AGENT_MSG_PLUGIN_GO, "", NULL, 0) < 0)
        goto out;
    vmbkDebug("plugin %s: running in the appliance, %s sent in %.3f s", spec->plugin_name,
              block && files ? "extents and filesystems" : files ? "filesystems" : "extents",
              (g_get_monotonic_time() - t0) / 1e6);

    for (;;) {
        g_autoptr(vmbkAgentFrame) f = NULL;

        if (vmbkAgentNext(s->agent, r.id, run->interrupted, &f) < 0)
            goto cancel;
        if (f->type == VMBK_AGENT_MSG_OUTPUT) {
            if (vmbkRemoteOutputOp(&r, f) < 0)
                goto cancel;
        } else if (f->type == (VMBK_AGENT_MSG_PLUGIN_RUN | VMBK_AGENT_RESPONSE)) {
            ret = 0;
            break;
        } else if (f->type == VMBK_AGENT_MSG_ERROR) {
            g_autofree char *msg = vmbkAgentPayloadGet(f->payload->str, "message");
            if (msg && g_str_has_prefix(msg, "plugin '"))
                vmbkError(VMBK_ERR_OPERATION, "%s, at point %s of domain '%s'", msg, run->id,
                          run->domain);
            else
                vmbkError(VMBK_ERR_OPERATION, "plugin '%s' failed in the appliance at point %s "
                          "of domain '%s': %s", spec->plugin_name, run->id, run->domain,
                          msg ? msg : "no message");
            break;
        } else {
            vmbkError(VMBK_ERR_OPERATION, "the appliance's agent sent %s during plugin '%s'",
                      vmbkAgentMsgName(f->type), spec->plugin_name);
            goto cancel;
        }
    }
    goto out;

 cancel:
    {
        /* Whatever the agent still runs for us, it stops; its frames are skipped as stale. */
        g_autoptr(GBytes) frame = vmbkAgentFrameEncode(VMBK_AGENT_MSG_CANCEL, r.id, "", 0);
        vmbkAgentSendFrame(s->agent, frame);
    }
 out:
    vmbkDebug("plugin %s: %s in the appliance in %.3f s", spec->plugin_name,
              ret == 0 ? "done" : "failed", (g_get_monotonic_time() - t0) / 1e6);
    g_hash_table_remove_all(outputs);
    if (vmbkSinkFinish(r.sink, ret == 0) < 0)
        ret = -1;
    vmbkJobDirRemove(jobdir);
    if (ret < 0) {
        vmbkRepoRemoveTree(outdir);
        return -1;
    }
    return vmbkPluginRecord(spec, run->dir, out);
}
