/* an overflow that runs over the check byte, the slack and the header of
 * the next slot; then the NEXT object is freed (not the overflowing one) */
#include "misuse.h"
int main(void)
{
	unsigned char *v[16];
	for (int i = 0; i < 16; i++) v[i] = opaque(malloc(40));
	for (int i = 0; i < 16; i++) {
		for (int j = 0; j < 16; j++) {
			size_t d = (size_t)(v[j] - v[i]);
			if (v[j] > v[i] && d == 64) {     /* stride of malloc(40)'s class */
				memset(v[i], 'A', d);     /* up to v[j]: its header too */
				free(opaque(v[j]));
				return not_detected("overflow into the next slot");
			}
		}
	}
	fprintf(stderr, "misuse: no adjacent slots found\n");
	return 2;
}
