// SPDX-License-Identifier: GPL-2.0
/*
 * kdebug_splat: make the kernel print one of its own bug reports, for the
 * crash-taxonomy tests. Load it with the class to provoke:
 *
 *   insmod kdebug_splat.ko class=uaf
 *
 * The bug happens in module_init, in a noinline function named after the
 * class (kdebug_splat_<class>), so the report's guilty frame is known. Most
 * reports panic only with panic_on_warn=1 (KASAN, KFENCE, UBSAN, refcount,
 * scheduling while atomic) or oops=panic (list corruption with
 * BUG_ON_DATA_CORRUPTION, GPF, divide error, invalid opcode, stack
 * overflow). lockdep has no panic switch: after a lockdep report (debug_locks
 * turned off) this module panics itself. Classes whose detector the kernel
 * lacks fail to load with -EOPNOTSUPP instead.
 *
 *   uaf         KASAN: read after kfree           (CONFIG_KASAN)
 *   oob         KASAN: write past a kmalloc'ed object
 *   double-free KASAN: kfree twice
 *   kfence      KFENCE: read after kfree of a KFENCE object (CONFIG_KFENCE)
 *   abba        lockdep: A then B, later B then A  (CONFIG_PROVE_LOCKING)
 *   recursive   lockdep: down_read twice on one rwsem
 *   unlock      lockdep: releasing a spinlock that is not held
 *   shift       UBSAN: 1 << 40 on an int           (CONFIG_UBSAN_SHIFT)
 *   index       UBSAN: int[4] indexed with 5       (CONFIG_UBSAN_BOUNDS)
 *   refcount    refcount_t: decrement from 0 (underflow)
 *   list        list_del of an entry whose neighbour does not point back
 *   atomic-sleep mutex_lock() and msleep() with a spinlock held
 *   gpf         load from a non-canonical address
 *   div         integer division by zero
 *   ud2         an undefined instruction (not a BUG())
 *   stack-overflow  unbounded recursion into the stack guard page
 *   rcu-stall   start a grace period (call_rcu), then spin with preemption
 *               off inside rcu_read_lock(); set rcupdate.rcu_cpu_stall_timeout
 *               (and panic_on_rcu_stall) first
 */
#include <linux/delay.h>
#include <linux/debug_locks.h>
#include <linux/jiffies.h>
#include <linux/kfence.h>
#include <linux/limits.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/panic.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static char *class = "";
module_param(class, charp, 0444);
MODULE_PARM_DESC(class, "the bug to provoke (see the source)");

/* Read at run time, so the compiler cannot see the bug and refuse it or fold it away. */
static volatile int kdebug_splat_five = 5;
static volatile int kdebug_splat_zero;
static volatile int kdebug_splat_forty = 40;
static volatile int kdebug_splat_deep = INT_MAX;
static volatile long kdebug_splat_sink;

#ifdef CONFIG_PROVE_LOCKING
/* lockdep turned itself off: it reported. It never panics, so do it here. */
static void kdebug_splat_lockdep_done(void)
{
	if (!debug_locks)
		panic("kdebug_splat: lockdep reported (lockdep never panics by itself)\n");
}
#endif

#ifdef CONFIG_KASAN
/*
 * A KFENCE-sampled object would turn a KASAN bug into a KFENCE report:
 * allocate again until the object is an ordinary slab one.
 */
static void *kdebug_splat_kmalloc(size_t size)
{
	void *held[8];
	void *p = NULL;
	int n;

	for (n = 0; n < ARRAY_SIZE(held); n++) {
		p = kmalloc(size, GFP_KERNEL);
		if (!p || !is_kfence_address(p))
			break;
		held[n] = p;
		p = NULL;
	}
	while (n > 0)
		kfree(held[--n]);
	return p;
}

static noinline int kdebug_splat_uaf(void)
{
	int *p = kdebug_splat_kmalloc(64);

	if (!p)
		return -ENOMEM;
	kfree(p);
	kdebug_splat_sink = READ_ONCE(p[1]);
	return 0;
}

static noinline int kdebug_splat_oob(void)
{
	char *p = kdebug_splat_kmalloc(40);

	if (!p)
		return -ENOMEM;
	p[40 + kdebug_splat_zero] = 'k';
	kfree(p);
	return 0;
}

static noinline int kdebug_splat_double_free(void)
{
	void *p = kdebug_splat_kmalloc(64);

	if (!p)
		return -ENOMEM;
	kfree(p);
	kfree(p);
	return 0;
}
#endif

#ifdef CONFIG_KFENCE
/*
 * KFENCE guards one allocation per sample interval: keep allocating until
 * one is a KFENCE object (the interval is 100 ms by default; a kernel
 * booted with kfence.sample_interval=0 needs it set first).
 */
static noinline int kdebug_splat_kfence(void)
{
	unsigned long end = jiffies + 20 * HZ;
	int *p;

	while (time_before(jiffies, end)) {
		p = kmalloc(32, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		if (is_kfence_address(p)) {
			kfree(p);
			kdebug_splat_sink = READ_ONCE(p[0]);
			return 0;
		}
		kfree(p);
		schedule_timeout_uninterruptible(1);
	}
	return -ETIMEDOUT;
}
#endif

static DEFINE_SPINLOCK(kdebug_splat_lock);

#ifdef CONFIG_PROVE_LOCKING
static DEFINE_MUTEX(kdebug_splat_a);
static DEFINE_MUTEX(kdebug_splat_b);
static DECLARE_RWSEM(kdebug_splat_rwsem);

static noinline int kdebug_splat_abba(void)
{
	mutex_lock(&kdebug_splat_a);
	mutex_lock(&kdebug_splat_b);
	mutex_unlock(&kdebug_splat_b);
	mutex_unlock(&kdebug_splat_a);
	/* The reverse order: lockdep sees the cycle without a second task. */
	mutex_lock(&kdebug_splat_b);
	mutex_lock(&kdebug_splat_a);
	mutex_unlock(&kdebug_splat_a);
	mutex_unlock(&kdebug_splat_b);
	kdebug_splat_lockdep_done();
	return 0;
}

static noinline int kdebug_splat_recursive(void)
{
	/* Two readers do not block each other; lockdep still calls it recursion. */
	down_read(&kdebug_splat_rwsem);
	down_read(&kdebug_splat_rwsem);
	up_read(&kdebug_splat_rwsem);
	up_read(&kdebug_splat_rwsem);
	kdebug_splat_lockdep_done();
	return 0;
}

static noinline int kdebug_splat_unlock(void)
{
	/* spin_unlock() ends with preempt_enable(): keep the count balanced. */
	preempt_disable();
	spin_unlock(&kdebug_splat_lock);
	kdebug_splat_lockdep_done();
	return 0;
}
#endif

#ifdef CONFIG_UBSAN_SHIFT
static noinline int kdebug_splat_shift(void)
{
	kdebug_splat_sink = 1 << kdebug_splat_forty;
	return 0;
}
#endif

#ifdef CONFIG_UBSAN_BOUNDS
static int kdebug_splat_table[4];

static noinline int kdebug_splat_index(void)
{
	kdebug_splat_sink = kdebug_splat_table[kdebug_splat_five];
	return 0;
}
#endif

static noinline int kdebug_splat_refcount(void)
{
	refcount_t ref = REFCOUNT_INIT(1);

	if (refcount_dec_and_test(&ref))
		kdebug_splat_sink = refcount_dec_and_test(&ref);
	return 0;
}

struct kdebug_splat_item {
	struct list_head node;
};

static noinline int kdebug_splat_list(void)
{
	static struct kdebug_splat_item one, two;
	LIST_HEAD(head);

	list_add(&one.node, &head);
	list_add(&two.node, &head);
	/* head <-> two <-> one <-> head; now one's successor forgets it. */
	head.prev = &two.node;
	list_del(&one.node);
	return 0;
}

static DEFINE_MUTEX(kdebug_splat_sleeping_lock);

static noinline int kdebug_splat_atomic_sleep(void)
{
	spin_lock(&kdebug_splat_lock);
	/* mutex_lock() may sleep: DEBUG_ATOMIC_SLEEP's might_sleep() reports it (and goes on) */
	mutex_lock(&kdebug_splat_sleeping_lock);
	mutex_unlock(&kdebug_splat_sleeping_lock);
	/* msleep() does sleep: the scheduler reports it, and panics with panic_on_warn */
	msleep(20);
	spin_unlock(&kdebug_splat_lock);
	return 0;
}

/* Not instrumented: KASAN would report the wild access before the CPU faults. */
static noinline __no_sanitize_address int kdebug_splat_gpf(void)
{
	kdebug_splat_sink = *(volatile long *)(0xdead000000000100UL + kdebug_splat_zero);
	return 0;
}

static noinline int kdebug_splat_div(void)
{
	kdebug_splat_sink = 1000 / kdebug_splat_zero;
	return 0;
}

/* A bare ud2: no __bug_table entry, so the trap handler calls it an invalid opcode, not a BUG(). */
static noinline void kdebug_splat_ud2(void)
{
	asm volatile("ud2");
	unreachable();
}

static noinline int kdebug_splat_stack_overflow(int depth)
{
	volatile char frame[256];

	frame[0] = depth;
	if (depth == kdebug_splat_deep)
		return 0;
	/* The addition after the call keeps it from becoming a loop. */
	return kdebug_splat_stack_overflow(depth + 1) + frame[0];
}

static void kdebug_splat_rcu_cb(struct rcu_head *head)
{
}

static struct rcu_head kdebug_splat_rcu_head;

static noinline int kdebug_splat_rcu_stall(void)
{
	unsigned long end = jiffies + 60 * HZ;

	/* An idle kernel may have no grace period running, and no stall without one. */
	call_rcu(&kdebug_splat_rcu_head, kdebug_splat_rcu_cb);
	rcu_read_lock();
	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	rcu_read_unlock();
	return -ETIMEDOUT;
}

static int __init kdebug_splat_init(void)
{
	pr_emerg("kdebug_splat: %s\n", class);
#ifdef CONFIG_KASAN
	if (!strcmp(class, "uaf"))
		return kdebug_splat_uaf();
	if (!strcmp(class, "oob"))
		return kdebug_splat_oob();
	if (!strcmp(class, "double-free"))
		return kdebug_splat_double_free();
#endif
#ifdef CONFIG_KFENCE
	if (!strcmp(class, "kfence"))
		return kdebug_splat_kfence();
#endif
#ifdef CONFIG_PROVE_LOCKING
	if (!strcmp(class, "abba"))
		return kdebug_splat_abba();
	if (!strcmp(class, "recursive"))
		return kdebug_splat_recursive();
	if (!strcmp(class, "unlock"))
		return kdebug_splat_unlock();
#endif
#ifdef CONFIG_UBSAN_SHIFT
	if (!strcmp(class, "shift"))
		return kdebug_splat_shift();
#endif
#ifdef CONFIG_UBSAN_BOUNDS
	if (!strcmp(class, "index"))
		return kdebug_splat_index();
#endif
	if (!strcmp(class, "refcount"))
		return kdebug_splat_refcount();
	if (!strcmp(class, "list"))
		return kdebug_splat_list();
	if (!strcmp(class, "atomic-sleep"))
		return kdebug_splat_atomic_sleep();
	if (!strcmp(class, "gpf"))
		return kdebug_splat_gpf();
	if (!strcmp(class, "div"))
		return kdebug_splat_div();
	if (!strcmp(class, "ud2"))
		kdebug_splat_ud2();
	if (!strcmp(class, "stack-overflow"))
		return kdebug_splat_stack_overflow(0);
	if (!strcmp(class, "rcu-stall"))
		return kdebug_splat_rcu_stall();
	return -EOPNOTSUPP;
}

static void __exit kdebug_splat_exit(void)
{
}

module_init(kdebug_splat_init);
module_exit(kdebug_splat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdebug: provoke the kernel's own bug reports for taxonomy tests");
