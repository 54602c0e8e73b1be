/* vmbk ls, vmbk cat: a point's files, read without a restore: in a libguestfs appliance launched
 * for the command (--via host), or in the warm backup appliance (--via appliance) */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliancefs.h"
#include "pointfs.h"
#include "vmbk.h"

static void
vmbkModeString(int64_t mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    int i;

    out[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : S_ISCHR(mode) ? 'c' :
             S_ISBLK(mode) ? 'b' : S_ISFIFO(mode) ? 'p' : S_ISSOCK(mode) ? 's' : '-';
    for (i = 0; i < 9; i++)
        out[i + 1] = (mode & (0400 >> i)) ? rwx[i] : '-';
    if (mode & S_ISUID)
        out[3] = (mode & S_IXUSR) ? 's' : 'S';
    if (mode & S_ISGID)
        out[6] = (mode & S_IXGRP) ? 's' : 'S';
    if (mode & S_ISVTX)
        out[9] = (mode & S_IXOTH) ? 't' : 'T';
    out[10] = '\0';
}

static void
vmbkLsLine(const struct guestfs_statns *st, const char *name, const char *link)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(st->st_mtime_sec);
    g_autofree char *when = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("-");
    char mode[11];

    vmbkModeString(st->st_mode, mode);
    printf("%s %5" PRId64 " %5" PRId64 " %12" PRId64 " %s %s%s%s\n", mode, st->st_uid,
           st->st_gid, st->st_size, when, name, link ? " -> " : "", link ? link : "");
}

static void
vmbkFreeStrv(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int
vmbkLsDir(vmbkSource *src, const char *arg, const char *path, bool longfmt)
{
    char **names = guestfs_ls(src->g, path);
    struct guestfs_statns_list *sts = NULL;
    char **links = NULL;
    size_t i;
    int ret = -1;

    if (!names) {
        vmbkErrorGuestfs(src->g, "cannot list '%s' at %s", arg, src->what);
        return -1;
    }
    if (!longfmt) {
        for (i = 0; names[i]; i++)
            printf("%s\n", names[i]);
        vmbkFreeStrv(names);
        return 0;
    }
    if (!(sts = guestfs_lstatnslist(src->g, path, names)) ||
        !(links = guestfs_readlinklist(src->g, path, names))) {
        vmbkErrorGuestfs(src->g, "cannot read the metadata of '%s' at %s", arg, src->what);
        goto cleanup;
    }
    for (i = 0; names[i] && i < sts->len; i++)
        vmbkLsLine(&sts->val[i], names[i],
                   S_ISLNK(sts->val[i].st_mode) && links[i] && *links[i] ? links[i] : NULL);
    ret = 0;

 cleanup:
    if (sts)
        guestfs_free_statns_list(sts);
    vmbkFreeStrv(links);
    vmbkFreeStrv(names);
    return ret;
}

/* --via: true for appliance, false for host, -1 (reported) for anything else. */
static int
vmbkViaAppliance(const char *cmdname, const char *via)
{
    if (g_str_equal(via, "appliance"))
        return 1;
    if (g_str_equal(via, "host"))
        return 0;
    vmbkError(VMBK_ERR_USAGE, "%s: unknown --via '%s'; use host or appliance", cmdname, via);
    return -1;
}

static int
vmbkLsAppliance(vmbkGlobal *global, const char *repo_path, const char *domain, const char *id,
                const char *arg, bool longfmt)
{
    g_autoptr(vmbkApplFs) fs = NULL;
    g_autofree char *path = NULL;
    g_autofree struct guestfs_statns *st = NULL;
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GArray) sts = NULL;
    g_autoptr(GPtrArray) links = NULL;
    guint i;

    if (!(fs = vmbkApplFsOpen(global, repo_path, domain, id)) ||
        !(path = vmbkApplFsResolve(fs, arg)) ||
        vmbkApplFsStat(fs, arg, path, false, &st, NULL) < 0)
        return -1;
    if (!S_ISDIR(st->st_mode)) {
        if (longfmt)
            vmbkLsLine(st, arg, NULL);
        else
            printf("%s\n", arg);
    } else {
        if (vmbkApplFsList(fs, arg, path, &names, &sts, &links) < 0)
            return -1;
        for (i = 0; i < names->len; i++) {
            const struct guestfs_statns *e = &g_array_index(sts, struct guestfs_statns, i);
            const char *name = g_ptr_array_index(names, i);
            const char *link = g_ptr_array_index(links, i);

            if (longfmt)
                vmbkLsLine(e, name, S_ISLNK(e->st_mode) && *link ? link : NULL);
            else
                printf("%s\n", name);
        }
    }
    if (fflush(stdout) != 0) {
        vmbkErrorSystem(errno, "cannot write the listing");
        return -1;
    }
    return 0;
}

VMBK_COMMAND(vmbkCmdLs)
{
    const char *repo_path = NULL, *point_id = NULL, *via = "host";
    gboolean longfmt = FALSE;
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', latest (the default), or live", "ID" },
        { "long", 'l', 0, G_OPTION_ARG_NONE, &longfmt, "mode, owner, size, mtime (UTC)", NULL },
        { "via", 0, 0, G_OPTION_ARG_STRING, &via, "host (a libguestfs appliance launched for "
          "the command; the default) or appliance (the warm backup appliance VM)", "RUNNER" },
        { NULL },
    };
    g_autoptr(vmbkSource) src = NULL;
    g_autofree char *path = NULL;
    struct guestfs_statns *st = NULL;
    int ret;

    if (vmbkParseOptions(cmd, entries,
                         "PATH is a path in the guest, through its own mountpoints, or\n"
                         "DEVICE:/PATH for one filesystem (see 'vmbk inspect').",
                         &argc, &argv, 2, 2) < 0)
        return -1;
    if (!repo_path && g_strcmp0(point_id, "live") != 0) {
        vmbkError(VMBK_ERR_USAGE, "ls: no repository given; pass -r REPO");
        return -1;
    }
    if ((ret = vmbkViaAppliance("ls", via)) < 0)
        return -1;
    if (ret)
        return vmbkLsAppliance(global, repo_path, argv[1], point_id, argv[2], longfmt);
    if (!(src = vmbkSourceOpen(global, repo_path, argv[1], point_id)) ||
        !(path = vmbkSourceResolve(src, argv[2])) ||
        vmbkSourceStat(src, argv[2], path, false, &st) < 0)
        return -1;
    if (S_ISDIR(st->st_mode)) {
        ret = vmbkLsDir(src, argv[2], path, longfmt);
    } else {
        if (longfmt)
            vmbkLsLine(st, argv[2], NULL);
        else
            printf("%s\n", argv[2]);
        ret = 0;
    }
    guestfs_free_statns(st);
    return ret;
}

static int
vmbkCatAppliance(vmbkGlobal *global, const char *repo_path, const char *domain, const char *id,
                 const char *arg)
{
    g_autoptr(vmbkApplFs) fs = NULL;
    g_autofree char *path = NULL;
    g_autofree struct guestfs_statns *st = NULL;

    if (!(fs = vmbkApplFsOpen(global, repo_path, domain, id)) ||
        !(path = vmbkApplFsResolve(fs, arg)) ||
        vmbkApplFsStat(fs, arg, path, true, &st, NULL) < 0)
        return -1;
    if (S_ISDIR(st->st_mode)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is a directory at %s; use 'vmbk ls' or "
                  "'vmbk copy-out'", arg, fs->what);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a regular file at %s", arg, fs->what);
        return -1;
    }
    fflush(stdout);
    return vmbkApplFsRead(fs, arg, path, true, false, STDOUT_FILENO);
}

VMBK_COMMAND(vmbkCmdCat)
{
    const char *repo_path = NULL, *point_id = NULL, *via = "host";
    GOptionEntry entries[] = {
        { "repo", 'r', 0, G_OPTION_ARG_FILENAME, &repo_path, "the repository", "REPO" },
        { "point", 0, 0, G_OPTION_ARG_STRING, &point_id,
          "an id from 'vmbk list', latest (the default), or live", "ID" },
        { "via", 0, 0, G_OPTION_ARG_STRING, &via, "host (a libguestfs appliance launched for "
          "the command; the default) or appliance (the warm backup appliance VM)", "RUNNER" },
        { NULL },
    };
    g_autoptr(vmbkSource) src = NULL;
    g_autofree char *path = NULL;
    struct guestfs_statns *st = NULL;
    bool regular;

    if (vmbkParseOptions(cmd, entries,
                         "Writes the file's content at the point to standard output.",
                         &argc, &argv, 2, 2) < 0)
        return -1;
    if (!repo_path && g_strcmp0(point_id, "live") != 0) {
        vmbkError(VMBK_ERR_USAGE, "cat: no repository given; pass -r REPO");
        return -1;
    }
    switch (vmbkViaAppliance("cat", via)) {
    case -1:
        return -1;
    case 1:
        return vmbkCatAppliance(global, repo_path, argv[1], point_id, argv[2]);
    }
    if (!(src = vmbkSourceOpen(global, repo_path, argv[1], point_id)) ||
        !(path = vmbkSourceResolve(src, argv[2])) ||
        vmbkSourceStat(src, argv[2], path, true, &st) < 0)
        return -1;
    regular = S_ISREG(st->st_mode);
    if (S_ISDIR(st->st_mode)) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is a directory at %s; use 'vmbk ls' or "
                  "'vmbk copy-out'", argv[2], src->what);
    } else if (!regular) {
        vmbkError(VMBK_ERR_OPERATION, "'%s' is not a regular file at %s", argv[2], src->what);
    }
    guestfs_free_statns(st);
    if (!regular)
        return -1;
    fflush(stdout);
    if (guestfs_download(src->g, path, "/dev/fd/1") < 0) {
        vmbkErrorGuestfs(src->g, "cannot read '%s' at %s", argv[2], src->what);
        return -1;
    }
    return 0;
}
