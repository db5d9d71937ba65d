/* free() of a pointer into the stack */
#include "misuse.h"
int main(void)
{
	_Alignas(16) char buf[256];
	memset(buf, 0x41, sizeof buf);
	free(opaque(buf + 64));
	return not_detected("free of a stack pointer");
}
