/* init.c - first use: the options, the class table, then the keys, after
 * which ro (size_class.c) is read-only. */
#include "internal.h"

/* First use of the heap (lock held): options, then the secret. */
void init_secret(void)
{
	uint64_t k[4] = { 0 };
	options_init();
	size_class_init();
	while (!k[0]) os_random(k, sizeof k);
	ro.key[1] = k[1] | 1;           /* odd: the products lose no bit */
	ro.key[2] = k[2];
	ro.key[3] = k[3] | 1;
	ro.key[0] = k[0];               /* last: the flag that init is done */
	__builtin_memset(k, 0, sizeof k);
	__asm__ volatile("" : : "r"(k) : "memory");   /* no copy left on the stack */
	os_protect(&ro, sizeof ro, 0);
}

void init_slow(void)
{
	os_lock();
	if (!secret) init_secret();
	os_unlock();
}
