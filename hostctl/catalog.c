/* vmbk: a point's file catalog, catalog.sqlite in its directory
 *
 * Built from a launched handle, one filesystem at a time mounted read-only at /: guestfs_find0
 * lists every name into a local file in one call, then one guestfs_lstatnslist per directory
 * (vmbkGuestfsWalk); no call per file.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "catalog.h"
#include "pointfs.h"
#include "vmbk-error.h"

typedef sqlite3 vmbkSqlite;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkSqlite, sqlite3_close);
typedef sqlite3_stmt vmbkSqliteStmt;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vmbkSqliteStmt, sqlite3_finalize);

static const char schema[] =
    "PRAGMA journal_mode = OFF;"
    "PRAGMA synchronous = OFF;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE filesystems (device TEXT PRIMARY KEY, type TEXT, mountpoint TEXT,"
    "  indexed INTEGER NOT NULL, files INTEGER NOT NULL);"
    "CREATE TABLE files (device TEXT NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL,"
    "  type TEXT NOT NULL, size INTEGER, mode INTEGER, uid INTEGER, gid INTEGER,"
    "  mtime INTEGER, mtime_nsec INTEGER, changed INTEGER, PRIMARY KEY (device, path))"
    "  WITHOUT ROWID;"
    "CREATE TABLE deleted (device TEXT NOT NULL, path TEXT NOT NULL, type TEXT NOT NULL,"
    "  PRIMARY KEY (device, path)) WITHOUT ROWID;"
    "BEGIN;";

static int
vmbkSqlExec(sqlite3 *db, const char *sql, const char *path)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vmbkError(VMBK_ERR_INTERNAL, "catalog '%s': %s", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static sqlite3_stmt *
vmbkSqlPrepare(sqlite3 *db, const char *sql, const char *path)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        vmbkError(VMBK_ERR_INTERNAL, "catalog '%s': %s", path, sqlite3_errmsg(db));
        return NULL;
    }
    return st;
}

static const char *
vmbkFileType(int64_t mode)
{
    if (S_ISREG(mode))
        return "file";
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "symlink";
    if (S_ISCHR(mode))
        return "char";
    if (S_ISBLK(mode))
        return "block";
    if (S_ISFIFO(mode))
        return "fifo";
    if (S_ISSOCK(mode))
        return "socket";
    return "unknown";
}

typedef struct _vmbkCatalogWalk vmbkCatalogWalk;
struct _vmbkCatalogWalk {
    sqlite3 *db;
    sqlite3_stmt *ins;
    const vmbkGuestFs *fs;
    const char *dbpath;
    uint64_t count;
};

static int
vmbkCatalogAdd(void *opaque, const char *rel, char **names, struct guestfs_statns_list *sts,
               char **links G_GNUC_UNUSED)
{
    vmbkCatalogWalk *w = opaque;
    const char *mp = w->fs->mountpoint;
    g_autofree char *dir = NULL;
    guint j;

    /* The guest path of rel: under the filesystem's mountpoint, else DEVICE:/rel. */
    if (mp)
        dir = g_strconcat(g_str_equal(mp, "/") ? "" : mp, *rel ? "/" : "", rel, NULL);
    else
        dir = g_strconcat(w->fs->device, ":", *rel ? "/" : "", rel, NULL);
    for (j = 0; j < sts->len; j++) {
        struct guestfs_statns *s = &sts->val[j];
        g_autofree char *path = g_strconcat(dir, "/", names[j], NULL);

        if (s->st_ino < 0) /* vanished: lstatnslist reports it with -1 */
            continue;
        sqlite3_reset(w->ins);
        sqlite3_bind_text(w->ins, 1, w->fs->device, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->ins, 2, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->ins, 3, names[j], -1, SQLITE_STATIC);
        sqlite3_bind_text(w->ins, 4, vmbkFileType(s->st_mode), -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->ins, 5, s->st_size);
        sqlite3_bind_int64(w->ins, 6, s->st_mode & 07777);
        sqlite3_bind_int64(w->ins, 7, s->st_uid);
        sqlite3_bind_int64(w->ins, 8, s->st_gid);
        sqlite3_bind_int64(w->ins, 9, s->st_mtime_sec);
        sqlite3_bind_int64(w->ins, 10, s->st_mtime_nsec);
        if (sqlite3_step(w->ins) != SQLITE_DONE) {
            vmbkError(VMBK_ERR_INTERNAL, "catalog '%s': %s", w->dbpath, sqlite3_errmsg(w->db));
            return -1;
        }
        w->count++;
    }
    return 0;
}

static int
vmbkCatalogMeta(sqlite3 *db, const char *dbpath, const char *key, const char *value)
{
    g_autoptr(vmbkSqliteStmt) st =
        vmbkSqlPrepare(db, "INSERT INTO meta (key, value) VALUES (?1, ?2)", dbpath);

    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        vmbkError(VMBK_ERR_INTERNAL, "catalog '%s': %s", dbpath, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* changed and deleted, against the parent's catalog. */
static int
vmbkCatalogCompare(sqlite3 *db, const char *dbpath, const char *parent_db,
                   vmbkCatalogStats *stats)
{
    g_autoptr(vmbkSqliteStmt) att = NULL;

    if (!parent_db) {
        if (vmbkSqlExec(db, "UPDATE files SET changed = 1;", dbpath) < 0)
            return -1;
        stats->changed = stats->files;
        return 0;
    }
    if (!(att = vmbkSqlPrepare(db, "ATTACH DATABASE ?1 AS parent", dbpath)))
        return -1;
    sqlite3_bind_text(att, 1, parent_db, -1, SQLITE_STATIC);
    if (sqlite3_step(att) != SQLITE_DONE) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot open the parent's catalog '%s': %s", parent_db,
                  sqlite3_errmsg(db));
        return -1;
    }
    if (vmbkSqlExec(db,
                    "UPDATE files SET changed = NOT EXISTS (SELECT 1 FROM parent.files p"
                    "  WHERE p.device = files.device AND p.path = files.path"
                    "  AND p.type = files.type AND p.size IS files.size AND p.mode IS files.mode"
                    "  AND p.mtime IS files.mtime AND p.mtime_nsec IS files.mtime_nsec);"
                    "INSERT INTO deleted (device, path, type)"
                    "  SELECT p.device, p.path, p.type FROM parent.files p WHERE NOT EXISTS"
                    "  (SELECT 1 FROM files f WHERE f.device = p.device AND f.path = p.path);",
                    dbpath) < 0)
        return -1;
    stats->deleted = sqlite3_changes(db);
    {
        g_autoptr(vmbkSqliteStmt) cnt =
            vmbkSqlPrepare(db, "SELECT count(*) FROM files WHERE changed", dbpath);
        if (!cnt)
            return -1;
        if (sqlite3_step(cnt) == SQLITE_ROW)
            stats->changed = sqlite3_column_int64(cnt, 0);
    }
    return 0;
}

static int
vmbkCatalogFill(guestfs_h *g, sqlite3 *db, const char *dbpath, const vmbkInspection *insp,
                const vmbkPoint *point, const char *parent_dir, vmbkCatalogStats *stats)
{
    g_autoptr(vmbkSqliteStmt) ins = NULL;
    g_autoptr(vmbkSqliteStmt) fsins = NULL;
    g_autofree char *parent_db = NULL;
    g_autofree char *what = g_strdup_printf("point %s of domain '%s'", point->id, point->domain);
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *created = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
    guint i;

    if (parent_dir && vmbkCatalogExists(parent_dir))
        parent_db = g_build_filename(parent_dir, VMBK_CATALOG, NULL);
    if (vmbkSqlExec(db, schema, dbpath) < 0 ||
        vmbkCatalogMeta(db, dbpath, "version", "1") < 0 ||
        vmbkCatalogMeta(db, dbpath, "domain", point->domain) < 0 ||
        vmbkCatalogMeta(db, dbpath, "point", point->id) < 0 ||
        vmbkCatalogMeta(db, dbpath, "parent", point->parent) < 0 ||
        vmbkCatalogMeta(db, dbpath, "parent_catalog", parent_db ? "yes" : "no") < 0 ||
        vmbkCatalogMeta(db, dbpath, "created", created) < 0)
        return -1;
    if (!(ins = vmbkSqlPrepare(db, "INSERT OR REPLACE INTO files (device, path, name, type, "
                               "size, mode, uid, gid, mtime, mtime_nsec) VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", dbpath)) ||
        !(fsins = vmbkSqlPrepare(db, "INSERT INTO filesystems (device, type, mountpoint, "
                                 "indexed, files) VALUES (?1, ?2, ?3, ?4, ?5)", dbpath)))
        return -1;

    for (i = 0; i < insp->filesystems->len; i++) {
        vmbkGuestFs *fs = g_ptr_array_index(insp->filesystems, i);
        uint64_t count = 0;
        bool indexed = false;

        if (vmbkGuestFsMountable(fs)) {
            if (guestfs_umount_all(g) < 0) {
                vmbkErrorGuestfs(g, "cannot unmount the filesystems of %s", what);
                return -1;
            }
            if (vmbkGuestfsMountRo(g, fs, "/", what) < 0) {
                /* The others are still worth a catalog. */
                fprintf(stderr, "%s: warning: %s; its files are not in the catalog\n",
                        vmbk_progname, vmbkErrorMessage());
                vmbkErrorReset();
            } else {
                vmbkCatalogWalk w = { db, ins, fs, dbpath, 0 };
                if (vmbkGuestfsWalk(g, "/", false, vmbkCatalogAdd, &w, what) < 0)
                    return -1;
                count = w.count;
                indexed = true;
                stats->filesystems++;
                stats->files += count;
            }
        }
        sqlite3_reset(fsins);
        sqlite3_bind_text(fsins, 1, fs->device, -1, SQLITE_STATIC);
        sqlite3_bind_text(fsins, 2, fs->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(fsins, 3, fs->mountpoint, -1, SQLITE_STATIC);
        sqlite3_bind_int(fsins, 4, indexed);
        sqlite3_bind_int64(fsins, 5, count);
        if (sqlite3_step(fsins) != SQLITE_DONE) {
            vmbkError(VMBK_ERR_INTERNAL, "catalog '%s': %s", dbpath, sqlite3_errmsg(db));
            return -1;
        }
    }
    guestfs_umount_all(g);
    /* ATTACH cannot run inside a transaction. */
    if (vmbkSqlExec(db, "COMMIT;", dbpath) < 0)
        return -1;
    if ((parent_db || !point->parent) && vmbkCatalogCompare(db, dbpath, parent_db, stats) < 0)
        return -1;
    return 0;
}

int
vmbkCatalogBuild(guestfs_h *g, const vmbkInspection *insp, const vmbkPoint *point,
                 const char *parent_dir, vmbkCatalogStats *stats)
{
    g_autofree char *path = g_build_filename(point->dir, VMBK_CATALOG, NULL);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.tmp-%08x", point->dir, VMBK_CATALOG,
                                           g_random_int());
    sqlite3 *db = NULL;
    int ret;

    memset(stats, 0, sizeof(*stats));
    if (sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot create the catalog '%s': %s", tmp,
                  db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    ret = vmbkCatalogFill(g, db, tmp, insp, point, parent_dir, stats);
    if (sqlite3_close(db) != SQLITE_OK && ret == 0) {
        vmbkError(VMBK_ERR_INTERNAL, "cannot close the catalog '%s'", tmp);
        ret = -1;
    }
    if (ret == 0)
        ret = vmbkRepoReplaceFile(tmp, path);
    if (ret < 0)
        g_unlink(tmp);
    return ret;
}

bool
vmbkCatalogExists(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, VMBK_CATALOG, NULL);

    return g_file_test(path, G_FILE_TEST_IS_REGULAR);
}

int
vmbkCatalogFind(const vmbkPoint *point, const char *pattern, vmbkCatalogHitFunc hit,
                void *opaque)
{
    g_autofree char *path = g_build_filename(point->dir, VMBK_CATALOG, NULL);
    g_autoptr(vmbkSqlite) db = NULL;
    g_autoptr(vmbkSqliteStmt) st = NULL;
    int n = 0, rc;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        vmbkError(VMBK_ERR_OPERATION, "cannot open the catalog '%s': %s", path,
                  db ? sqlite3_errmsg(db) : "out of memory");
        return -1;
    }
    if (!(st = vmbkSqlPrepare(db, "SELECT path, type, size, mtime FROM files WHERE path GLOB ?1 "
                              "OR (?2 AND name GLOB ?1) ORDER BY path", path)))
        return -1;
    sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, strchr(pattern, '/') == NULL);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        hit(opaque, point, (const char *) sqlite3_column_text(st, 0),
            (const char *) sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2),
            sqlite3_column_int64(st, 3));
        n++;
    }
    if (rc != SQLITE_DONE) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read the catalog '%s': %s", path,
                  sqlite3_errmsg(db));
        return -1;
    }
    return n;
}
