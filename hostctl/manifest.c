/* vmbk: a point's manifest.xml
 *
 *   <point version='1'>
 *     <domain uuid='...'>web01</domain>
 *     <id>0002</id> <parent>0001</parent> <level>inc</level>
 *     <time>2026-11-26T10:00:00Z</time> <method>checkpoint</method>
 *     <checkpoint>vmbk.1a2b3c4d.0002</checkpoint> <consistency>crash</consistency>
 *     <disk target='vda'>
 *       <image>vda.qcow2</image> <source format='qcow2'>/var/lib/libvirt/images/web01.qcow2</source>
 *       <virtual-size>1073741824</virtual-size> <stored-bytes>123</stored-bytes>
 *       <digest algorithm='sha256-tree-64k'>hex</digest>
 *     </disk>
 *     <plugin name='raw' version='0.1.0'>          outputs of a plugin, in the folder raw/
 *       <config key='k'>v</config>
 *       <output name='vda.raw' size='1073741824' digest='hex' algorithm='sha256-tree-64k'/>
 *     </plugin>
 *   </point>
 */
#include <config.h>

#include <inttypes.h>
#include <string.h>

#include <libxml/xmlwriter.h>

#include "digest.h"
#include "repo.h"
#include "vmbk-error.h"
#include "xml.h"

#define MANIFEST "manifest.xml"

static void
vmbkWriteElement(xmlTextWriterPtr w, const char *name, const char *value)
{
    if (value)
        xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST value);
}

static void
vmbkWriteElementU64(xmlTextWriterPtr w, const char *name, uint64_t value)
{
    xmlTextWriterWriteFormatElement(w, BAD_CAST name, "%" PRIu64, value);
}

int
vmbkPointWriteManifest(const vmbkPoint *point, const char *dir)
{
    g_autofree char *path = g_build_filename(dir, MANIFEST, NULL);
    xmlTextWriterPtr w;
    xmlBufferPtr buf = xmlBufferCreate();
    g_autoptr(GError) err = NULL;
    guint i;
    int rc = 0;

    w = xmlNewTextWriterMemory(buf, 0);
    xmlTextWriterSetIndent(w, 1);
    xmlTextWriterSetIndentString(w, BAD_CAST "  ");
    rc |= xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL) < 0;
    rc |= xmlTextWriterStartElement(w, BAD_CAST "point") < 0;
    xmlTextWriterWriteAttribute(w, BAD_CAST "version", BAD_CAST "1");
    xmlTextWriterStartElement(w, BAD_CAST "domain");
    if (point->uuid)
        xmlTextWriterWriteAttribute(w, BAD_CAST "uuid", BAD_CAST point->uuid);
    xmlTextWriterWriteString(w, BAD_CAST point->domain);
    xmlTextWriterEndElement(w);
    vmbkWriteElement(w, "id", point->id);
    vmbkWriteElement(w, "parent", point->parent);
    vmbkWriteElement(w, "level", point->level);
    vmbkWriteElement(w, "time", point->time);
    vmbkWriteElement(w, "method", point->method);
    vmbkWriteElement(w, "checkpoint", point->checkpoint);
    vmbkWriteElement(w, "consistency", point->consistency);
    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *disk = g_ptr_array_index(point->disks, i);

        xmlTextWriterStartElement(w, BAD_CAST "disk");
        xmlTextWriterWriteAttribute(w, BAD_CAST "target", BAD_CAST disk->target);
        vmbkWriteElement(w, "image", disk->image);
        xmlTextWriterStartElement(w, BAD_CAST "source");
        if (disk->source_format)
            xmlTextWriterWriteAttribute(w, BAD_CAST "format", BAD_CAST disk->source_format);
        if (disk->source)
            xmlTextWriterWriteString(w, BAD_CAST disk->source);
        xmlTextWriterEndElement(w);
        vmbkWriteElementU64(w, "virtual-size", disk->virtual_size);
        vmbkWriteElementU64(w, "stored-bytes", disk->stored_bytes);
        xmlTextWriterStartElement(w, BAD_CAST "digest");
        xmlTextWriterWriteAttribute(w, BAD_CAST "algorithm", BAD_CAST VMBK_DIGEST_ALGORITHM);
        xmlTextWriterWriteString(w, BAD_CAST disk->digest);
        xmlTextWriterEndElement(w);
        xmlTextWriterEndElement(w);
    }
    for (i = 0; point->plugins && i < point->plugins->len; i++) {
        vmbkPointPlugin *pp = g_ptr_array_index(point->plugins, i);
        guint j;

        xmlTextWriterStartElement(w, BAD_CAST "plugin");
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST pp->name);
        xmlTextWriterWriteAttribute(w, BAD_CAST "version", BAD_CAST pp->version);
        for (j = 0; pp->config && j < pp->config->len; j++) {
            g_autofree char *key = g_strdup(g_ptr_array_index(pp->config, j));
            char *eq = strchr(key, '=');

            *eq = '\0';
            xmlTextWriterStartElement(w, BAD_CAST "config");
            xmlTextWriterWriteAttribute(w, BAD_CAST "key", BAD_CAST key);
            xmlTextWriterWriteString(w, BAD_CAST (eq + 1));
            xmlTextWriterEndElement(w);
        }
        for (j = 0; j < pp->outputs->len; j++) {
            vmbkPointOutput *o = g_ptr_array_index(pp->outputs, j);

            xmlTextWriterStartElement(w, BAD_CAST "output");
            xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST o->name);
            xmlTextWriterWriteFormatAttribute(w, BAD_CAST "size", "%" PRIu64, o->size);
            xmlTextWriterWriteAttribute(w, BAD_CAST "digest", BAD_CAST o->digest);
            xmlTextWriterWriteAttribute(w, BAD_CAST "algorithm", BAD_CAST VMBK_DIGEST_ALGORITHM);
            xmlTextWriterEndElement(w);
        }
        xmlTextWriterEndElement(w);
    }
    rc |= xmlTextWriterEndElement(w) < 0;
    rc |= xmlTextWriterEndDocument(w) < 0;
    xmlFreeTextWriter(w);

    if (rc) {
        xmlBufferFree(buf);
        vmbkError(VMBK_ERR_INTERNAL, "cannot build the manifest of point '%s'", point->id);
        return -1;
    }
    if (!g_file_set_contents(path, (const char *) xmlBufferContent(buf), xmlBufferLength(buf),
                             &err)) {
        xmlBufferFree(buf);
        vmbkError(VMBK_ERR_INTERNAL, "cannot write '%s': %s", path, err->message);
        return -1;
    }
    xmlBufferFree(buf);
    return 0;
}

static bool
vmbkParseU64(const char *s, uint64_t *out)
{
    char *end;

    if (!s)
        return false;
    *out = g_ascii_strtoull(s, &end, 10);
    return *end == '\0' && end != s;
}

static int
vmbkPointLoadPlugins(vmbkPoint *point, xmlXPathContextPtr ctx, const char *path)
{
    g_autoptr(xmlXPathObject) plugins = vmbkXPathNodes(ctx, NULL, "/point/plugin");
    int i, j;

    point->plugins = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointPluginFree);
    for (i = 0; plugins && plugins->nodesetval && i < plugins->nodesetval->nodeNr; i++) {
        xmlNodePtr node = plugins->nodesetval->nodeTab[i];
        vmbkPointPlugin *pp = g_new0(vmbkPointPlugin, 1);
        g_autoptr(xmlXPathObject) config = vmbkXPathNodes(ctx, node, "config");
        g_autoptr(xmlXPathObject) outputs = vmbkXPathNodes(ctx, node, "output");

        g_ptr_array_add(point->plugins, pp);
        pp->name = vmbkXPathString(ctx, node, "string(@name)");
        pp->version = vmbkXPathString(ctx, node, "string(@version)");
        pp->config = g_ptr_array_new_with_free_func(g_free);
        pp->outputs = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointOutputFree);
        if (!pp->name || strchr(pp->name, '/') || pp->name[0] == '.') {
            vmbkError(VMBK_ERR_OPERATION, "the manifest '%s' is damaged: plugin %d has no "
                      "valid name", path, i + 1);
            return -1;
        }
        for (j = 0; config && config->nodesetval && j < config->nodesetval->nodeNr; j++) {
            xmlNodePtr c = config->nodesetval->nodeTab[j];
            g_autofree char *key = vmbkXPathString(ctx, c, "string(@key)");
            g_autofree char *value = vmbkXPathString(ctx, c, "string(.)");
            g_ptr_array_add(pp->config, g_strdup_printf("%s=%s", key ? key : "",
                                                        value ? value : ""));
        }
        for (j = 0; outputs && outputs->nodesetval && j < outputs->nodesetval->nodeNr; j++) {
            xmlNodePtr o = outputs->nodesetval->nodeTab[j];
            vmbkPointOutput *out = g_new0(vmbkPointOutput, 1);
            g_autofree char *size = vmbkXPathString(ctx, o, "string(@size)");

            g_ptr_array_add(pp->outputs, out);
            out->name = vmbkXPathString(ctx, o, "string(@name)");
            out->digest = vmbkXPathString(ctx, o, "string(@digest)");
            if (!out->name || strchr(out->name, '/') || out->name[0] == '.' || !out->digest ||
                !vmbkParseU64(size, &out->size)) {
                vmbkError(VMBK_ERR_OPERATION, "the manifest '%s' is damaged: output %d of "
                          "plugin '%s' is incomplete", path, j + 1, pp->name);
                return -1;
            }
        }
    }
    return 0;
}

vmbkPoint *
vmbkPointLoad(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, MANIFEST, NULL);
    g_autoptr(vmbkPoint) point = g_new0(vmbkPoint, 1);
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) disks = NULL;
    int i;

    if (!(doc = vmbkXmlParseFile(path)))
        return NULL;
    ctx = xmlXPathNewContext(doc);
    point->dir = g_strdup(dir);
    point->domain = vmbkXPathString(ctx, NULL, "string(/point/domain)");
    point->uuid = vmbkXPathString(ctx, NULL, "string(/point/domain/@uuid)");
    point->id = vmbkXPathString(ctx, NULL, "string(/point/id)");
    point->parent = vmbkXPathString(ctx, NULL, "string(/point/parent)");
    point->level = vmbkXPathString(ctx, NULL, "string(/point/level)");
    point->time = vmbkXPathString(ctx, NULL, "string(/point/time)");
    point->method = vmbkXPathString(ctx, NULL, "string(/point/method)");
    point->checkpoint = vmbkXPathString(ctx, NULL, "string(/point/checkpoint)");
    point->consistency = vmbkXPathString(ctx, NULL, "string(/point/consistency)");
    point->disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkPointDiskFree);

    if (!point->domain || !point->id || !point->level || !point->time) {
        vmbkError(VMBK_ERR_OPERATION, "the manifest '%s' is damaged: it lacks the domain, id, "
                  "level or time", path);
        return NULL;
    }
    disks = vmbkXPathNodes(ctx, NULL, "/point/disk");
    for (i = 0; disks && disks->nodesetval && i < disks->nodesetval->nodeNr; i++) {
        xmlNodePtr node = disks->nodesetval->nodeTab[i];
        vmbkPointDisk *disk = g_new0(vmbkPointDisk, 1);
        g_autofree char *vsize = vmbkXPathString(ctx, node, "string(virtual-size)");
        g_autofree char *stored = vmbkXPathString(ctx, node, "string(stored-bytes)");

        g_ptr_array_add(point->disks, disk);
        disk->target = vmbkXPathString(ctx, node, "string(@target)");
        disk->image = vmbkXPathString(ctx, node, "string(image)");
        disk->source = vmbkXPathString(ctx, node, "string(source)");
        disk->source_format = vmbkXPathString(ctx, node, "string(source/@format)");
        disk->digest = vmbkXPathString(ctx, node, "string(digest)");
        if (!disk->target || !disk->image || strchr(disk->image, '/') || !disk->digest ||
            !vmbkParseU64(vsize, &disk->virtual_size) || !vmbkParseU64(stored, &disk->stored_bytes)) {
            vmbkError(VMBK_ERR_OPERATION, "the manifest '%s' is damaged: disk %d is incomplete",
                      path, i + 1);
            return NULL;
        }
    }
    if (point->disks->len == 0) {
        vmbkError(VMBK_ERR_OPERATION, "the manifest '%s' is damaged: it lists no disk", path);
        return NULL;
    }
    if (vmbkPointLoadPlugins(point, ctx, path) < 0)
        return NULL;
    return g_steal_pointer(&point);
}

vmbkPointDisk *
vmbkPointFindDisk(const vmbkPoint *point, const char *target)
{
    guint i;

    for (i = 0; i < point->disks->len; i++) {
        vmbkPointDisk *disk = g_ptr_array_index(point->disks, i);
        if (g_str_equal(disk->target, target))
            return disk;
    }
    return NULL;
}

vmbkPointPlugin *
vmbkPointFindPlugin(const vmbkPoint *point, const char *name)
{
    guint i;

    for (i = 0; point->plugins && i < point->plugins->len; i++) {
        vmbkPointPlugin *pp = g_ptr_array_index(point->plugins, i);
        if (g_str_equal(pp->name, name))
            return pp;
    }
    return NULL;
}

char *
vmbkPointImagePath(const vmbkPoint *point, const vmbkPointDisk *disk)
{
    return g_build_filename(point->dir, disk->image, NULL);
}
