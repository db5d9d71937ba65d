/* an overflow that runs over the check byte, the slack and the header of
 * the next slot; then the NEXT object is freed (not the overflowing one) */
#include "misuse.h"
int main(void)
{
	unsigned char *v[16];
	for (int i = 0; i < 16; i++) v[i] = opaque(malloc(40));
	/* neighbours: the smallest distance between two objects (the stride
	 * of malloc(40)'s class) */
	size_t best = (size_t)-1;
	int bi = -1, bj = -1;
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			if (v[j] > v[i] && (size_t)(v[j] - v[i]) < best)
				best = (size_t)(v[j] - v[i]), bi = i, bj = j;
	if (bi >= 0 && best <= 128) {
		memset(v[bi], 'A', best);             /* up to v[bj]: its header too */
		free(opaque(v[bj]));
		return not_detected("overflow into the next slot");
	}
	fprintf(stderr, "misuse: no adjacent slots found\n");
	return 2;
}
