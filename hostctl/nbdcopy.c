/* vmbk: copy a disk from an NBD export into an NBD-served image, computing its digest
 *
 * First the map: block status for base:allocation (and the dirty bitmap of an incremental) says
 * which 64 KiB digest leaves must be read: a full reads the leaves holding data, an incremental
 * the dirty ones; every other leaf is known without I/O (zeroes, or the parent's).  Then worker
 * threads, each with its own connection to both sides, take runs of up to 4 MiB, read them,
 * digest each leaf, and write the leaves that hold data (a leaf of zeroes is skipped on a fresh
 * destination and written as zeroes otherwise, never as data).
 *
 * qemu's NBD server is slow with large requests (measured here: 4 MiB reads take three times as
 * long as 1 MiB ones, 256 KiB writes three times as long as 64 KiB ones) and fast with many small
 * ones in flight, so each worker keeps SLOTS reads of one unit (512 KiB) in flight on its source
 * connection and writes back leaf by leaf (64 KiB), all asynchronously, as nbdcopy does.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>

#include <glib.h>
#include <libnbd.h>

#include "nbdcopy.h"
#include "vmbk-autoptr.h"
#include "vmbk-error.h"

#define UNIT_LEAVES 8 /* 512 KiB per read */
#define SLOTS 8        /* reads in flight per worker */
#define LEAF VMBK_DIGEST_LEAF_SIZE

typedef struct {
    uint64_t first; /* leaf */
    uint64_t count; /* leaves */
} vmbkCopyUnit;

typedef struct {
    vmbkCopy *copy;
    guint64 *need;   /* bitmap, per leaf: read it (bounded: 2 MiB per TiB of disk) */
    uint64_t cursor; /* the next leaf to consider for a unit (under lock) */
    gint failed;     /* a worker failed: stop */
    GMutex lock;     /* cursor and progress */
    uint64_t done, total;
    gint64 last_progress;
} vmbkCopyState;

static inline bool
vmbkNeed(const vmbkCopyState *st, uint64_t i)
{
    return st->need[i / 64] & (G_GUINT64_CONSTANT(1) << (i % 64));
}

unsigned int
vmbkCopyDefaultThreads(void)
{
    const char *env = g_getenv("VMBK_COPY_THREADS");
    int n = env ? atoi(env) : 0;

    if (n > 0 && n <= 64)
        return n;
    /* qemu on both sides of the copy needs CPU too: measured here on 2 cores, 2 workers beat 4. */
    return CLAMP(g_get_num_processors(), 1, 4);
}

static struct nbd_handle *
vmbkCopyConnect(vmbkCopy *copy, const vmbkNbdExport *ex, const char *socket, const char *export,
                bool map)
{
    g_autoptr(vmbkNbd) nbd = NULL;

    if (!(nbd = nbd_create())) {
        vmbkError(VMBK_ERR_NBD, "cannot create an NBD handle for %s", copy->what);
        return NULL;
    }
    if ((map && nbd_add_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0) ||
        (map && copy->dirty_bitmap && nbd_add_meta_context(nbd, copy->dirty_bitmap) < 0)) {
        vmbkError(VMBK_ERR_NBD, "cannot ask for the extents of %s", copy->what);
        return NULL;
    }
    if (vmbkNbdExportConnect(nbd, ex, socket, export, copy->what) < 0)
        return NULL;
    return g_steal_pointer(&nbd);
}

typedef struct {
    vmbkCopyState *st;
    const char *dirty;
    uint64_t covered; /* the smallest end reached by any context in this reply */
} vmbkMapCtx;

static void
vmbkCopyMark(vmbkCopyState *st, uint64_t off, uint64_t len)
{
    uint64_t first = off / LEAF, last = (off + len - 1) / LEAF, i;

    for (i = first; i <= last && i < st->copy->digest->nleaves; i++)
        st->need[i / 64] |= G_GUINT64_CONSTANT(1) << (i % 64);
}

static int
vmbkCopyExtent(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
               size_t nr_entries, int *error)
{
    vmbkMapCtx *ctx = opaque;
    bool dirty = ctx->dirty && g_str_equal(context, ctx->dirty);
    bool alloc = g_str_equal(context, LIBNBD_CONTEXT_BASE_ALLOCATION);
    size_t i;

    if (!dirty && !alloc)
        return 0;
    for (i = 0; i + 1 < nr_entries; i += 2) {
        uint32_t len = entries[i], flags = entries[i + 1];

        /* A full reads what is not known zero; an incremental what is dirty. */
        if (ctx->dirty ? (dirty && (flags & 1)) : !(flags & LIBNBD_STATE_ZERO))
            vmbkCopyMark(ctx->st, offset, len);
        offset += len;
    }
    if (ctx->dirty ? dirty : alloc)
        ctx->covered = MIN(ctx->covered, offset);
    return 0;
}

static int
vmbkCopyMap(vmbkCopyState *st, struct nbd_handle *nbd)
{
    vmbkCopy *copy = st->copy;
    uint64_t off = 0;

    if (copy->dirty_bitmap && nbd_can_meta_context(nbd, copy->dirty_bitmap) != 1) {
        vmbkError(VMBK_ERR_OPERATION, "the export of %s has no dirty bitmap '%s'", copy->what,
                  copy->dirty_bitmap);
        return -1;
    }
    if (nbd_can_meta_context(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1) {
        /* No allocation map: read everything (zeroes are still detected and not stored). */
        if (!copy->dirty_bitmap) {
            memset(st->need, 0xff, (copy->digest->nleaves + 63) / 64 * 8);
            return 0;
        }
    }

    while (off < copy->size) {
        uint64_t count = MIN(copy->size - off, (uint64_t) 1 << 30);
        vmbkMapCtx ctx = { st, copy->dirty_bitmap, UINT64_MAX };
        nbd_extent_callback cb = { .callback = vmbkCopyExtent, .user_data = &ctx };

        if (nbd_block_status(nbd, count, off, cb, 0) < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot map the blocks of %s at offset %" PRIu64, copy->what,
                      off);
            return -1;
        }
        if (ctx.covered == UINT64_MAX || ctx.covered <= off) {
            vmbkError(VMBK_ERR_OPERATION, "the NBD server gave no block status for %s at offset "
                      "%" PRIu64, copy->what, off);
            return -1;
        }
        off = ctx.covered;
    }
    return 0;
}

/* Count the leaves to read; in a full, the others are zeroes: record that in the digest. */
static int
vmbkCopyPlan(vmbkCopyState *st)
{
    vmbkDigest *digest = st->copy->digest;
    uint64_t i = 0, start;

    while (i < digest->nleaves) {
        if (vmbkNeed(st, i)) {
            st->total++;
            i++;
            continue;
        }
        for (start = i; i < digest->nleaves && !vmbkNeed(st, i); i++)
            ;
        /* An incremental keeps the parent's leaves there. */
        if (!st->copy->dirty_bitmap && vmbkDigestSetZeroLeaves(digest, start, i - start) < 0)
            return -1;
    }
    return 0;
}

/* The next run of up to UNIT_LEAVES leaves to read; false when there is none left. */
static bool
vmbkCopyNextUnit(vmbkCopyState *st, vmbkCopyUnit *unit)
{
    uint64_t n = st->copy->digest->nleaves;
    bool found = false;

    g_mutex_lock(&st->lock);
    while (st->cursor < n && !vmbkNeed(st, st->cursor)) {
        /* Skip a word of clear bits at a time. */
        if (st->cursor % 64 == 0 && st->need[st->cursor / 64] == 0)
            st->cursor += 64;
        else
            st->cursor++;
    }
    if (st->cursor < n) {
        unit->first = st->cursor;
        while (st->cursor < n && vmbkNeed(st, st->cursor) &&
               st->cursor - unit->first < UNIT_LEAVES)
            st->cursor++;
        unit->count = st->cursor - unit->first;
        found = true;
    }
    g_mutex_unlock(&st->lock);
    return found;
}

static void
vmbkCopyReport(vmbkCopyState *st, uint64_t leaves)
{
    vmbkCopy *copy = st->copy;
    gint64 now;

    if (!copy->progress)
        return;
    g_mutex_lock(&st->lock);
    st->done += leaves;
    now = g_get_monotonic_time();
    if (now - st->last_progress > 200000 || st->done == st->total) {
        st->last_progress = now;
        copy->progress(copy->progress_opaque, st->done, st->total);
    }
    g_mutex_unlock(&st->lock);
}

/* One read in flight, then its writes. */
typedef struct {
    guint8 *buf;
    vmbkCopyUnit unit;
    int state;       /* SLOT_FREE, SLOT_READING, SLOT_READ, SLOT_WRITING */
    int error;       /* errno of a failed request */
    int writes;      /* writes in flight */
} vmbkCopySlot;

enum { SLOT_FREE, SLOT_READING, SLOT_READ, SLOT_WRITING };

typedef struct {
    vmbkCopyState *st;
    struct nbd_handle *src, *dst;
    vmbkCopySlot slots[SLOTS];
    uint64_t nread, written, zeroed;
} vmbkCopyWorkerState;

static int
vmbkCopyReadDone(void *user_data, int *error)
{
    vmbkCopySlot *slot = user_data;

    if (*error)
        slot->error = *error;
    slot->state = SLOT_READ;
    return 1; /* retire the command */
}

static int
vmbkCopyWriteDone(void *user_data, int *error)
{
    vmbkCopySlot *slot = user_data;

    if (*error)
        slot->error = *error;
    slot->writes--;
    return 1;
}

/* Issue the writes for a slot whose read is done: runs of data leaves as data, zero leaves as
 * zeroes (or nothing on a fresh destination), one request per leaf. */
static int
vmbkCopyIssueWrites(vmbkCopyWorkerState *ws, vmbkCopySlot *slot, const bool *zero)
{
    vmbkCopy *copy = ws->st->copy;
    const vmbkCopyUnit *unit = &slot->unit;
    uint64_t i;

    for (i = 0; i < unit->count; i++) {
        uint64_t off = (unit->first + i) * LEAF;
        uint64_t len = MIN(off + LEAF, copy->size) - off;
        nbd_completion_callback cb = { .callback = vmbkCopyWriteDone, .user_data = slot };
        int64_t r;

        if (zero[i] && copy->dst_fresh)
            continue;
        if (zero[i]) {
            r = nbd_aio_zero(ws->dst, len, off, cb, 0);
            ws->zeroed += len;
        } else {
            r = nbd_aio_pwrite(ws->dst, slot->buf + i * LEAF, len, off, cb, 0);
            ws->written += len;
        }
        if (r < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot write %s at offset %" PRIu64, copy->what, off);
            return -1;
        }
        slot->writes++;
    }
    slot->state = SLOT_WRITING;
    return 0;
}

/* Let libnbd make progress on both connections: wait for either to be ready, then notify it. */
static int
vmbkCopyPoll(vmbkCopyWorkerState *ws)
{
    struct nbd_handle *h[2] = { ws->src, ws->dst };
    struct pollfd fds[2];
    int n = 0, i;

    for (i = 0; i < 2; i++) {
        unsigned dir;

        if (!h[i] || nbd_aio_in_flight(h[i]) <= 0)
            continue;
        dir = nbd_aio_get_direction(h[i]);
        fds[n].fd = nbd_aio_get_fd(h[i]);
        fds[n].events = ((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                        ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0);
        fds[n].revents = 0;
        n++;
    }
    if (n == 0)
        return 0;
    if (poll(fds, n, -1) < 0) {
        if (errno == EINTR)
            return 0;
        vmbkErrorSystem(errno, "poll");
        return -1;
    }
    for (i = 0, n = 0; i < 2; i++) {
        if (!h[i] || nbd_aio_in_flight(h[i]) <= 0)
            continue;
        if (fds[n].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (nbd_aio_notify_read(h[i]) < 0)
                return -1;
        } else if (fds[n].revents & POLLOUT) {
            if (nbd_aio_notify_write(h[i]) < 0)
                return -1;
        }
        n++;
    }
    return 0;
}

static gpointer
vmbkCopyWorker(gpointer opaque)
{
    vmbkCopyState *st = opaque;
    vmbkCopy *copy = st->copy;
    g_autoptr(vmbkNbd) src = NULL;
    g_autoptr(vmbkNbd) dst = NULL;
    g_autofree guint8 *bufs = g_malloc(SLOTS * UNIT_LEAVES * LEAF);
    vmbkCopyWorkerState ws = { .st = st };
    bool zero[UNIT_LEAVES];
    bool more = true;
    int busy, i;

    if (!(src = vmbkCopyConnect(copy, copy->src_tcp, copy->src_socket, copy->src_export, false)))
        goto fail;
    if (copy->dst_socket && !(dst = vmbkCopyConnect(copy, NULL, copy->dst_socket, "", false)))
        goto fail;
    ws.src = src;
    ws.dst = dst;
    for (i = 0; i < SLOTS; i++)
        ws.slots[i].buf = bufs + (size_t) i * UNIT_LEAVES * LEAF;

    for (;;) {
        if (g_atomic_int_get(&st->failed))
            goto fail;
        if (copy->interrupted && *copy->interrupted) {
            vmbkError(VMBK_ERR_OPERATION, "interrupted while copying %s", copy->what);
            goto fail;
        }
        busy = 0;
        for (i = 0; i < SLOTS; i++) {
            vmbkCopySlot *slot = &ws.slots[i];
            uint64_t off, len;

            if (slot->error) {
                vmbkError(VMBK_ERR_SYSTEM, "cannot copy %s at offset %" PRIu64 ": %s",
                          copy->what, slot->unit.first * LEAF, g_strerror(slot->error));
                goto fail;
            }
            if (slot->state == SLOT_WRITING && slot->writes == 0) {
                vmbkCopyReport(st, slot->unit.count);
                slot->state = SLOT_FREE;
            }
            if (slot->state == SLOT_FREE && more) {
                nbd_completion_callback cb = { .callback = vmbkCopyReadDone, .user_data = slot };

                if (!vmbkCopyNextUnit(st, &slot->unit)) {
                    more = false;
                } else {
                    off = slot->unit.first * LEAF;
                    len = MIN((slot->unit.first + slot->unit.count) * LEAF, copy->size) - off;
                    slot->state = SLOT_READING;
                    if (nbd_aio_pread(src, slot->buf, len, off, cb, 0) < 0) {
                        vmbkError(VMBK_ERR_NBD, "cannot read %s at offset %" PRIu64,
                                  copy->what, off);
                        goto fail;
                    }
                    ws.nread += len;
                }
            }
            if (slot->state == SLOT_READ) {
                if (vmbkDigestHashLeaves(copy->digest, slot->unit.first, slot->unit.count,
                                         slot->buf, zero) < 0)
                    goto fail;
                if (dst) {
                    if (vmbkCopyIssueWrites(&ws, slot, zero) < 0)
                        goto fail;
                } else {
                    slot->state = SLOT_WRITING; /* nothing to write */
                }
            }
            busy += slot->state != SLOT_FREE;
        }
        if (!busy && !more)
            break;
        if (vmbkCopyPoll(&ws) < 0) {
            vmbkError(VMBK_ERR_NBD, "cannot copy %s", copy->what);
            goto fail;
        }
    }

    if (dst && nbd_flush(dst, 0) < 0) {
        vmbkError(VMBK_ERR_NBD, "cannot flush the copy of %s", copy->what);
        goto fail;
    }
    if (dst)
        nbd_shutdown(dst, 0);

    g_mutex_lock(&st->lock);
    copy->bytes_read += ws.nread;
    copy->bytes_written += ws.written;
    copy->bytes_zeroed += ws.zeroed;
    g_mutex_unlock(&st->lock);
    return GINT_TO_POINTER(0);

 fail:
    g_atomic_int_set(&st->failed, 1);
    /* Requests still in flight point into bufs: let them finish before it goes. */
    while ((src && nbd_aio_in_flight(src) > 0) || (dst && nbd_aio_in_flight(dst) > 0)) {
        if (vmbkCopyPoll(&ws) < 0)
            break;
    }
    return GINT_TO_POINTER(-1);
}

int
vmbkCopyRun(vmbkCopy *copy)
{
    g_autoptr(vmbkNbd) nbd = NULL;
    g_autoptr(GPtrArray) threads = g_ptr_array_new();
    g_autofree guint64 *need = NULL;
    vmbkCopyState st = { .copy = copy };
    int64_t size;
    int ret = 0;
    guint i;

    if (!(nbd = vmbkCopyConnect(copy, copy->src_tcp, copy->src_socket, copy->src_export, true)))
        return -1;
    if ((size = nbd_get_size(nbd)) < 0) {
        vmbkError(VMBK_ERR_NBD, "cannot get the size of %s", copy->what);
        return -1;
    }
    copy->size = size;
    if (!copy->digest) {
        if (!(copy->digest = vmbkDigestCreate(NULL, NULL, copy->size)))
            return -1;
    } else if (copy->digest->size != copy->size) {
        vmbkError(VMBK_ERR_OPERATION, "%s has %" PRIu64 " bytes, its digest is for %" PRIu64
                  "; run a full backup", copy->what, copy->size, copy->digest->size);
        return -1;
    }

    st.need = need = g_new0(guint64, copy->digest->nleaves / 64 + 1);
    if (vmbkCopyMap(&st, nbd) < 0)
        return -1;
    nbd_shutdown(nbd, 0);
    g_clear_pointer(&nbd, nbd_close);
    if (vmbkCopyPlan(&st) < 0)
        return -1;

    g_mutex_init(&st.lock);
    for (i = 0; i < MAX(copy->threads, 1) && (i == 0 || i < st.total); i++)
        g_ptr_array_add(threads, g_thread_new("vmbk-copy", vmbkCopyWorker, &st));
    for (i = 0; i < threads->len; i++) {
        if (GPOINTER_TO_INT(g_thread_join(g_ptr_array_index(threads, i))) < 0)
            ret = -1;
    }
    g_mutex_clear(&st.lock);
    return ret;
}
