/* vmbk backup: what one backup works on, shared by cmd-backup.c (taking and committing the point)
 * and backup-plan.c (deciding its disks, level and parent) */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

#include "repo.h"
#include "vmbk.h"

typedef struct _vmbkBackup vmbkBackup;
struct _vmbkBackup {
    vmbkGlobal *global;
    const char *name;
    char *uuid;
    virDomainPtr dom;
    vmbkRepo *repo;
    GPtrArray *disks;   /* of vmbkDisk: the selected ones */
    GPtrArray *targets; /* their names */
    GPtrArray *all;     /* names of all the domain's disks */
    GPtrArray *points;
    const char *level;      /* full, inc, diff */
    const char *method;     /* checkpoint, snapshot */
    vmbkPoint *parent;      /* NULL for a full */
    bool quiesce;
    bool progress;
    bool level_auto;        /* -l auto: a broken chain means a full, not a failure */
    GPtrArray *plugins;     /* of vmbkPluginSpec: --plugin, checked */
    bool via_appliance;     /* --via appliance */
    struct _vmbkNbdExport *export; /* --export: where the job serves (NULL host: unix socket) */
    const char *remote;     /* --remote URI: the domain runs on that libvirt host, or NULL */
    bool appliance_checked; /* the appliance read the live export and its digest matched */
};

/* -l LEVEL checked: "full", "inc", "diff" or "auto", or NULL. */
const char *vmbkBackupLevelCheck(const char *level);
/* The disks to back up (b->disks, b->targets, b->all): all, or those named with --disk. */
int vmbkBackupSelectDisks(vmbkBackup *b, const char *xml, char **wanted);
/* b->level, b->method and b->parent, from -l and --method and what the repository holds. */
int vmbkBackupDecide(vmbkBackup *b, const char *level, const char *method, bool method_given);
