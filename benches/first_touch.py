#!/usr/bin/env python3
"""Cost of touching memory for the first time, a GiB at a time (what a VM's host charges).

On this project's VM, the host takes back guest memory that has been free for a while (free
page reporting) and drops cold page cache (DAMON); touching such memory again costs a host
fault per page. Run it on an idle machine: the first few GiB (recently used) come cheap,
the rest shows what fresh memory costs. Used to explain benchmark runs that slow down once a
relay has filled gigabytes of page cache (benches/README.md).

    python3 benches/first_touch.py [GiB]
"""
import mmap
import sys
import time

PAGE = 4096
GIB = 1 << 30


def touch(n):
    m = mmap.mmap(-1, n)
    t = time.perf_counter()
    for i in range(0, n, PAGE):
        m[i] = 1
    return m, time.perf_counter() - t


held = []
for k in range(int(sys.argv[1]) if len(sys.argv) > 1 else 8):
    m, d = touch(GIB)
    held.append(m)
    print(f"GiB {k}: {d * 1e6 / (GIB // PAGE):.2f} us per page", flush=True)
for m in held:
    m.close()
m, d = touch(GIB)
print(f"again, right after freeing: {d * 1e6 / (GIB // PAGE):.2f} us per page")
