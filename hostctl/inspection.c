/* vmbk: what libguestfs inspection says of a point, kept as inspection.xml in its directory
 *
 *   <inspection version='1'>
 *     <os root='/dev/sda1'>
 *       <type>linux</type> <distro>debian</distro> <version>12.5</version>
 *       <hostname>web01</hostname> <product-name>Debian GNU/Linux 12</product-name>
 *       <arch>x86_64</arch>
 *     </os>
 *     <filesystem device='/dev/sda1' type='ext4' mountpoint='/'/>
 *     <filesystem device='/dev/sda2' type='swap'/>
 *   </inspection>
 *
 * No <os> when inspection found no operating system (a data disk): the filesystems are still
 * listed.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libxml/xmlwriter.h>

#include "inspection.h"
#include "repo.h"
#include "vmbk-error.h"
#include "xml.h"

#define INSPECTION "inspection.xml"

static void
vmbkGuestFsFree(vmbkGuestFs *fs)
{
    g_free(fs->device);
    g_free(fs->type);
    g_free(fs->mountpoint);
    g_free(fs);
}

void
vmbkInspectionFree(vmbkInspection *insp)
{
    if (!insp)
        return;
    g_free(insp->root);
    g_free(insp->type);
    g_free(insp->distro);
    g_free(insp->version);
    g_free(insp->hostname);
    g_free(insp->product_name);
    g_free(insp->arch);
    if (insp->filesystems)
        g_ptr_array_free(insp->filesystems, TRUE);
    g_free(insp);
}

static vmbkInspection *
vmbkInspectionNew(void)
{
    vmbkInspection *insp = g_new0(vmbkInspection, 1);

    insp->filesystems = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkGuestFsFree);
    return insp;
}

bool
vmbkGuestFsMountable(const vmbkGuestFs *fs)
{
    static const char *const never[] = { "swap", "unknown", "LVM2_member", "crypto_LUKS", NULL };

    return fs->type && *fs->type && !g_strv_contains(never, fs->type);
}

vmbkGuestFs *
vmbkInspectionFindFs(const vmbkInspection *insp, const char *device)
{
    guint i;

    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
        if (g_str_equal(fs->device, device))
            return fs;
    }
    return NULL;
}

bool
vmbkInspectionHasTree(const vmbkInspection *insp)
{
    return insp && insp->root && insp->filesystems->len > 0 &&
           g_strcmp0(((vmbkGuestFs *) g_ptr_array_index(insp->filesystems, 0))->mountpoint,
                     "/") == 0;
}

char *
vmbkInspectionFsList(const vmbkInspection *insp)
{
    GString *list = g_string_new(NULL);
    guint i;

    for (i = 0; insp && i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
        if (vmbkGuestFsMountable(fs))
            g_string_append_printf(list, "%s%s (%s)", list->len ? ", " : "", fs->device,
                                   fs->type);
    }
    return g_string_free(list, FALSE);
}

char *
vmbkGuestPathJoin(const char *mountpoint, const char *path)
{
    if (g_str_equal(mountpoint, "/"))
        return g_strdup(path);
    if (g_str_equal(path, "/"))
        return g_strdup(mountpoint);
    return g_strconcat(mountpoint, path, NULL);
}

/* Mounted filesystems first, shortest mountpoint first (the order to mount them in), then the
 * others by device. */
static gint
vmbkGuestFsCompare(gconstpointer a, gconstpointer b)
{
    const vmbkGuestFs *x = *(vmbkGuestFs *const *) a;
    const vmbkGuestFs *y = *(vmbkGuestFs *const *) b;

    if (!x->mountpoint != !y->mountpoint)
        return x->mountpoint ? -1 : 1;
    if (x->mountpoint && strlen(x->mountpoint) != strlen(y->mountpoint))
        return strlen(x->mountpoint) < strlen(y->mountpoint) ? -1 : 1;
    if (x->mountpoint)
        return strcmp(x->mountpoint, y->mountpoint);
    return strcmp(x->device, y->device);
}

static void
vmbkStrvFree(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

vmbkInspection *
vmbkInspect(guestfs_h *g, const char *what)
{
    g_autoptr(vmbkInspection) insp = vmbkInspectionNew();
    char **fss = NULL, **roots = NULL, **mps = NULL;
    size_t i;

    if (!(fss = guestfs_list_filesystems(g))) {
        vmbkErrorGuestfs(g, "cannot list the filesystems of %s", what);
        return NULL;
    }
    for (i = 0; fss[i] && fss[i + 1]; i += 2) {
        vmbkGuestFs *fs = g_new0(vmbkGuestFs, 1);
        fs->device = g_strdup(fss[i]);
        fs->type = g_strdup(fss[i + 1]);
        g_ptr_array_add(insp->filesystems, fs);
    }
    vmbkStrvFree(fss);

    if (!(roots = guestfs_inspect_os(g))) {
        vmbkErrorGuestfs(g, "cannot inspect %s", what);
        return NULL;
    }
    if (roots[0]) {
        const char *root = roots[0];
        int major = guestfs_inspect_get_major_version(g, root);
        int minor = guestfs_inspect_get_minor_version(g, root);
        char *s;

        insp->root = g_strdup(root);
#define VMBK_INSPECT_STRING(field, fn) \
        if ((s = fn(g, root))) { \
            if (!g_str_equal(s, "unknown") && *s) \
                insp->field = g_strdup(s); \
            free(s); \
        }
        VMBK_INSPECT_STRING(type, guestfs_inspect_get_type);
        VMBK_INSPECT_STRING(distro, guestfs_inspect_get_distro);
        VMBK_INSPECT_STRING(hostname, guestfs_inspect_get_hostname);
        VMBK_INSPECT_STRING(product_name, guestfs_inspect_get_product_name);
        VMBK_INSPECT_STRING(arch, guestfs_inspect_get_arch);
#undef VMBK_INSPECT_STRING
        if (major > 0 || minor > 0)
            insp->version = g_strdup_printf("%d.%d", MAX(major, 0), MAX(minor, 0));
        if (!(mps = guestfs_inspect_get_mountpoints(g, root))) {
            vmbkErrorGuestfs(g, "cannot get the mountpoints of %s", what);
            vmbkStrvFree(roots);
            return NULL;
        }
        for (i = 0; mps[i] && mps[i + 1]; i += 2) {
            vmbkGuestFs *fs = vmbkInspectionFindFs(insp, mps[i + 1]);
            if (fs && !fs->mountpoint)
                fs->mountpoint = g_strdup(mps[i]);
        }
        vmbkStrvFree(mps);
    }
    vmbkStrvFree(roots);
    g_ptr_array_sort(insp->filesystems, vmbkGuestFsCompare);
    return g_steal_pointer(&insp);
}

static void
vmbkWriteElement(xmlTextWriterPtr w, const char *name, const char *value)
{
    if (value)
        xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST value);
}

int
vmbkInspectionWrite(const vmbkInspection *insp, const char *dir)
{
    g_autofree char *path = g_build_filename(dir, INSPECTION, NULL);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.tmp-%08x", dir, INSPECTION, g_random_int());
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
    g_autoptr(GError) err = NULL;
    guint i;
    int rc = 0;

    xmlTextWriterSetIndent(w, 1);
    xmlTextWriterSetIndentString(w, BAD_CAST "  ");
    rc |= xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL) < 0;
    rc |= xmlTextWriterStartElement(w, BAD_CAST "inspection") < 0;
    rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "version", BAD_CAST "1") < 0;
    if (insp->root) {
        rc |= xmlTextWriterStartElement(w, BAD_CAST "os") < 0;
        rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "root", BAD_CAST insp->root) < 0;
        vmbkWriteElement(w, "type", insp->type);
        vmbkWriteElement(w, "distro", insp->distro);
        vmbkWriteElement(w, "version", insp->version);
        vmbkWriteElement(w, "hostname", insp->hostname);
        vmbkWriteElement(w, "product-name", insp->product_name);
        vmbkWriteElement(w, "arch", insp->arch);
        rc |= xmlTextWriterEndElement(w) < 0;
    }
    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);

        rc |= xmlTextWriterStartElement(w, BAD_CAST "filesystem") < 0;
        rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "device", BAD_CAST fs->device) < 0;
        rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST fs->type) < 0;
        if (fs->mountpoint)
            rc |= xmlTextWriterWriteAttribute(w, BAD_CAST "mountpoint",
                                              BAD_CAST fs->mountpoint) < 0;
        rc |= xmlTextWriterEndElement(w) < 0;
    }
    rc |= xmlTextWriterEndElement(w) < 0;
    rc |= xmlTextWriterEndDocument(w) < 0;
    xmlFreeTextWriter(w);
    if (rc) {
        xmlBufferFree(buf);
        vmbkError(VMBK_ERR_INTERNAL, "cannot build '%s'", path);
        return -1;
    }
    if (!g_file_set_contents(tmp, (const char *) xmlBufferContent(buf), xmlBufferLength(buf),
                             &err)) {
        xmlBufferFree(buf);
        vmbkError(VMBK_ERR_INTERNAL, "cannot write '%s': %s", tmp, err->message);
        return -1;
    }
    xmlBufferFree(buf);
    if (vmbkRepoReplaceFile(tmp, path) < 0) {
        g_unlink(tmp);
        return -1;
    }
    return 0;
}

vmbkInspection *
vmbkInspectionLoad(const char *dir, bool *absent)
{
    g_autofree char *path = g_build_filename(dir, INSPECTION, NULL);
    g_autoptr(vmbkInspection) insp = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) nodes = NULL;
    int i;

    *absent = false;
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        *absent = true;
        return NULL;
    }
    if (!(doc = vmbkXmlParseFile(path)))
        return NULL;
    ctx = xmlXPathNewContext(doc);
    insp = vmbkInspectionNew();
    insp->root = vmbkXPathString(ctx, NULL, "string(/inspection/os/@root)");
    insp->type = vmbkXPathString(ctx, NULL, "string(/inspection/os/type)");
    insp->distro = vmbkXPathString(ctx, NULL, "string(/inspection/os/distro)");
    insp->version = vmbkXPathString(ctx, NULL, "string(/inspection/os/version)");
    insp->hostname = vmbkXPathString(ctx, NULL, "string(/inspection/os/hostname)");
    insp->product_name = vmbkXPathString(ctx, NULL, "string(/inspection/os/product-name)");
    insp->arch = vmbkXPathString(ctx, NULL, "string(/inspection/os/arch)");
    nodes = vmbkXPathNodes(ctx, NULL, "/inspection/filesystem");
    for (i = 0; nodes && nodes->nodesetval && i < nodes->nodesetval->nodeNr; i++) {
        xmlNodePtr node = nodes->nodesetval->nodeTab[i];
        vmbkGuestFs *fs = g_new0(vmbkGuestFs, 1);

        g_ptr_array_add(insp->filesystems, fs);
        fs->device = vmbkXPathString(ctx, node, "string(@device)");
        fs->type = vmbkXPathString(ctx, node, "string(@type)");
        fs->mountpoint = vmbkXPathString(ctx, node, "string(@mountpoint)");
        if (!fs->device || !fs->type) {
            vmbkError(VMBK_ERR_OPERATION, "'%s' is damaged: filesystem %d lacks its device or "
                      "type; rebuild it with 'vmbk index'", path, i + 1);
            return NULL;
        }
    }
    g_ptr_array_sort(insp->filesystems, vmbkGuestFsCompare);
    return g_steal_pointer(&insp);
}

void
vmbkInspectionJson(vmbkJson *out, const vmbkInspection *insp)
{
    guint i;

    vmbkJsonBeginObject(out);
    vmbkJsonKeyString(out, "root", insp->root);
    vmbkJsonKeyString(out, "type", insp->type);
    vmbkJsonKeyString(out, "distro", insp->distro);
    vmbkJsonKeyString(out, "version", insp->version);
    vmbkJsonKeyString(out, "hostname", insp->hostname);
    vmbkJsonKeyString(out, "product_name", insp->product_name);
    vmbkJsonKeyString(out, "arch", insp->arch);
    vmbkJsonKey(out, "mountpoints");
    vmbkJsonBeginObject(out);
    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
        if (fs->mountpoint)
            vmbkJsonKeyString(out, fs->mountpoint, fs->device);
    }
    vmbkJsonEnd(out);
    vmbkJsonKey(out, "filesystems");
    vmbkJsonBeginArray(out);
    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);

        vmbkJsonBeginObject(out);
        vmbkJsonKeyString(out, "device", fs->device);
        vmbkJsonKeyString(out, "type", fs->type);
        vmbkJsonKeyString(out, "mountpoint", fs->mountpoint);
        vmbkJsonEnd(out);
    }
    vmbkJsonEnd(out);
    vmbkJsonEnd(out);
}

void
vmbkInspectionPrint(FILE *fp, const vmbkInspection *insp)
{
    guint i;

    if (insp->root) {
        fprintf(fp, "%-14s %s\n", "os:", insp->type ? insp->type : "unknown");
        fprintf(fp, "%-14s %s\n", "distro:", insp->distro ? insp->distro : "unknown");
        fprintf(fp, "%-14s %s\n", "version:", insp->version ? insp->version : "unknown");
        fprintf(fp, "%-14s %s\n", "product name:",
                insp->product_name ? insp->product_name : "unknown");
        fprintf(fp, "%-14s %s\n", "hostname:", insp->hostname ? insp->hostname : "unknown");
        fprintf(fp, "%-14s %s\n", "arch:", insp->arch ? insp->arch : "unknown");
        fprintf(fp, "%-14s %s\n", "root:", insp->root);
    } else {
        fprintf(fp, "%-14s %s\n", "os:", "none found (a data disk?)");
    }
    fprintf(fp, "filesystems:\n");
    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
        fprintf(fp, "  %-24s %-12s %s\n", fs->device, fs->type,
                fs->mountpoint ? fs->mountpoint : "-");
    }
}
