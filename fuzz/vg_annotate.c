/* vg_annotate.c - tells Valgrind's DRD and Helgrind about mallocng's locks.
 *
 * The allocator's global lock (os_lock/os_unlock in src/os_proc.c) and its
 * span lock (os_span_lock/os_span_unlock) are futex words driven by C11
 * atomics, which neither tool recognises: without help every access made
 * under a lock is reported as a race.  This object, preloaded next to the
 * library (.ci/robustness.sh), wraps the four functions (Valgrind function
 * wrapping works on the library's local symbols as long as it is not
 * stripped) and announces them as a mutex acquire/release to the tool, a
 * token per lock.
 *
 * It also wraps the public entry points to state the guarantee C11 gives
 * (7.22.3): a free that deallocates a region happens before the malloc
 * that allocates it again.  mallocng implements it with atomics (a slot
 * freed by another thread comes back through the group's `remote` mask,
 * atomic_fetch_or / atomic_exchange), which the tools do not model.  The
 * edge starts at the entry and at the return of free (the slot header is
 * rewritten inside free, before the atomic publishes the slot) and ends
 * at the entry of malloc, so the accesses malloc makes and the ones free
 * makes concurrently with it are still checked.  It changes nothing else.
 */
#include <valgrind/valgrind.h>
#include <valgrind/helgrind.h>

static char lock_token;

void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_lock)(void);
void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_lock)(void)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	CALL_FN_v_v(fn);
	ANNOTATE_RWLOCK_ACQUIRED(&lock_token, 1);
}

void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_unlock)(void);
void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_unlock)(void)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	ANNOTATE_RWLOCK_RELEASED(&lock_token, 1);
	CALL_FN_v_v(fn);
}

static char span_token;

void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_span_lock)(void);
void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_span_lock)(void)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	CALL_FN_v_v(fn);
	ANNOTATE_RWLOCK_ACQUIRED(&span_token, 1);
}

void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_span_unlock)(void);
void I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, os_span_unlock)(void)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	ANNOTATE_RWLOCK_RELEASED(&span_token, 1);
	CALL_FN_v_v(fn);
}

#include <stddef.h>

static char handoff_token;
#define BEFORE() ANNOTATE_HAPPENS_BEFORE(&handoff_token)
#define AFTER() ANNOTATE_HAPPENS_AFTER(&handoff_token)
#define WRAP(name) I_WRAP_SONAME_FNNAME_ZU(libmallocngZdsoZa, name)

void WRAP(free)(void *p);
void WRAP(free)(void *p)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	BEFORE();
	CALL_FN_v_W(fn, p);
	BEFORE();
}

void WRAP(free_sized)(void *p, size_t n);
void WRAP(free_sized)(void *p, size_t n)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	BEFORE();
	CALL_FN_v_WW(fn, p, n);
	BEFORE();
}

void WRAP(free_aligned_sized)(void *p, size_t a, size_t n);
void WRAP(free_aligned_sized)(void *p, size_t a, size_t n)
{
	OrigFn fn;
	VALGRIND_GET_ORIG_FN(fn);
	BEFORE();
	CALL_FN_v_WWW(fn, p, a, n);
	BEFORE();
}

void *WRAP(malloc)(size_t n);
void *WRAP(malloc)(size_t n)
{
	OrigFn fn;
	void *r;
	VALGRIND_GET_ORIG_FN(fn);
	AFTER();
	CALL_FN_W_W(r, fn, n);
	return r;
}

void *WRAP(calloc)(size_t k, size_t n);
void *WRAP(calloc)(size_t k, size_t n)
{
	OrigFn fn;
	void *r;
	VALGRIND_GET_ORIG_FN(fn);
	AFTER();
	CALL_FN_W_WW(r, fn, k, n);
	return r;
}

void *WRAP(aligned_alloc)(size_t a, size_t n);
void *WRAP(aligned_alloc)(size_t a, size_t n)
{
	OrigFn fn;
	void *r;
	VALGRIND_GET_ORIG_FN(fn);
	AFTER();
	CALL_FN_W_WW(r, fn, a, n);
	return r;
}

int WRAP(posix_memalign)(void **res, size_t a, size_t n);
int WRAP(posix_memalign)(void **res, size_t a, size_t n)
{
	OrigFn fn;
	long r;
	VALGRIND_GET_ORIG_FN(fn);
	AFTER();
	CALL_FN_W_WWW(r, fn, res, a, n);
	return (int)r;
}

void *WRAP(realloc)(void *p, size_t n);
void *WRAP(realloc)(void *p, size_t n)
{
	OrigFn fn;
	void *r;
	VALGRIND_GET_ORIG_FN(fn);
	BEFORE();
	AFTER();
	CALL_FN_W_WW(r, fn, p, n);
	BEFORE();
	return r;
}

__attribute__((constructor)) static void announce(void)
{
	ANNOTATE_RWLOCK_CREATE(&lock_token);
	ANNOTATE_RWLOCK_CREATE(&span_token);
}
