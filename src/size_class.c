/* size_class.c - the class table.
 *
 * Strides are multiples of UNIT: 16..128 in steps of 16, then four classes
 * per doubling (5/4, 6/4, 7/4, 8/4 of a power of two) up to 128 KiB.  A slot
 * of stride s holds up to s - SLOT_HDR user bytes, so the waste of a request
 * is below 1/4 of its size plus SLOT_HDR bytes. */
#include "internal.h"

/* In COLD_BSS, after .bss: its page alignment would otherwise align .bss
 * and cost the first malloc a page (os.h: COLD_BSS). */
HIDDEN struct ro_globals ro COLD_BSS;

/* Fill the class table (before the first use of the heap, before ro is
 * sealed).  Computed rather than copied from a constant table, so that the
 * first malloc faults in no page of .rodata. */
void size_class_init(void)
{
	uint32_t stride = 0, step = UNIT;
	for (int sc = 0; sc < NCLASS; sc++) {
		/* from 128 on, four steps per doubling */
		if (sc >= 8 && (sc - 8) % 4 == 0) step = stride / 4;
		stride += step;
		ro.stride[sc] = stride;
		ro.room[sc] = stride - SLOT_HDR;
	}
	/* x = n + SLOT_HDR - 1 fits class sc iff x < stride: strides are
	 * multiples of UNIT, so x >> 4 decides */
	for (int i = 0, sc = 0; i < CLASS_OF_MAX / UNIT; i++) {
		while ((uint32_t)i * UNIT >= class_stride(sc)) sc++;
		ro.class_of[i] = (uint8_t)sc;
	}
}
