/* a write into an object after free, then allocations of the same size
 * (which reuse the slot): the write should be reported when the slot is
 * reused or leaves the quarantine */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(64));
	free(p);
	memset(opaque(p), 'U', 8);          /* first 8 bytes of the dead object */
	for (int i = 0; i < 4096; i++) {    /* enough to cycle a 1 MiB quarantine */
		char *q = opaque(malloc(64));
		free(q);
	}
	return not_detected("write after free");
}
