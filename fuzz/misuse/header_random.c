/* the slot header of a live object overwritten with random bytes */
#include "misuse.h"
int main(void)
{
	char *p = opaque(malloc(100));
	uint64_t r = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() * 0xbf58476d1ce4e5b9ull;
	memcpy(p - 8, &r, 8);
	free(opaque(p));
	return not_detected("random header");
}
