/* The classic first initramfs: a static /init that greets and stays up.
 * If it returned, the kernel would panic with "Attempted to kill init". */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Hello world!\n");
	fflush(stdout);
	for (;;)
		sleep(1000);
}
