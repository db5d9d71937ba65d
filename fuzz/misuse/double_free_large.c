/* free() of an individually mapped object twice */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(1 << 20));
	memset(p, 1, 1 << 20);
	free(p);
	free(opaque(p));
	return not_detected("double free (large)");
}
