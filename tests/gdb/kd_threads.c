// A process with N extra threads that sleep forever: the live gdb tests'
// truth for thread walking (the busybox guest has no threaded program).
// The first extra thread forks a child, "kd-child": its real parent is that
// thread, not the group leader, so its ppid (the parent's tgid, as /proc
// shows it) differs from real_parent->pid. It dies with that thread.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	if (arg && fork() == 0) {
		prctl(PR_SET_NAME, "kd-child");
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	pthread_t t;

	for (int i = 0; i < n; i++)
		if (pthread_create(&t, NULL, sleeper, i == 0 ? (void *)1 : NULL))
			return 1;
	for (;;)
		pause();
}
