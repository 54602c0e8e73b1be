/* vmbk restore --define: a new domain from a point
 *
 * The point's saved domain XML with a new name and no uuid or MAC addresses (libvirt makes new
 * ones), each backed-up disk replaced by a restored qcow2 (or, with --instant, by a new overlay
 * on the point's own image, so it starts at once), disks the point lacks dropped.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <libxml/tree.h>

#include "pointread.h"
#include "repo.h"
#include "spawn.h"
#include "vmbk.h"
#include "xml.h"

static char *
vmbkImagesDir(void)
{
    const char *env = g_getenv("VMBK_IMAGES_DIR");

    return g_strdup(env && *env ? env : "/var/lib/libvirt/images");
}

/* qemu must reach the point's images through the repository's directories: let it traverse
 * (not list) them. */
static int
vmbkRestoreAllowTraverse(const char *repo, const char *image)
{
    g_autofree char *dir = g_path_get_dirname(image);

    while (g_str_has_prefix(dir, repo)) {
        struct stat sb;
        char *up;

        if (stat(dir, &sb) < 0 || chmod(dir, (sb.st_mode & 07777) | 0011) < 0) {
            vmbkErrorSystem(errno, "cannot let qemu reach '%s'", dir);
            return -1;
        }
        if (g_str_equal(dir, repo))
            break;
        up = g_path_get_dirname(dir);
        g_free(dir);
        dir = up;
    }
    return 0;
}

static void
vmbkXmlRemove(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
    g_autoptr(xmlXPathObject) obj = vmbkXPathNodes(ctx, node, expr);
    int i;

    for (i = 0; obj && obj->nodesetval && i < obj->nodesetval->nodeNr; i++) {
        xmlNodePtr n = obj->nodesetval->nodeTab[i];
        xmlUnlinkNode(n);
        xmlFreeNode(n);
    }
}

int
vmbkRestoreDefine(vmbkGlobal *global, vmbkRepo *repo, GPtrArray *points, vmbkPoint *point,
                  const char *only, const char *name, bool instant)
{
    g_autofree char *xmlpath = g_build_filename(point->dir, "domain.xml", NULL);
    g_autofree char *imagesdir = vmbkImagesDir();
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) disks = NULL;
    g_autoptr(GPtrArray) created = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomain) dom = NULL;
    xmlChar *out = NULL;
    int outlen, i, ret = -1;
    guint j;

    if (!(conn = vmbkConnect(global)))
        return -1;
    if ((dom = virDomainLookupByName(conn, name))) {
        vmbkError(VMBK_ERR_OPERATION, "a domain named '%s' exists already; pick another name",
                  name);
        return -1;
    }
    if (!(doc = vmbkXmlParseFile(xmlpath)))
        return -1;
    ctx = xmlXPathNewContext(doc);

    disks = vmbkXPathNodes(ctx, NULL, "/domain/devices/disk");
    for (i = 0; disks && disks->nodesetval && i < disks->nodesetval->nodeNr; i++) {
        xmlNodePtr node = disks->nodesetval->nodeTab[i];
        g_autofree char *target = vmbkXPathString(ctx, node, "string(target/@dev)");
        g_autofree char *device = vmbkXPathString(ctx, node, "string(@device)");
        vmbkPointDisk *disk = target ? vmbkPointFindDisk(point, target) : NULL;
        g_autofree char *path = NULL;
        g_autofree char *image = NULL;
        xmlNodePtr src, drv;

        if (!disk || (only && !g_str_equal(only, target))) {
            if (!device || g_str_equal(device, "disk")) {
                fprintf(stderr, "%s: disk '%s' is not restored; the new domain goes without it\n",
                        vmbk_progname, target ? target : "?");
                xmlUnlinkNode(node);
                xmlFreeNode(node);
            }
            continue;
        }
        path = g_strdup_printf("%s/%s-%s.qcow2", imagesdir, name, target);
        if (g_file_test(path, G_FILE_TEST_EXISTS)) {
            vmbkError(VMBK_ERR_OPERATION, "'%s' exists; remove it or pick another name", path);
            goto cleanup;
        }
        if (vmbkPointCheckChain(points, point, disk) < 0)
            goto cleanup;
        image = vmbkPointImagePath(point, disk);
        if (instant) {
            const char *argv[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", image, "-F",
                                   "qcow2", path, NULL };
            const vmbkPoint *p = point;

            /* Every image of the chain, down to the full. */
            while (p) {
                const char *parent = p->parent;
                g_autofree char *pimage = vmbkPointImagePath(p, vmbkPointFindDisk(p, target));

                if (vmbkRestoreAllowTraverse(repo->path, pimage) < 0)
                    goto cleanup;
                p = NULL;
                for (j = 0; parent && j < points->len; j++) {
                    if (g_str_equal(((vmbkPoint *) g_ptr_array_index(points, j))->id, parent))
                        p = g_ptr_array_index(points, j);
                }
            }
            if (vmbkRun(argv, NULL) < 0)
                goto cleanup;
            g_ptr_array_add(created, g_strdup(path));
        } else {
            g_ptr_array_add(created, g_strdup(path));
            if (vmbkPointReadDisk(point, disk, path, "qcow2", isatty(STDERR_FILENO)) < 0)
                goto cleanup;
        }

        xmlSetProp(node, BAD_CAST "type", BAD_CAST "file");
        vmbkXmlRemove(ctx, node, "source | backingStore");
        src = xmlNewChild(node, NULL, BAD_CAST "source", NULL);
        xmlSetProp(src, BAD_CAST "file", BAD_CAST path);
        vmbkXmlRemove(ctx, node, "driver");
        drv = xmlNewChild(node, NULL, BAD_CAST "driver", NULL);
        xmlSetProp(drv, BAD_CAST "name", BAD_CAST "qemu");
        xmlSetProp(drv, BAD_CAST "type", BAD_CAST "qcow2");
    }

    vmbkXmlRemove(ctx, NULL, "/domain/uuid | /domain/devices/interface/mac");
    vmbkXmlRemove(ctx, NULL, "/domain/devices/interface/target");
    {
        g_autoptr(xmlXPathObject) nm = vmbkXPathNodes(ctx, NULL, "/domain/name");
        if (!nm || !nm->nodesetval || nm->nodesetval->nodeNr != 1) {
            vmbkError(VMBK_ERR_OPERATION, "the saved XML '%s' has no domain name", xmlpath);
            goto cleanup;
        }
        xmlNodeSetContent(nm->nodesetval->nodeTab[0], NULL);
        xmlNodeAddContent(nm->nodesetval->nodeTab[0], BAD_CAST name);
    }
    xmlDocDumpMemory(doc, &out, &outlen);
    if (!(dom = virDomainDefineXML(conn, (const char *) out))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot define domain '%s'", name);
        goto cleanup;
    }
    printf("domain '%s' defined from point %s of '%s'; start it with 'virsh start %s'\n", name,
           point->id, point->domain, name);
    ret = 0;

 cleanup:
    xmlFree(out);
    for (j = 0; ret < 0 && j < created->len; j++)
        g_unlink(g_ptr_array_index(created, j));
    return ret;
}
