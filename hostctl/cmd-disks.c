/* vmbk disks: a domain's disks as vmbk sees them */
#include <config.h>

#include <stdio.h>

#include "domxml.h"
#include "json.h"
#include "vmbk.h"

VMBK_COMMAND(vmbkCmdDisks)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "print a JSON array", NULL },
        { NULL },
    };
    g_autoptr(virConnect) conn = NULL;
    g_autoptr(virDomain) dom = NULL;
    g_autoptr(GPtrArray) disks = NULL;
    g_autofree char *xml = NULL;
    g_autoptr(vmbkJson) out = NULL;
    guint i;

    if (vmbkParseOptions(cmd, entries, NULL, &argc, &argv, 1, 1) < 0)
        return -1;
    if (!(conn = vmbkConnect(global)) || !(dom = vmbkLookupDomain(conn, argv[1])))
        return -1;
    if (!(xml = virDomainGetXMLDesc(dom, 0))) {
        vmbkError(VMBK_ERR_LIBVIRT, "cannot get the XML of domain '%s'", argv[1]);
        return -1;
    }
    if (!(disks = vmbkDomainDisks(xml, argv[1])))
        return -1;

    if (json) {
        out = vmbkJsonNew();
        vmbkJsonBeginArray(out);
    } else {
        printf("%-8s %-8s %-8s %-11s %s\n", "Target", "Type", "Format", "Checkpoint", "Source");
    }
    for (i = 0; i < disks->len; i++) {
        vmbkDisk *disk = g_ptr_array_index(disks, i);
        const char *problem = vmbkDiskCheckpointProblem(disk);

        if (json) {
            vmbkJsonBeginObject(out);
            vmbkJsonKeyString(out, "target", disk->target);
            vmbkJsonKeyString(out, "type", disk->type);
            vmbkJsonKeyString(out, "format", disk->format);
            vmbkJsonKeyString(out, "source", disk->source);
            vmbkJsonKeyBool(out, "checkpoint", problem == NULL);
            vmbkJsonEnd(out);
        } else {
            printf("%-8s %-8s %-8s %-11s %s\n", disk->target, disk->type, disk->format,
                   problem ? "no" : "yes", disk->source ? disk->source : "-");
        }
    }
    if (json) {
        vmbkJsonEnd(out);
        vmbkJsonPrint(out, stdout);
    }
    return 0;
}
