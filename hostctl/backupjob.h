/* vmbk: libvirt backup jobs in pull mode, and the job directory that holds their socket */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <libvirt/libvirt.h>

/* A directory for one job's NBD socket and scratch files: unguessable name, 0700, owned by the
 * user qemu runs as.  It holds an 'owner' file naming the vmbk process and what it is for, so that
 * a later run can tell a stale job from a live one. */
char *vmbkJobDirCreate(const char *domain_uuid, const char *kind);
void vmbkJobDirRemove(const char *dir);

typedef struct _vmbkBackupJob vmbkBackupJob;
struct _vmbkBackupJob {
    char *dir;        /* job directory */
    char *socket;     /* NBD unix socket, or NULL when served on TCP */
    char *tcp_host;   /* or the TCP address and port */
    char *tcp_port;
    bool tls;         /* served with TLS (libvirt's backup certificates) */
    bool remote;      /* the domain is elsewhere: libvirt places the scratch files beside its
                       * disks, and the export names carry the job directory's name */
    GPtrArray *disks; /* of vmbkBackupJobDisk, the disks exported */
};

typedef struct _vmbkBackupJobDisk vmbkBackupJobDisk;
struct _vmbkBackupJobDisk {
    char *target;
    char *export;  /* NBD export name */
    char *bitmap;  /* "qemu:dirty-bitmap:..." for an incremental, else NULL */
};

void vmbkBackupJobFree(vmbkBackupJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkBackupJob, vmbkBackupJobFree);

/* Start a pull-mode backup of the disks named in targets (all others: backup='no').  incremental:
 * the checkpoint to report changes since, or NULL.  checkpoint: the checkpoint to create with it,
 * or NULL. */
vmbkBackupJob *vmbkBackupBegin(virDomainPtr dom, const char *name, const char *uuid,
                               GPtrArray *targets, GPtrArray *all_targets,
                               const char *incremental, const char *checkpoint,
                               const char *description, const char *kind,
                               const char *tcp_host, const char *tcp_port);

/* The same, served as ex says (NULL: a unix socket in the job directory).  remote: the domain
 * runs on another host, where the job directory (on this one) cannot hold the scratch files. */
struct _vmbkNbdExport;
vmbkBackupJob *vmbkBackupBeginExport(virDomainPtr dom, const char *name, const char *uuid,
                                     GPtrArray *targets, GPtrArray *all_targets,
                                     const char *incremental, const char *checkpoint,
                                     const char *description, const char *kind,
                                     const struct _vmbkNbdExport *ex, bool remote);

/* End the job (abort, in pull mode), and remove its directory. */
void vmbkBackupEnd(virDomainPtr dom, vmbkBackupJob *job);

/* A backup job left running by a vmbk that died is ended; a live one (vmbk's or another tool's)
 * makes this fail with a message saying what holds the domain. */
int vmbkBackupCleanStale(virDomainPtr dom, const char *name);

/* Is there a backup job on the domain (1) or not (0)?  *dir: its job directory if vmbk started
 * it, else NULL; *xml: the job's XML if xml is not NULL. */
int vmbkBackupFindJob(virDomainPtr dom, const char *name, char **dir, char **xml);

/* pid of the live vmbk that owns a job directory, else 0; *kind: what it was made for. */
int vmbkJobDirOwner(const char *dir, char **kind);

/* Remove the job directories of this domain that no live vmbk and no running job use: what a
 * killed vmbk left (stopping any qemu-nbd it left serving from them). */
void vmbkJobDirSweep(virDomainPtr dom, const char *uuid);

/* Where job directories live: $VMBK_STATE_DIR/jobs, default /var/lib/vmbk/jobs. */
char *vmbkJobsDir(void);

/* The user qemu runs as under qemu:///system (libvirt-qemu or qemu): false if neither exists. */
#include <sys/types.h>
bool vmbkQemuUser(uid_t *uid, gid_t *gid);
