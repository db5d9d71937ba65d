/* malloc_usable_size() of a pointer that malloc did not return */
#include "misuse.h"
int main(void)
{
	_Alignas(16) char buf[128];
	memset(buf, 0x33, sizeof buf);
	size_t n = malloc_usable_size(opaque(buf + 32));
	fprintf(stderr, "misuse: malloc_usable_size returned %zu\n", n);
	return not_detected("malloc_usable_size of a non-heap pointer");
}
