/* A fake object inside a buffer, given the (valid) header of a real object
 * copied in front of it, is passed to free(). */
#include "misuse.h"
int main(void)
{
	char *real = opaque(malloc(64));
	char *buf = opaque(malloc(512));
	char *fake = buf + 128;
	memcpy(fake - 8, real - 8, 8);      /* header */
	memcpy(fake, real, 64 + 1);         /* contents and check byte */
	free(opaque(fake));
	return not_detected("forged header");
}
