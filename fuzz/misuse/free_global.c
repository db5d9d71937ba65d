/* free() of a pointer to a (zero-initialised) global array */
#include "misuse.h"
static _Alignas(16) char global[256];
int main(void)
{
	free(opaque(malloc(16)));           /* the heap is initialised */
	free(opaque(global + 64));
	return not_detected("free of a global");
}
