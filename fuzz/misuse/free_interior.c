/* free() of a 16-byte aligned pointer inside a live object */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(200));
	memset(p, 0, 200);
	free(opaque(p + 64));
	return not_detected("free of an interior pointer");
}
