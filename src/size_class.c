/* size_class.c - the class table.
 *
 * Strides are multiples of UNIT: 16..128 in steps of 16, then four classes
 * per doubling (5/4, 6/4, 7/4, 8/4 of a power of two) up to 128 KiB.  A slot
 * of stride s holds up to s - OVERHEAD user bytes, so the waste of a request
 * is below 1/4 of its size plus OVERHEAD bytes. */
#include "internal.h"

#define Q(b) (b) * 5 / 4, (b) * 6 / 4, (b) * 7 / 4, (b) * 2

const uint32_t class_stride[NCLASS] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	Q(128), Q(256), Q(512), Q(1024), Q(2048),
	Q(4096), Q(8192), Q(16384), Q(32768), Q(65536),
};
