#!/usr/bin/env python3
"""Generate the seed corpus of fuzz_ops (fuzz/corpus/).

Each seed is an operation script in the format documented at the top of
fuzz_ops.c.  The seeds are small and deterministic; rerun this script after
changing the format:  python3 fuzz/gen_corpus.py fuzz/corpus
"""
import os
import sys

MALLOC, CALLOC, REALLOC, ALIGNED, MEMALIGN_POSIX = 0, 2, 3, 5, 6
FREE, FREE_SIZED, FREE_ALIGNED, USABLE, MEMALIGN, REALLOCARRAY = 7, 9, 10, 11, 12, 13
CHECK, TRIM = 14, 15


def tiny(n):                    # 0..255
    return [0, n]


def cls(c, delta=0):            # largest request of class c, plus delta (-3..4)
    return [3 | ((delta + 3) << 5), c]


def thresh(delta=0):            # MAX_SMALL + delta
    return [5 | ((delta + 3) << 5), 0]


def medium(n):                  # 0..65535
    return [6, n >> 8, n & 255]


def pow2(k, delta=0):           # 2**k + delta, k in 12..20
    b = k - 12
    while b % 2 == 0:
        b += 9
    return [7 | ((delta + 3) << 5), b]


def align(shift):               # 2**shift, shift in 3..20
    if shift <= 12:
        return [shift - 3]
    if shift <= 16:
        return [160 + shift - 13]
    return [240 + shift - 17]


def op(code, slot, *args):
    out = [code, slot]
    for a in args:
        out += a
    return out


seeds = {}

# every class boundary: malloc, usable size, free_sized
for lo in range(0, 48, 8):
    s = []
    for c in range(lo, lo + 8):
        for d in (-1, 0, 1):
            slot = (c * 3 + d + 1) % 256
            s += op(MALLOC, slot, cls(c, d)) + op(USABLE, slot)
    s += [CHECK, 0]
    for c in range(lo, lo + 8):
        for d in (-1, 0, 1):
            s += op(FREE_SIZED, (c * 3 + d + 1) % 256)
    seeds['classes-%02d' % lo] = s

# the mmap threshold from both sides, and reallocs across it
s = []
for i, d in enumerate((-3, -2, -1, 0, 1, 2, 3, 4)):
    s += op(MALLOC, i, thresh(d))
for i, d in enumerate((1, -1, 4, -3, 0, 2, -2, 3)):
    s += op(REALLOC, i, thresh(d))
s += [CHECK, 0]
seeds['threshold'] = s

# realloc growth chain 1 -> 1 MiB and back down
s = op(MALLOC, 7, tiny(1))
for k in range(1, 8):
    s += op(REALLOC, 7, tiny(2 ** k))
for k in range(8, 16):
    s += op(REALLOC, 7, medium(2 ** k + 3))
for k in range(16, 21):
    s += op(REALLOC, 7, pow2(k, 1))
for k in (16, 12):
    s += op(REALLOC, 7, pow2(k, -1))
s += op(REALLOC, 7, tiny(40)) + [CHECK, 0]
seeds['realloc-chain'] = s

# growth by small steps inside one class and across neighbours
s = op(MALLOC, 1, tiny(0))
for n in range(0, 256, 5):
    s += op(REALLOC, 1, tiny(n))
seeds['realloc-steps'] = s

# aligned allocations of every alignment, small and large
for name, size in (('small', tiny(40)), ('medium', medium(3000)), ('large', pow2(17, 3))):
    s = []
    for i, sh in enumerate(range(3, 21)):
        s += op(ALIGNED if i % 2 else MEMALIGN_POSIX, i, align(sh), size)
    s += [CHECK, 0]
    for i, sh in enumerate(range(3, 21)):
        s += op(FREE_ALIGNED if i % 2 else FREE, i)
    seeds['aligned-' + name] = s

# memalign / valloc / pvalloc
s = []
for i in range(12):
    s += op(MEMALIGN, i, [i % 3], align(4 + i), medium(100 * i + 1))
seeds['memalign'] = s

# calloc of all kinds, including after frees (reused memory must be zeroed)
s = []
for i in range(16):
    s += op(MALLOC, i, cls(i * 3))
for i in range(16):
    s += op(FREE, i)
for i in range(16):
    s += op(CALLOC, i, cls(i * 3), [i])
s += op(CALLOC, 20, pow2(18), [3]) + op(FREE, 20) + op(CALLOC, 20, pow2(18), [0])
seeds['calloc-reuse'] = s

# fill many objects of one class, free a run, refill (group release / reuse)
for c in (0, 5, 12, 20, 30, 40, 47):
    s = []
    for i in range(64):
        s += op(MALLOC, i, cls(c, -(i % 3)))
    s += [CHECK, 0] + op(TRIM, 0, [1]) + op(TRIM, 0, [0]) + [CHECK, 0]
    for i in range(64):
        s += op(MALLOC, i, cls(c))
    seeds['class-churn-%02d' % c] = s

# all 256 slots live, mixed sizes
s = []
for i in range(256):
    s += op(MALLOC, i, tiny(i) if i % 4 else medium(i * 97))
s += [CHECK, 0]
for i in range(0, 256, 2):
    s += op(FREE, i)
s += op(TRIM, 0, [0])
for i in range(0, 256, 2):
    s += op(CALLOC, i, tiny(255 - i), [1])
seeds['full-table'] = s

# large objects: cache reuse, shrink in place, mremap growth
s = []
for i in range(8):
    s += op(MALLOC, i, pow2(17 + i % 4, i % 3))
for i in range(8):
    s += op(FREE, i)
for i in range(8):
    s += op(MALLOC, i, pow2(17 + (i + 1) % 4))
for i in range(8):
    s += op(REALLOC, i, pow2(12 + i, 2))
s += op(REALLOCARRAY, 3, pow2(20), [3])
seeds['large-cache'] = s

# reallocarray and realloc to 0
s = op(MALLOC, 9, tiny(100)) + op(REALLOCARRAY, 9, medium(5000), [2]) + op(REALLOC, 9, tiny(0))
s += op(REALLOC, 9, tiny(17)) + op(FREE_SIZED, 9)
seeds['reallocarray'] = s

# an empty input and a few random-looking ones
seeds['empty'] = []
x = 0x2545F491
for k in range(6):
    b = []
    for _ in range(64 + 96 * k):
        x = (x * 1103515245 + 12345) & 0xffffffff
        b.append(x >> 24)
    seeds['random-%d' % k] = b


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds.items()):
        assert all(0 <= v < 256 for v in data), name
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes(data))
    print('%d seeds written to %s' % (len(seeds), out))


if __name__ == '__main__':
    main()
