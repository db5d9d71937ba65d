/* one byte written past the end of a 100-byte object (its slot has slack).
 * The byte past the end is mallocng's check byte, a secret-derived value:
 * a fixed overflow value would match it with probability 1/256, so the
 * program writes a value that differs from what is there (as any overflow
 * with a value unequal to the secret byte does). */
#include "misuse.h"
int main(void)
{
	unsigned char *p = opaque(malloc(100));
	memset(p, 'x', 100);
	p[100] = (unsigned char)~p[100];
	free(opaque(p));
	return not_detected("1-byte overflow into slack");
}
