// SPDX-License-Identifier: GPL-2.0
/*
 * kdebug_trigger: provoke one kind of kernel failure on demand, for
 * `kdebug capture --trigger`. Distribution kernels ship without LKDTM, so
 * kdebug builds this against the matching linux-headers package.
 *
 * Write a word to /proc/kdebug_trigger:
 *   oops        NULL pointer write (panics with panic_on_oops)
 *   bug         BUG()               (panics with panic_on_oops)
 *   warn        WARN()              (panics with panic_on_warn)
 *   hung        sleep uninterruptibly forever (hung_task_panic)
 *   softlockup  spin with preemption off (softlockup_panic)
 *
 * The writer itself does the deed, so the failure happens in a plain
 * process context, as most real bugs do.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/uaccess.h>

static noinline void kdebug_trigger_oops(void)
{
	*(volatile int *)NULL = 0x6b64;
}

static noinline void kdebug_trigger_bug(void)
{
	BUG();
}

static noinline void kdebug_trigger_warn(void)
{
	WARN(1, "kdebug_trigger: warn requested\n");
}

static noinline void kdebug_trigger_hung(void)
{
	for (;;) {
		set_current_state(TASK_UNINTERRUPTIBLE);
		schedule();
	}
}

static noinline void kdebug_trigger_softlockup(void)
{
	preempt_disable();
	for (;;)
		cpu_relax();
}

static ssize_t kdebug_trigger_write(struct file *f, const char __user *ubuf,
				    size_t len, loff_t *pos)
{
	char word[16] = {};

	if (len >= sizeof(word))
		return -EINVAL;
	if (copy_from_user(word, ubuf, len))
		return -EFAULT;
	strim(word);
	pr_emerg("kdebug_trigger: %s\n", word);
	if (!strcmp(word, "oops"))
		kdebug_trigger_oops();
	else if (!strcmp(word, "bug"))
		kdebug_trigger_bug();
	else if (!strcmp(word, "warn"))
		kdebug_trigger_warn();
	else if (!strcmp(word, "hung"))
		kdebug_trigger_hung();
	else if (!strcmp(word, "softlockup"))
		kdebug_trigger_softlockup();
	else
		return -EINVAL;
	return len;
}

static const struct proc_ops kdebug_trigger_ops = {
	.proc_write = kdebug_trigger_write,
};

static struct proc_dir_entry *kdebug_trigger_entry;

static int __init kdebug_trigger_init(void)
{
	kdebug_trigger_entry = proc_create("kdebug_trigger", 0200, NULL, &kdebug_trigger_ops);
	return kdebug_trigger_entry ? 0 : -ENOMEM;
}

static void __exit kdebug_trigger_exit(void)
{
	proc_remove(kdebug_trigger_entry);
}

module_init(kdebug_trigger_init);
module_exit(kdebug_trigger_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdebug: provoke kernel failures for crash-capture tests");
