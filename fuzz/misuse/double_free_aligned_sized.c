/* free_aligned_sized() twice on an aligned object */
#include "misuse.h"
int main(void)
{
	char *p = opaque(aligned_alloc(64, 200));
	free_aligned_sized(p, 64, 200);
	free_aligned_sized(opaque(p), 64, 200);
	return not_detected("double free via free_aligned_sized");
}
