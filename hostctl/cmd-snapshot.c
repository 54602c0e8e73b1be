/* vmbk snapshot: the seed's snapshot API (create, list, delete, access)
 *
 * A view is a pull-mode backup job that vmbk starts and leaves running: libvirt's NBD server
 * exports each disk as it was at 'create', read-only, for as long as the view lives.  With
 * --since CHECKPOINT the export also carries the dirty bitmap of what changed since that
 * checkpoint, so a remote reader can fetch only those extents.  'delete' ends the job; the guest
 * never left its disks.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "backupjob.h"
#include "domxml.h"
#include "json.h"
#include "nbdexport.h"
#include "vmbk.h"
#include "xml.h"

typedef struct {
    char *target, *export, *bitmap;
    unsigned long long size;
} vmbkViewDisk;

static void
vmbkViewDiskFree(vmbkViewDisk *d)
{
    g_free(d->target);
    g_free(d->export);
    g_free(d->bitmap);
    g_free(d);
}

/* Print what a reader needs to reach the domain's view: URIs, export names, sizes, bitmaps. */
static int
vmbkViewDescribe(virDomainPtr dom, const char *name, vmbkJson *json)
{
    g_autofree char *dir = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *kind = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) nodes = NULL;
    g_autofree char *transport = NULL, *socket = NULL, *host = NULL, *port = NULL;
    g_autofree char *incremental = NULL;
    g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func((GDestroyNotify) vmbkViewDiskFree);
    int r, i;
    guint j;

    if ((r = vmbkBackupFindJob(dom, name, &dir, &xml)) < 0)
        return -1;
    if (r == 0 || !dir || (vmbkJobDirOwner(dir, &kind), !kind || !g_str_equal(kind, "view"))) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no snapshot view; take one with "
                  "'vmbk snapshot create %s'", name, name);
        return -1;
    }
    if (!(doc = vmbkXmlParse(xml, "the backup job's XML")))
        return -1;
    ctx = xmlXPathNewContext(doc);
    transport = vmbkXPathString(ctx, NULL, "string(/domainbackup/server/@transport)");
    socket = vmbkXPathString(ctx, NULL, "string(/domainbackup/server/@socket)");
    host = vmbkXPathString(ctx, NULL, "string(/domainbackup/server/@name)");
    port = vmbkXPathString(ctx, NULL, "string(/domainbackup/server/@port)");
    incremental = vmbkXPathString(ctx, NULL, "string(/domainbackup/incremental)");
    nodes = vmbkXPathNodes(ctx, NULL, "/domainbackup/disks/disk[@backup='yes']");
    for (i = 0; nodes && nodes->nodesetval && i < nodes->nodesetval->nodeNr; i++) {
        xmlNodePtr node = nodes->nodesetval->nodeTab[i];
        vmbkViewDisk *d = g_new0(vmbkViewDisk, 1);
        virDomainBlockInfo info = { 0 };

        g_ptr_array_add(disks, d);
        d->target = vmbkXPathString(ctx, node, "string(@name)");
        d->export = vmbkXPathString(ctx, node, "string(@exportname)");
        if (!d->export)
            d->export = g_strdup(d->target);
        if (incremental) {
            g_autofree char *bm = vmbkXPathString(ctx, node, "string(@exportbitmap)");
            d->bitmap = g_strdup_printf("qemu:dirty-bitmap:%s",
                                        bm ? bm : (bm = g_strdup_printf("backup-%s", d->target)));
        }
        if (virDomainGetBlockInfo(dom, d->target, &info, 0) == 0)
            d->size = info.capacity;
    }

    if (json) {
        vmbkJsonBeginObject(json);
        vmbkJsonKeyString(json, "domain", name);
        vmbkJsonKeyString(json, "transport", transport);
        vmbkJsonKeyString(json, "socket", socket);
        vmbkJsonKeyString(json, "host", host);
        vmbkJsonKeyString(json, "port", port);
        vmbkJsonKeyString(json, "since", incremental);
        vmbkJsonKey(json, "exports");
        vmbkJsonBeginArray(json);
    } else {
        printf("domain '%s': view served on %s%s%s%s%s%s\n", name,
               socket ? "unix socket " : "tcp ", socket ? socket : host, socket ? "" : ":",
               socket ? "" : port, incremental ? ", changes since checkpoint " : "",
               incremental ? incremental : "");
    }
    for (j = 0; j < disks->len; j++) {
        vmbkViewDisk *d = g_ptr_array_index(disks, j);
        g_autofree char *uri = NULL;

        if (socket)
            uri = g_strdup_printf("nbd+unix:///%s?socket=%s", d->export, socket);
        else if (strchr(host, ':'))
            uri = g_strdup_printf("nbd://[%s]:%s/%s", host, port, d->export);
        else
            uri = g_strdup_printf("nbd://%s:%s/%s", host, port, d->export);
        if (json) {
            vmbkJsonBeginObject(json);
            vmbkJsonKeyString(json, "target", d->target);
            vmbkJsonKeyString(json, "export", d->export);
            vmbkJsonKeyString(json, "uri", uri);
            vmbkJsonKeyInt(json, "size", d->size);
            vmbkJsonKeyString(json, "dirty_bitmap", d->bitmap);
            vmbkJsonEnd(json);
        } else {
            printf("  %-6s %s  (%llu bytes%s%s)\n", d->target, uri, d->size,
                   d->bitmap ? ", dirty map " : "", d->bitmap ? d->bitmap : "");
        }
    }
    if (json) {
        vmbkJsonEnd(json);
        vmbkJsonEnd(json);
    }
    return 0;
}

static int
vmbkSnapshotCreate(vmbkGlobal *global, const char *name, char **wanted, const char *tcp,
                   bool insecure, const char *since, bool json)
{
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomain) dom = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;
    g_autoptr(GPtrArray) disks = NULL;
    g_autoptr(GPtrArray) targets = g_ptr_array_new();
    g_autoptr(GPtrArray) all = g_ptr_array_new();
    char uuid[VIR_UUID_STRING_BUFLEN];
    vmbkBackupJob *job;
    size_t k;
    guint i;

    if (tcp) {
        const char *colon = strrchr(tcp, ':');
        if (!colon || colon == tcp || !colon[1]) {
            vmbkError(VMBK_ERR_USAGE, "snapshot: --tcp wants ADDR:PORT, not '%s'", tcp);
            return -1;
        }
        host = g_strndup(tcp, colon - tcp);
        port = g_strdup(colon + 1);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            char *h = g_strndup(host + 1, strlen(host) - 2);
            g_free(host);
            host = h;
        }
        if (!vmbkIsLoopback(host) && !insecure) {
            vmbkError(VMBK_ERR_USAGE, "snapshot: serving disks on '%s' without TLS lets anyone "
                      "on that network read them; pass --insecure if that is what you want",
                      host);
            return -1;
        }
    }
    if (!(conn = vmbkConnect(global)) || !(dom = vmbkLookupDomain(conn, name)))
        return -1;
    if (virDomainIsActive(dom) != 1) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' is not running; a snapshot view is taken of a "
                  "running domain", name);
        return -1;
    }
    if (vmbkBackupCleanStale(dom, name) < 0)
        return -1;
    if (!(xml = virDomainGetXMLDesc(dom, 0)) || virDomainGetUUIDString(dom, uuid) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", name);
        return -1;
    }
    if (!(disks = vmbkDomainDisks(xml, name)))
        return -1;
    for (k = 0; wanted && wanted[k]; k++) {
        bool found = false;
        for (i = 0; i < disks->len; i++)
            found |= g_str_equal(((vmbkDisk *) g_ptr_array_index(disks, i))->target, wanted[k]);
        if (!found) {
            vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no disk '%s'", name, wanted[k]);
            return -1;
        }
    }
    for (i = 0; i < disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(disks, i);
        const char *problem = vmbkDiskCheckpointProblem(disk);

        g_ptr_array_add(all, disk->target);
        if (wanted && !g_strv_contains((const char *const *) wanted, disk->target))
            continue;
        if (problem) {
            vmbkError(VMBK_ERR_OPERATION, "disk '%s' of domain '%s' cannot be in a view: %s; "
                      "leave it out with --disk", disk->target, name, problem);
            return -1;
        }
        g_ptr_array_add(targets, disk->target);
    }
    if (!(job = vmbkBackupBegin(dom, name, uuid, targets, all, since, NULL, NULL, "view", host,
                                port)))
        return -1;
    /* The view outlives this process: keep the job and its directory. */
    vmbkBackupJobFree(job);
    if (json) {
        g_autoptr(vmbkJson) out = vmbkJsonNew();
        if (vmbkViewDescribe(dom, name, out) < 0)
            return -1;
        vmbkJsonPrint(out, stdout);
        return 0;
    }
    return vmbkViewDescribe(dom, name, NULL);
}

static int
vmbkSnapshotDelete(vmbkGlobal *global, const char *name)
{
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomain) dom = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *kind = NULL;
    int r;

    if (!(conn = vmbkConnect(global)) || !(dom = vmbkLookupDomain(conn, name)))
        return -1;
    if ((r = vmbkBackupFindJob(dom, name, &dir, NULL)) < 0)
        return -1;
    if (r == 0 || !dir || (vmbkJobDirOwner(dir, &kind), !kind || !g_str_equal(kind, "view"))) {
        vmbkError(VMBK_ERR_OPERATION, "domain '%s' has no snapshot view to delete", name);
        return -1;
    }
    if (virDomainAbortJob(dom) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot end the snapshot view of domain '%s'", name);
        return -1;
    }
    vmbkJobDirRemove(dir);
    return 0;
}

static int
vmbkSnapshotList(vmbkGlobal *global, const char *only, bool json)
{
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(vmbkJson) out = json ? vmbkJsonNew() : NULL;
    virDomainPtr *doms = NULL;
    int n, i, ret = 0;

    if (!(conn = vmbkConnect(global)))
        return -1;
    if (only) {
        virDomainPtr dom = vmbkLookupDomain(conn, only);
        if (!dom)
            return -1;
        doms = g_new0(virDomainPtr, 1);
        doms[0] = dom;
        n = 1;
    } else if ((n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE)) < 0) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot list the running domains");
        return -1;
    }
    if (json)
        vmbkJsonBeginArray(out);
    for (i = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);
        g_autofree char *dir = NULL;
        g_autofree char *kind = NULL;

        if (ret == 0 && vmbkBackupFindJob(doms[i], name, &dir, NULL) > 0 && dir &&
            (vmbkJobDirOwner(dir, &kind), kind && g_str_equal(kind, "view")))
            ret = vmbkViewDescribe(doms[i], name, out);
    }
    for (i = 0; i < n; i++)
        virDomainFree(doms[i]);
    g_free(doms);
    if (json && ret == 0) {
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
    }
    return ret;
}

VMBK_COMMAND(vmbkCmdSnapshot)
{
    const char *tcp = NULL, *since = NULL;
    g_auto(GStrv) wanted = NULL;
    gboolean json = FALSE, insecure = FALSE;
    GOptionEntry entries[] = {
        { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &wanted, "create: this disk only "
          "(repeatable; default: all)", "TARGET" },
        { "tcp", 0, 0, G_OPTION_ARG_STRING, &tcp, "create: serve on TCP at ADDR:PORT instead of "
          "a unix socket", "ADDR:PORT" },
        { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure, "create: allow --tcp on an address "
          "other than loopback without TLS", NULL },
        { "since", 0, 0, G_OPTION_ARG_STRING, &since, "create: also export the map of what "
          "changed since this libvirt checkpoint", "CHECKPOINT" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print JSON", NULL },
        { NULL },
    };
    const char *sub;

    if (vmbkParseOptions(cmd, entries,
                         "create DOMAIN   take a live point-in-time view and serve it read-only\n"
                         "                over NBD until deleted\n"
                         "list [DOMAIN]   the views vmbk holds\n"
                         "export DOMAIN   what a reader needs: NBD URIs, export names, sizes\n"
                         "delete DOMAIN   end the view; the guest never left its disks",
                         &argc, &argv, 1, 2) < 0)
        return -1;
    sub = argv[1];
    if (g_str_equal(sub, "list"))
        return vmbkSnapshotList(global, argc > 2 ? argv[2] : NULL, json);
    if (!g_str_equal(sub, "create") && !g_str_equal(sub, "delete") && !g_str_equal(sub, "export")) {
        vmbkError(VMBK_ERR_USAGE, "snapshot: unknown subcommand '%s'; use create, list, export "
                  "or delete", sub);
        return -1;
    }
    if (argc < 3) {
        vmbkError(VMBK_ERR_USAGE, "snapshot %s: missing DOMAIN", sub);
        return -1;
    }
    if (g_str_equal(sub, "create"))
        return vmbkSnapshotCreate(global, argv[2], wanted, tcp, insecure, since, json);
    if (g_str_equal(sub, "delete"))
        return vmbkSnapshotDelete(global, argv[2]);
    {
        g_autoptr(virConnect) conn = NULL;
        g_autoptr(virDomain) dom = NULL;
        g_autoptr(vmbkJson) out = json ? vmbkJsonNew() : NULL;

        if (!(conn = vmbkConnect(global)) || !(dom = vmbkLookupDomain(conn, argv[2])) ||
            vmbkViewDescribe(dom, argv[2], out) < 0)
            return -1;
        if (json)
            vmbkJsonPrint(out, stdout);
        return 0;
    }
}
