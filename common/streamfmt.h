/* vmbk: the stream format, a full or an incremental "redo" file of one disk, written strictly
 * sequentially (so it can go straight to tape) by the stream plugin and read back the same way by
 * 'vmbk restore --stream'.  Shared by plugins/stream and hostctl; plain C, no GLib.
 *
 * A file is a header, records, and a trailer.  All integers are little-endian; strings are UTF-8,
 * NUL-padded to their field's size (at least one NUL).
 *
 *   header (512 bytes)
 *     0    magic         "VMBKSTRM"
 *     8    version       u32  1
 *     12   flags         u32  bit 0: the trailer holds a SHA-256 (else its digest is zeroes)
 *     16   disk_size     u64  the disk's size in bytes
 *     24   target        64   "vda"
 *     88   point         16   this point's id, "0003"
 *     104  parent        16   the point whose stream this one applies on, or empty for a full
 *     120  uuid          40   the domain's uuid
 *     160  time          32   the point's time, ISO 8601 UTC
 *     192  domain        256  the domain's name (cut to 255 bytes, on a character boundary)
 *     448  reserved      64   zeroes
 *
 *   records, in increasing offset order, not overlapping, within the disk, length > 0:
 *     0    type          4    "DATA" or "ZERO"
 *     4    reserved      u32  0
 *     8    offset        u64
 *     16   length        u64
 *     24   (DATA only) length bytes of the disk from offset
 *
 *   trailer (128 bytes)
 *     0    type          4    "TRLR"
 *     4    reserved      u32  0
 *     8    data_records  u64
 *     16   zero_records  u64
 *     24   data_bytes    u64  the sum of the DATA records' lengths
 *     32   zero_bytes    u64  the sum of the ZERO records' lengths
 *     40   stream_bytes  u64  bytes before the trailer (header and records)
 *     48   sha256        32   SHA-256 of those bytes
 *     80   reserved      48   zeroes
 *
 * A full (empty parent) covers the whole disk; a redo covers what changed since its parent
 * point, zeroes the guest wrote included (as ZERO records).  A disk is rebuilt by applying a full
 * and then its redo files in order, each one's parent being the previous one's point.  Nothing
 * is read after the trailer, so padding a tape adds does not matter.
 */
#ifndef VMBK_STREAMFMT_H
#define VMBK_STREAMFMT_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#define VMBK_STREAM_MAGIC "VMBKSTRM"
#define VMBK_STREAM_VERSION 1
#define VMBK_STREAM_FLAG_DIGEST 1u

#define VMBK_STREAM_DATA "DATA"
#define VMBK_STREAM_ZERO "ZERO"
#define VMBK_STREAM_TRAILER "TRLR"

/* The output name of a disk's stream in a point: TARGET + this. */
#define VMBK_STREAM_SUFFIX ".stream"

#define VMBK_STREAM_HASH_SIZE 32

struct vmbk_stream_header {
    char magic[8];
    uint32_t version;
    uint32_t flags;
    uint64_t disk_size;
    char target[64];
    char point[16];
    char parent[16];
    char uuid[40];
    char time[32];
    char domain[256];
    uint8_t reserved[64];
};

struct vmbk_stream_record {
    char type[4];
    uint32_t reserved;
    uint64_t offset;
    uint64_t length;
};

struct vmbk_stream_trailer {
    char type[4];
    uint32_t reserved;
    uint64_t data_records;
    uint64_t zero_records;
    uint64_t data_bytes;
    uint64_t zero_bytes;
    uint64_t stream_bytes;
    uint8_t sha256[VMBK_STREAM_HASH_SIZE];
    uint8_t reserved2[48];
};

/* Every field sits at its natural alignment: the structs have no padding. */
_Static_assert(sizeof(struct vmbk_stream_header) == 512, "stream header is 512 bytes");
_Static_assert(sizeof(struct vmbk_stream_record) == 24, "stream record is 24 bytes");
_Static_assert(sizeof(struct vmbk_stream_trailer) == 128, "stream trailer is 128 bytes");

/* Convert the integer fields between the file's order and the host's, in place (each is its own
 * inverse on a given host). */
static inline void
vmbk_stream_header_swap(struct vmbk_stream_header *h)
{
    h->version = htole32(h->version);
    h->flags = htole32(h->flags);
    h->disk_size = htole64(h->disk_size);
}

static inline void
vmbk_stream_record_swap(struct vmbk_stream_record *r)
{
    r->reserved = htole32(r->reserved);
    r->offset = htole64(r->offset);
    r->length = htole64(r->length);
}

static inline void
vmbk_stream_trailer_swap(struct vmbk_stream_trailer *t)
{
    t->reserved = htole32(t->reserved);
    t->data_records = htole64(t->data_records);
    t->zero_records = htole64(t->zero_records);
    t->data_bytes = htole64(t->data_bytes);
    t->zero_bytes = htole64(t->zero_bytes);
    t->stream_bytes = htole64(t->stream_bytes);
}

/* Is a NUL-padded string field terminated within its size? */
static inline int
vmbk_stream_field_ok(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

#endif /* VMBK_STREAMFMT_H */
