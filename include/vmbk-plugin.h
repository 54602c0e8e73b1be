/* vmbk plugin API: the one public header of vmbk.
 *
 * A plugin is a shared object that exports one symbol, vmbk_plugin_init, which returns a
 * struct vmbk_plugin filled by VMBK_REGISTER_PLUGIN.  vmbk runs it in a child process of its
 * own (the runner), on the host or inside the backup appliance, and calls it:
 *
 *   config (once per key=value), config_complete
 *   open (once per point)
 *     block level, for each disk:   disk_begin, extent..., disk_end
 *     file level, per filesystem:   fs_begin, entry..., fs_end
 *   close (the point's outputs are complete), or abort (they are thrown away)
 *
 * Every callback is optional.  A plugin with disk_begin is a block-level plugin, one with
 * fs_begin a file-level plugin; it may be both.  Callbacks return 0 on success or -1 after
 * calling vmbk_error once; the backup then fails, naming the plugin, and no point is made.
 *
 * Output goes to the sink the plugin is handed: named files in the point (plugins never open
 * repository paths themselves, so the same plugin runs unchanged in the appliance).
 *
 * ABI guarantee: fields of struct vmbk_plugin and of the structs vmbk passes in are only
 * ever appended.  Each starts with _struct_size; vmbk copies MIN(sizeof ours, _struct_size)
 * of a plugin's struct into a zero-filled one, so an older plugin sees newer callbacks as
 * NULL.  An _api_version vmbk does not know is refused.
 *
 * This header is C90 and C++ clean.
 */
#ifndef VMBK_PLUGIN_H
#define VMBK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMBK_API_VERSION 1

/* How many of a plugin's callbacks may run at once.  The runner takes the strictest of the
 * plugin's model and its own; today it calls one callback at a time. */
#define VMBK_THREAD_MODEL_SERIALIZE_ALL 0
#define VMBK_THREAD_MODEL_PARALLEL 1

/* Which extents a block-level plugin sees at a point whose parent has its output. */
#define VMBK_VIEW_CHANGED 0 /* only what changed since the parent's output (the default) */
#define VMBK_VIEW_FULL 1    /* the whole disk, at every point */

/* The kinds of extent. */
#define VMBK_EXTENT_DATA 0 /* read it with vmbk_read */
#define VMBK_EXTENT_ZERO 1 /* reads as zeroes */

/* vmbk_output_open flags. */
#define VMBK_OUTPUT_FROM_PARENT 1 /* start as a copy of the parent point's output of this
                                   * plugin with the same name (reflinked where possible) */
#define VMBK_OUTPUT_SCRATCH 2     /* a work file, not part of the point; removed at close */

#if defined(__GNUC__) || defined(__clang__)
#define VMBK_ATTRIBUTE_FORMAT_PRINTF(fmtpos, argpos) \
    __attribute__((__format__(__printf__, fmtpos, argpos)))
#else
#define VMBK_ATTRIBUTE_FORMAT_PRINTF(fmtpos, argpos)
#endif

/* Opaque handles owned by the runner. */
struct vmbk_sink;   /* where a point's outputs of this plugin go */
struct vmbk_output; /* one named output */
struct vmbk_source; /* what vmbk_read reads: a disk, or the current file */

/* The point being made. */
struct vmbk_point {
    uint64_t _struct_size;
    const char *domain;      /* the domain's name (UTF-8) */
    const char *uuid;        /* the domain's uuid */
    const char *id;          /* "0003" */
    const char *level;       /* "full", "inc", "diff" */
    const char *time;        /* ISO 8601, UTC */
    const char *consistency; /* "crash" or "quiesced" */
};

/* One disk, for disk_begin. */
struct vmbk_disk {
    uint64_t _struct_size;
    const char *target;   /* "vda": unique within the point, safe as a file name */
    uint64_t size;        /* bytes */
    const char *parent;   /* the point this one's extents build on, or NULL: the extents then
                           * cover the whole disk */
    struct vmbk_source *source;
};

/* One filesystem, for fs_begin. */
struct vmbk_fs {
    uint64_t _struct_size;
    const char *name;       /* "sda1", "vg-root": unique within the point, safe as a file name */
    const char *device;     /* as the appliance names it: "/dev/sda1" */
    const char *type;       /* "ext4", "xfs", ... */
    const char *mountpoint; /* where the guest mounts it ("/", "/home"), or NULL if unknown */
};

/* An extended attribute (POSIX ACLs are the system.posix_acl_* ones). */
struct vmbk_xattr {
    const char *name;
    const void *value;
    size_t len;
};

/* One entry of a filesystem, for entry.  Entries come parents first. */
struct vmbk_entry {
    uint64_t _struct_size;
    const char *path;      /* relative to the filesystem's root, no leading "/": "etc/hostname";
                            * any byte but NUL may appear, including newlines */
    mode_t mode;           /* type and permission bits, as st_mode */
    uint64_t uid, gid;
    const char *uname, *gname; /* names when known, else NULL */
    uint64_t size;         /* regular files: the bytes vmbk_read returns */
    int64_t mtime, mtime_nsec;
    int64_t atime, atime_nsec;
    int64_t ctime, ctime_nsec;
    uint64_t rdev_major, rdev_minor; /* device nodes */
    const char *link;      /* symlinks: the target; hard links: the path of the first entry
                            * of the inode (and the entry's size is 0); else NULL */
    int hardlink;          /* link names an earlier entry, not a symlink target */
    const struct vmbk_xattr *xattrs;
    size_t nr_xattrs;
    const char *acl_access;  /* POSIX ACLs in the text form of acl_to_text, or NULL */
    const char *acl_default;
    struct vmbk_source *source; /* regular files: their data */
};

struct vmbk_plugin {
    /* Filled by VMBK_REGISTER_PLUGIN. */
    uint64_t _struct_size;
    int _api_version;
    int _thread_model; /* set it in the initializer; 0 is VMBK_THREAD_MODEL_SERIALIZE_ALL */

    /* Required. */
    const char *name;    /* lower case letters, digits, '-' and '_' */
    const char *version; /* the plugin's own */

    /* Optional. */
    const char *description; /* one line */
    const char *config_help; /* "key=value  what it does" lines */
    int block_view;          /* VMBK_VIEW_CHANGED or VMBK_VIEW_FULL */

    int (*load)(void);
    void (*unload)(void);
    /* Called for each key=value of --plugin NAME:key=value,...: reject an unknown key. */
    int (*config)(const char *key, const char *value);
    int (*config_complete)(void);

    void *(*open)(struct vmbk_sink *sink, const struct vmbk_point *point);
    /* The outputs are complete: flush what is pending (vmbk fsyncs and records them). */
    int (*close)(void *handle);
    /* The backup failed: free the handle (vmbk throws the outputs away). */
    void (*abort)(void *handle);

    /* Block level: extents come in order and cover the disk (or, with a parent, what
     * changed since it), data and zero, each at most 32 MiB. */
    int (*disk_begin)(void *handle, const struct vmbk_disk *disk);
    int (*extent)(void *handle, const struct vmbk_disk *disk, uint64_t offset,
                  uint64_t length, int type);
    int (*disk_end)(void *handle, const struct vmbk_disk *disk);

    /* File level: each filesystem is mounted read-only and walked. */
    int (*fs_begin)(void *handle, const struct vmbk_fs *fs);
    int (*entry)(void *handle, const struct vmbk_fs *fs, const struct vmbk_entry *entry);
    int (*fs_end)(void *handle, const struct vmbk_fs *fs);
};

/* Provided by the runner. */

/* Report why a callback fails (once, before it returns -1). */
extern void vmbk_error(const char *fmt, ...) VMBK_ATTRIBUTE_FORMAT_PRINTF(1, 2);
/* Print a debugging message (shown with VMBK_DEBUG=1). */
extern void vmbk_debug(const char *fmt, ...) VMBK_ATTRIBUTE_FORMAT_PRINTF(1, 2);
/* Parse a boolean (1/0, yes/no, true/false, on/off): 1 or 0, or -1 with an error. */
extern int vmbk_parse_bool(const char *value);
/* Parse a size with an optional K, M, G or T suffix (powers of 1024). */
extern int vmbk_parse_size(const char *value, uint64_t *size);

/* Read count bytes at offset of a disk (within a data extent) or of a regular file.  A file's
 * data comes as a stream: read it in order from offset 0 (each read starts where the last one
 * ended), during its entry callback; what is not read is skipped. */
extern int vmbk_read(struct vmbk_source *source, void *buf, uint32_t count, uint64_t offset);

/* Open the output name ("vda.raw"; letters, digits, '.', '-', '_', not starting with '.'). */
extern struct vmbk_output *vmbk_output_open(struct vmbk_sink *sink, const char *name,
                                            unsigned int flags);
/* Does the parent point have this plugin's output name?  1, 0, or -1 on error. */
extern int vmbk_output_in_parent(struct vmbk_sink *sink, const char *name);
/* Append, or write at offset. */
extern int vmbk_output_write(struct vmbk_output *out, const void *buf, size_t count);
extern int vmbk_output_pwrite(struct vmbk_output *out, const void *buf, size_t count,
                              uint64_t offset);
/* Make a range read as zeroes without storing them (a hole). */
extern int vmbk_output_zero(struct vmbk_output *out, uint64_t offset, uint64_t count);
extern int vmbk_output_truncate(struct vmbk_output *out, uint64_t size);
/* Convert what was written to the raw output (usually a scratch one) into the output name, an
 * image in another format, with qemu-img: format "vmdk", "vpc", "vhdx", "qcow2"; options as
 * qemu-img's -o, or NULL. */
extern int vmbk_output_convert(struct vmbk_output *raw, const char *name, const char *format,
                               const char *options);
/* Finish an output: 0, or -1 if its data could not be written. */
extern int vmbk_output_close(struct vmbk_output *out);

#define VMBK_REGISTER_PLUGIN(plugin)                                       \
    struct vmbk_plugin *vmbk_plugin_init(void);                            \
    struct vmbk_plugin *vmbk_plugin_init(void)                             \
    {                                                                      \
        (plugin)._struct_size = sizeof(plugin);                            \
        (plugin)._api_version = VMBK_API_VERSION;                          \
        return &(plugin);                                                  \
    }

#ifdef __cplusplus
}
#endif

#endif /* VMBK_PLUGIN_H */
