/* a small object freed, then many other objects of other sizes allocated
 * and freed, then the first one freed again */
#include "misuse.h"
int main(void)
{
	void *keep[200];
	char *p = opaque(malloc(24));
	char *q = opaque(malloc(24));
	free(p);
	for (int i = 0; i < 200; i++) keep[i] = malloc(100 + 37 * i);
	for (int i = 0; i < 200; i += 2) free(keep[i]);
	free(q);
	for (int i = 1; i < 200; i += 2) free(keep[i]);
	free(opaque(p));
	return not_detected("double free after other frees");
}
