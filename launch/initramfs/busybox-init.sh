#!/bin/sh
# kdebug's busybox /init. One init serves the first kernel, the kdump capture
# kernel (/proc/vmcore exists only there) and an ext4 root booted with root=.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp 2>/dev/null

# Modules in dependency order, written by kdebug at build time.
if [ -f /etc/kdebug/modules ]; then
	while read -r ko; do
		[ -n "$ko" ] && insmod "/lib/modules/$ko" 2>/dev/null
	done < /etc/kdebug/modules
fi

role=main
[ -e /proc/vmcore ] && role=capture
root=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	esac
done

# root=DEV: mount the disk and continue there, unless we already are there.
if [ "$1" != "--rooted" ] && [ -n "$root" ] && [ "$role" = main ]; then
	i=0
	while [ ! -b "$root" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	mkdir -p /newroot
	if mount -o rw "$root" /newroot; then
		umount /dev/pts /tmp /sys 2>/dev/null
		mount --move /dev /newroot/dev 2>/dev/null
		umount /proc
		exec switch_root /newroot /init --rooted
	fi
	echo "kdebug-init: cannot mount root=$root, staying in the initramfs"
fi

hostname kdebug
# Hooks (capture steps, user additions) run before the shell.
for hook in /etc/kdebug/init.d/*; do
	[ -f "$hook" ] && . "$hook"
done

echo "kdebug-init: ready role=$role"
while :; do
	setsid cttyhack sh
	# The shell ended: power off instead of letting init exit (a panic).
	poweroff -f
done
