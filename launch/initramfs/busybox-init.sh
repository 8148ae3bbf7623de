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
# Every fork costs milliseconds under TCG, and this runs before every boot is
# ready: shell builtins read /proc from here on (read, not $(cat), $(uname -r),
# grep, hostname or dmesg -n).
read -r kd_release < /proc/sys/kernel/osrelease
read -r kd_cmdline < /proc/cmdline
# kdebug.capture_devices=GLOB[,GLOB...]: modaliases of devices a capture adds
# for its kdump capture kernel alone (the dump port); this kernel leaves them
# without a driver. The capture kernel's command line does not carry it.
root= loglevel= kd_later=
set -f  # words, not file names: kdebug.capture_devices= carries globs
for arg in $kd_cmdline; do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	kdebug.loglevel=*) loglevel=${arg#*=} ;;
	kdebug.capture_devices=*) kd_later=${arg#*=} ;;
	esac
done
set +f

# Markers for kdebug go through the kernel log at KERN_EMERG: a printk record
# reaches the serial port whole and at any console loglevel, while a
# process's own output can be cut by a kernel message between two 16-byte
# chunks ("kdebug-init: rea[  3.01] ...\ndy"), and then never matches.
kd_say() {
	echo "<0>$*" 2>/dev/null > /dev/kmsg || echo "$*"
}

# Modules in dependency order, written by kdebug at build time, and only
# into the kernel they were built for: a kdump capture kernel that is not
# the crashed one boots this /init too. After a module's path come the
# modaliases of the devices it drives: it loads only once one of them is
# there (a module named alone always loads). Loading a module can add
# devices (virtio_pci adds the virtio ones), so they are read again after.
kd_for_later() {  # $1: a modalias; true when kdebug.capture_devices names it
	kd_rest=$kd_later
	while [ -n "$kd_rest" ]; do
		kd_p=${kd_rest%%,*}
		case "$kd_rest" in *,*) kd_rest=${kd_rest#*,} ;; *) kd_rest= ;; esac
		case "$1" in $kd_p) return 0 ;; esac
	done
	return 1
}
kd_devs= kd_stale=1
kd_has_device() {
	if [ -n "$kd_stale" ]; then
		kd_devs= kd_stale=
		set +f
		for kd_f in /sys/bus/*/devices/*/modalias; do
			read -r kd_a 2>/dev/null < "$kd_f" || continue
			kd_for_later "$kd_a" || kd_devs="$kd_devs $kd_a"
		done
		set -f
	fi
	for kd_a in $kd_devs; do
		for kd_p in "$@"; do
			case "$kd_a" in $kd_p) return 0 ;; esac
		done
	done
	return 1
}
kd_built_for=
[ -f /etc/kdebug/kernel.json ] && read -r kd_built_for < /etc/kdebug/kernel.json
case "$kd_built_for" in
*"\"release\": \"$kd_release\""*)
	# (no file: the kernel had no modules.dep, or no module was asked for)
	if [ -f /etc/kdebug/modules ]; then
		set -f  # the patterns are globs for case, not for file names
		while read -r ko kd_guard; do
			[ -n "$ko" ] || continue
			[ -z "$kd_guard" ] || kd_has_device $kd_guard || continue
			insmod "/lib/modules/$ko" 2>/dev/null && kd_stale=1
		done < /etc/kdebug/modules
		set +f
	fi ;;
esac

role=main
[ -e /proc/vmcore ] && role=capture

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
	kd_say "kdebug-init: cannot mount root=$root, staying in the initramfs"
fi

echo kdebug > /proc/sys/kernel/hostname
# Hooks (capture steps, user additions) run before the shell.
for hook in /etc/kdebug/init.d/*; do
	[ -f "$hook" ] && . "$hook"
done

# kdebug.loglevel=N: kdebug drives this shell, so only messages more urgent
# than N may reach the console from now on, where they could cut its command
# markers; the kernel log keeps everything (dmesg).
# (The first field of kernel.printk is the console loglevel: dmesg -n, no fork.)
[ -n "$loglevel" ] && echo "$loglevel" > /proc/sys/kernel/printk
kd_say "kdebug-init: ready role=$role"
while :; do
	setsid cttyhack sh
	# The shell ended: power off instead of letting init exit (a panic).
	poweroff -f
done
