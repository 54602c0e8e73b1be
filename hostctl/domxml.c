/* vmbk: what vmbk needs to know of a domain's XML */
#include <config.h>

#include "domxml.h"
#include "vmbk.h"
#include "xml.h"

void
vmbkDiskFree(vmbkDisk *disk)
{
    if (!disk)
        return;
    g_free(disk->target);
    g_free(disk->type);
    g_free(disk->source);
    g_free(disk->format);
    g_free(disk);
}

GPtrArray *
vmbkDomainDisks(const char *xml, const char *name)
{
    g_autofree char *what = g_strdup_printf("the XML of domain '%s'", name);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) nodes = NULL;
    g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkDiskFree);
    int i;

    if (!(doc = vmbkXmlParse(xml, what)))
        return NULL;
    ctx = xmlXPathNewContext(doc);
    nodes = vmbkXPathNodes(ctx, NULL, "/domain/devices/disk[not(@device) or @device='disk']");
    for (i = 0; nodes && nodes->nodesetval && i < nodes->nodesetval->nodeNr; i++) {
        xmlNodePtr node = nodes->nodesetval->nodeTab[i];
        g_autoptr(vmbkDisk) disk = g_new0(vmbkDisk, 1);
        g_autofree char *ro = NULL;

        if (!(disk->target = vmbkXPathString(ctx, node, "string(target/@dev)")))
            continue;
        disk->type = vmbkXPathString(ctx, node, "string(@type)");
        if (!disk->type)
            disk->type = g_strdup("file");
        disk->source = vmbkXPathString(ctx, node, "string(source/@file | source/@dev)");
        disk->format = vmbkXPathString(ctx, node, "string(driver/@type)");
        if (!disk->format)
            disk->format = g_strdup("raw");
        ro = vmbkXPathString(ctx, node, "name(readonly)");
        disk->readonly = ro != NULL;
        if (disk->readonly)
            continue;
        g_ptr_array_add(disks, g_steal_pointer(&disk));
    }
    return g_steal_pointer(&disks);
}

const char *
vmbkDiskCheckpointProblem(const vmbkDisk *disk)
{
    if (!g_str_equal(disk->format, "qcow2"))
        return "only qcow2 images can hold the dirty bitmaps of checkpoints";
    if (!g_str_equal(disk->type, "file") && !g_str_equal(disk->type, "block"))
        return "vmbk backs up file and block disks only";
    return NULL;
}
