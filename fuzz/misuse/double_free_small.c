/* free() of a small object twice in a row */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(40));
	free(p);
	free(opaque(p));
	return not_detected("double free (small)");
}
