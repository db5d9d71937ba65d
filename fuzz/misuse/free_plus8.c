/* free(p + 8): the pointer is not 16-byte aligned */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(64));
	free(opaque(p + 8));
	return not_detected("free of p + 8");
}
