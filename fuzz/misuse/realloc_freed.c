/* realloc() of a pointer already freed */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(48));
	free(p);
	p = realloc(opaque(p), 4000);
	return not_detected("realloc of a freed pointer");
}
