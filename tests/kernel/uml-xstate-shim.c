/*
 * uml-xstate-shim: an LD_PRELOAD shim for the user-mode Linux kernel (the
 * host process linux.uml), written for the test harness. UML 6.1 saves and
 * restores its processes' extended FP state through ptrace with a buffer of
 * sizeof(struct _xstate) (832 bytes: x87/SSE, the XSAVE header, AVX). Host
 * kernels accept PTRACE_SETREGSET of NT_X86_XSTATE only with the whole XSAVE
 * area, which on CPUs with AVX-512 or AMX is larger (11 KiB with AMX), so
 * the guest's first process dies ("ptrace set fp regs failed, errno = 14").
 *
 * The shim keeps, for each of UML's register buffers (its address is the
 * key: one per UML thread), the whole area the host last returned; UML sees
 * the first bytes it asked for, and its changes are laid over the whole area
 * when it sets them back, so every component is restored as it was saved.
 * Any other ptrace request passes through untouched. Slots are never freed:
 * a new task whose buffer reuses a dead task's address starts with that
 * task's state beyond the 832 bytes until its first save; a new task makes
 * no assumption about those registers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#define FULL_MAX (64 * 1024) /* above any XSAVE area a host reports */
#define SLOTS 8192

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

struct saved {
	void *key;  /* UML's buffer */
	size_t len; /* bytes of the whole area */
	unsigned char *area;
};

static struct saved slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ptrace_fn real_fn;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void find_real(void)
{
	real_fn = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
}

static ptrace_fn real_ptrace(void)
{
	pthread_once(&real_once, find_real);
	return real_fn;
}

/* The slot of key, made when missing; NULL when the table is full. */
static struct saved *slot_for(void *key)
{
	size_t i = ((uintptr_t)key >> 4) % SLOTS;

	for (size_t n = 0; n < SLOTS; n++, i = (i + 1) % SLOTS) {
		if (slots[i].key == key)
			return &slots[i];
		if (!slots[i].key) {
			slots[i].area = malloc(FULL_MAX);
			if (!slots[i].area) {
				errno = ENOMEM;
				return NULL;
			}
			slots[i].key = key;
			slots[i].len = 0;
			return &slots[i];
		}
	}
	errno = ENOMEM;
	return NULL;
}

/* Read pid's whole area into s; 0 or -1 with errno. */
static long get_whole(pid_t pid, struct saved *s)
{
	struct iovec whole = { s->area, FULL_MAX };
	long rc = real_ptrace()(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &whole);

	if (rc == 0)
		s->len = whole.iov_len;
	return rc;
}

static long get_xstate(pid_t pid, struct iovec *iov)
{
	struct saved *s = slot_for(iov->iov_base);

	if (!s || get_whole(pid, s) < 0)
		return -1;
	if (iov->iov_len > s->len)
		iov->iov_len = s->len;
	memcpy(iov->iov_base, s->area, iov->iov_len);
	return 0;
}

static long set_xstate(pid_t pid, struct iovec *iov)
{
	struct saved *s = slot_for(iov->iov_base);
	struct iovec whole;

	if (!s || (s->len == 0 && get_whole(pid, s) < 0))
		return -1;
	/*
	 * UML's buffer may be longer than the host's area: 2696 bytes on an
	 * AMD EPYC with AVX-512 whose area (CPUID 0xD) is 2432. The bytes past
	 * the host's area hold no component the host keeps, so only the
	 * host's part is laid over (refusing it killed the guest's init).
	 */
	memcpy(s->area, iov->iov_base, iov->iov_len < s->len ? iov->iov_len : s->len);
	whole.iov_base = s->area;
	whole.iov_len = s->len;
	return real_ptrace()(PTRACE_SETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &whole);
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	pid_t pid;
	void *addr, *data;
	long rc;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);
	if ((request != PTRACE_GETREGSET && request != PTRACE_SETREGSET) ||
	    (uintptr_t)addr != NT_X86_XSTATE || !data)
		return real_ptrace()((int)request, pid, addr, data);
	pthread_mutex_lock(&lock);
	rc = request == PTRACE_GETREGSET ? get_xstate(pid, data) : set_xstate(pid, data);
	pthread_mutex_unlock(&lock);
	return rc;
}
