// A process with N extra threads that sleep forever: the live gdb tests'
// truth for thread walking (the busybox guest has no threaded program).
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	pthread_t t;

	for (int i = 0; i < n; i++)
		if (pthread_create(&t, NULL, sleeper, NULL))
			return 1;
	for (;;)
		pause();
}
