/*
 * kdebug's crash extension: "kdps", every task as one machine-readable line.
 *
 * crash builds its task table from the PID hash (an IDR since v4.15). That
 * walk depends on the layout of struct pid, and crash before 8.0.4 reads it
 * wrongly once struct pid ends in a flexible array (kernel commit
 * b69f0aeb0689, v6.5, backported by Debian to 6.1): it then lists two or
 * three tasks. kdps does not use the PID hash. It walks the group leaders
 * on init_task.tasks and each group's threads, with offsets that crash
 * reads from the debug info, so it works on any kernel crash can open.
 *
 * The line carries raw fields (and ppid, which takes a second read: the
 * real parent's tgid); kdebug's parser derives the state letter and the
 * kernel-thread flag in the one place every engine shares
 * (kdebug/decode/tasks.py), so this file holds no other kernel semantics.
 *
 * Built by kdebug (kdebug/crash/extension.py) against Debian's
 * /usr/include/crash/defs.h, loaded with "extend", run as "kdps".
 */

#include "defs.h"      /* /usr/include/crash/defs.h, from Debian's crash package */

#define KDPS_FORMAT 1
/* No real kernel has this many tasks: a list that goes on is corrupt memory. */
#define KDPS_MAX_TASKS 1000000

struct fld {
	const char *name;
	long offset;
	long size;
};

/* Looked up once per command: each datatype_info() is a gdb query. */
static struct {
	long task_size;
	struct fld tasks, pid, tgid, state, exit_state, flags, comm, real_parent, cpu, on_cpu;
	struct fld thread_node, signal, thread_group; /* one thread walk or the other */
	long thread_head;                             /* in struct signal_struct */
	const char *walk;
} L;

static void cmd_kdps(void);
static char *help_kdps[];

static struct command_table_entry command_table[] = {
	{ "kdps", cmd_kdps, help_kdps, 0 },
	{ NULL },
};

static void __attribute__((constructor))
kdebug_init(void)
{
	register_extension(command_table);
}

static void __attribute__((destructor))
kdebug_fini(void)
{
}

static int
member(struct fld *f, const char *name)
{
	f->name = name;
	f->offset = MEMBER_OFFSET("task_struct", (char *)name);
	f->size = MEMBER_SIZE("task_struct", (char *)name);
	return f->offset >= 0 && f->size > 0;
}

/* A struct list_head member: kdps reads its first word, ->next. */
static int
list_member(struct fld *f, const char *name)
{
	if (!member(f, name))
		return FALSE;
	f->size = sizeof(ulong);
	return TRUE;
}

static int
layout(void)
{
	long ti, ti_cpu;

	L.task_size = STRUCT_SIZE("task_struct");
	/* __state since kernel commit 2f064a59a11f ("sched: Change task_struct::state"), v5.14. */
	if (!member(&L.state, "__state") && !member(&L.state, "state"))
		return FALSE;
	if (!list_member(&L.tasks, "tasks") || !member(&L.pid, "pid") || !member(&L.tgid, "tgid") ||
	    !member(&L.exit_state, "exit_state") || !member(&L.flags, "flags") ||
	    !member(&L.comm, "comm") || !member(&L.real_parent, "real_parent"))
		return FALSE;
	/* The CPU moved into thread_info by commit bcf9033e5449 (v5.16). */
	ti = MEMBER_OFFSET("task_struct", "thread_info");
	ti_cpu = MEMBER_OFFSET("thread_info", "cpu");
	if (ti >= 0 && ti_cpu >= 0) {
		L.cpu.name = "thread_info.cpu";
		L.cpu.offset = ti + ti_cpu;
		L.cpu.size = MEMBER_SIZE("thread_info", "cpu");
	} else if (!member(&L.cpu, "cpu"))
		L.cpu.size = 0;
	if (!member(&L.on_cpu, "on_cpu"))
		L.on_cpu.size = 0;
	/*
	 * A group's threads hang on signal->thread_head by thread_node since
	 * commit 0c740d0afc3b (v3.14); thread_group went in commit 8e1f385104ac
	 * (v6.7). Prefer the list every kernel since v3.14 keeps.
	 */
	L.thread_head = MEMBER_OFFSET("signal_struct", "thread_head");
	if (L.thread_head >= 0 && list_member(&L.thread_node, "thread_node") && member(&L.signal, "signal"))
		L.walk = "thread_head";
	else if (list_member(&L.thread_group, "thread_group"))
		L.walk = "thread_group";
	else
		L.walk = "none";
	return TRUE;
}

static ulong
get(const char *buf, const struct fld *f)
{
	switch (f->size) {
	case 1: return *(const unsigned char *)(buf + f->offset);
	case 2: return *(const unsigned short *)(buf + f->offset);
	case 4: return *(const uint *)(buf + f->offset);
	case 8: return *(const ulong *)(buf + f->offset);
	}
	return 0;
}

/* comm with every byte outside printable ASCII, space and backslash as \xNN. */
static void
put_comm(const char *buf)
{
	long i;
	unsigned char c;

	for (i = 0; i < L.comm.size; i++) {
		c = buf[L.comm.offset + i];
		if (!c)
			break;
		if (c <= ' ' || c >= 0x7f || c == '\\')
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
}

/* Reads and prints one task; FALSE when its memory cannot be read. */
static int
show(ulong task, char *buf)
{
	ulong parent;
	int ppid;

	if (!readmem(task, KVADDR, buf, L.task_size, "task_struct", RETURN_ON_ERROR | QUIET))
		return FALSE;
	/* ppid as /proc/PID/stat shows it: the tgid of the real parent. */
	parent = get(buf, &L.real_parent);
	if (!readmem(parent + L.tgid.offset, KVADDR, &ppid, sizeof(ppid), "real_parent->tgid",
		     RETURN_ON_ERROR | QUIET))
		return FALSE;
	fprintf(fp, "task=%lx pid=%d tgid=%d ppid=%d state=%lx exit_state=%lx flags=%lx cpu=%ld on_cpu=%ld "
		"real_parent=%lx comm=", task, (int)get(buf, &L.pid), (int)get(buf, &L.tgid), ppid,
		get(buf, &L.state), get(buf, &L.exit_state), get(buf, &L.flags),
		L.cpu.size ? (long)get(buf, &L.cpu) : -1L, L.on_cpu.size ? (long)get(buf, &L.on_cpu) : 0L, parent);
	put_comm(buf);
	fputc('\n', fp);
	return TRUE;
}

static void
cmd_kdps(void)
{
	ulong init_task, leader, next, head, node, task, signal;
	char *buf, *lbuf;
	long count = 0;
	const char *why = NULL;
	ulong why_addr = 0;

	while (getopt(argcnt, args, "") != EOF)
		argerrs++;
	if (argerrs || args[optind])
		cmd_usage(pc->curcmd, SYNOPSIS);
	if (!symbol_exists("init_task"))
		error(FATAL, "kdps: no init_task symbol\n");
	if (!layout())
		error(FATAL, "kdps: struct task_struct lacks a member kdps reads\n");

	init_task = symbol_value("init_task");
	buf = GETBUF(L.task_size);
	lbuf = GETBUF(L.task_size);
	hq_open();
	fprintf(fp, "kdps format=%d walk=%s\n", KDPS_FORMAT, L.walk);

	leader = init_task;
	while (!why) {
		if (!hq_enter(leader)) {
			why = "task list loops";
			why_addr = leader;
			break;
		}
		if (!show(leader, lbuf)) {
			why = "cannot read task_struct";
			why_addr = leader;
			break;
		}
		count++;
		if (L.thread_node.size) {
			signal = get(lbuf, &L.signal);
			head = signal + L.thread_head;
			node = head;
			while (signal && !why) {
				if (!readmem(node, KVADDR, &next, sizeof(next), "thread_node", RETURN_ON_ERROR | QUIET)) {
					why = "cannot read thread list";
					why_addr = node;
					break;
				}
				node = next;
				if (node == head)
					break;
				task = node - L.thread_node.offset;
				if (task == leader)
					continue;
				if (!hq_enter(task) || count >= KDPS_MAX_TASKS) {
					why = "thread list loops";
					why_addr = task;
				} else if (!show(task, buf)) {
					why = "cannot read task_struct";
					why_addr = task;
				} else
					count++;
			}
		} else if (L.thread_group.size) {
			next = get(lbuf, &L.thread_group);
			while (!why && next && next - L.thread_group.offset != leader) {
				task = next - L.thread_group.offset;
				if (!hq_enter(task) || count >= KDPS_MAX_TASKS) {
					why = "thread list loops";
					why_addr = task;
				} else if (!show(task, buf)) {
					why = "cannot read task_struct";
					why_addr = task;
				} else {
					count++;
					next = get(buf, &L.thread_group);
				}
			}
		}
		if (why)
			break;
		leader = get(lbuf, &L.tasks) - L.tasks.offset;
		if (leader == init_task)
			break;
		if (count >= KDPS_MAX_TASKS) {
			why = "task list loops";
			why_addr = leader;
		}
	}
	hq_close();
	FREEBUF(buf);
	FREEBUF(lbuf);
	if (why)
		fprintf(fp, "kdps end complete=0 tasks=%ld error=\"%s at %lx\"\n", count, why, why_addr);
	else
		fprintf(fp, "kdps end complete=1 tasks=%ld\n", count);
}

static char *help_kdps[] = {
	"kdps",
	"every task, one machine-readable line each (kdebug)",
	" ",
	"  Walks init_task.tasks and each thread group (signal->thread_head, or",
	"  thread_group before v3.14), not the PID hash, and prints per task:",
	"",
	"    task=ADDR pid=N tgid=N ppid=N state=HEX exit_state=HEX flags=HEX cpu=N",
	"    on_cpu=N real_parent=ADDR comm=NAME",
	"",
	"  ppid is the real parent's tgid, as /proc/PID/stat shows it; state is",
	"  task_struct.__state (state before v5.14); comm escapes bytes",
	"  outside printable ASCII, space and backslash as \\xNN. The first line",
	"  names the format and the thread walk; the last says whether the walk",
	"  reached its end:",
	"",
	"    kdps end complete=1 tasks=N",
	"    kdps end complete=0 tasks=N error=\"cannot read task_struct at ADDR\"",
	"\nEXAMPLE",
	"    crash> extend kdebug.so",
	"    crash> kdps",
	"    kdps format=1 walk=thread_head",
	"    task=ffffffff8e810940 pid=0 tgid=0 ppid=0 state=0 exit_state=0 flags=200102 cpu=0 on_cpu=0 real_parent=ffffffff8e810940 comm=swapper/0",
	"    ...",
	"    kdps end complete=1 tasks=57",
	NULL
};
