/* free_sized() with a size other than the one requested */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(100));
	free_sized(opaque(p), 101);
	return not_detected("free_sized with a wrong size");
}
