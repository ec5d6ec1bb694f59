#!/usr/bin/env python3
"""Where a running gateway's heap memory is: mimalloc's pages by block size.

Run: bench/mi_pages.py PID   (as root or the process's owner)

Not a benchmark and not a test: the tool that found why RSS stayed up after
a full cache expired (docs/benchmarks.md, stop 27). For each block size it
prints the pages mimalloc has, the blocks in use on them (blocks other
threads freed and the owner has not collected yet are counted as free),
their resident KiB (from /proc/PID/pagemap) and the bytes those blocks
hold; then the pages under a quarter used, which is where memory is kept
that the process does not use. A page is 64 KiB (blocks up to 10 KiB) or
more; one live block keeps its whole page resident.

It reads mimalloc v3's page records at the start of its arena (the 1 GiB
anonymous mapping) through /proc/PID/mem: a record per 64 KiB slice, 120
bytes, with the block size at +40, `used` at +16, the thread-free list at
+32 and the page's start at +48 (mimalloc 3.3, `mi_page_t` in
include/mimalloc/types.h). The records' offset is found from the pages'
start addresses. Another mimalloc version may lay them out otherwise.
"""
import collections
import struct
import sys

SLICE = 64 * 1024
RECORD = 120


def main(pid):
    arena = None
    for line in open(f"/proc/{pid}/maps"):
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if hi - lo == 1 << 30 and f[1] == "rw-p":
            arena = lo
    if arena is None:
        sys.exit("no 1 GiB mimalloc arena in this process")
    mem = open(f"/proc/{pid}/mem", "rb")
    pagemap = open(f"/proc/{pid}/pagemap", "rb")

    def read(addr, n):
        mem.seek(addr)
        return mem.read(n)

    def resident_kib(addr, pages4k):
        pagemap.seek((addr // 4096) * 8)
        d = pagemap.read(8 * pages4k)
        return 4 * sum((struct.unpack_from("<Q", d, 8 * i)[0] >> 63) & 1 for i in range(pages4k))

    meta = read(arena, 4 << 20)
    # A page's start address sits at +48 of its record: the most common
    # (offset - 48 - slice * RECORD) is where record 0 is.
    votes = collections.Counter()
    for off in range(0, len(meta) - 8, 8):
        v = struct.unpack_from("<Q", meta, off)[0]
        if arena + 8 * SLICE <= v < arena + (1 << 30) and (v - arena) % SLICE == 0:
            votes[off - 48 - ((v - arena) // SLICE) * RECORD] += 1
    base = votes.most_common(1)[0][0]

    pages = []
    for i in range((1 << 30) // SLICE):
        rec = meta[base + i * RECORD : base + (i + 1) * RECORD]
        if len(rec) < RECORD:
            break
        block = struct.unpack_from("<Q", rec, 40)[0]
        if block == 0:
            continue
        used, capacity = struct.unpack_from("<HH", rec, 16)
        pending, q = 0, struct.unpack_from("<Q", rec, 32)[0] & ~3
        while q and pending < 1 << 16:
            q = struct.unpack("<Q", read(q, 8))[0]
            pending += 1
        slices = max(struct.unpack_from("<I", rec, 108)[0], 1)
        pages.append((i, block, used - pending, capacity, resident_kib(arena + i * SLICE, 16 * slices)))

    total = resident_kib(arena, (1 << 30) // 4096)
    print(f"arena resident {total} KiB; pages {len(pages)}, resident {sum(p[4] for p in pages)} KiB, "
          f"live {sum(p[1] * p[2] for p in pages) // 1024} KiB")
    print(f"{'block':>8} {'pages':>5} {'used':>7} {'res KiB':>8} {'live KiB':>8}")
    by = collections.defaultdict(lambda: [0, 0, 0, 0])
    for _, block, used, _, res in pages:
        row = by[block]
        row[0] += 1
        row[1] += used
        row[2] += res
        row[3] += used * block
    for block in sorted(by):
        n, used, res, live = by[block]
        print(f"{block:>8} {n:>5} {used:>7} {res:>8} {live // 1024:>8}")
    sparse = [p for p in pages if p[1] * p[2] < 0.25 * p[4] * 1024]
    print(f"pages under a quarter used: {len(sparse)}, resident {sum(p[4] for p in sparse)} KiB, "
          f"live {sum(p[1] * p[2] for p in sparse) // 1024} KiB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(int(sys.argv[1]))
