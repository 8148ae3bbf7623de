# kdebug capture hook, sourced by kdebug's /init (launch/initramfs/busybox-init.sh).
# In the kdump capture kernel (/proc/vmcore exists) it saves the old kernel's
# memory for the host, then leaves the shell to kdebug, which stops QEMU once
# the host has every byte. `kdebug capture` puts the settings on the capture
# kernel's command line:
#   kdebug.dump=flat|elf  kdebug.level=0-31  kdebug.comp=zlib|lzo|none
#   kdebug.disk=vdX: write the file vmcore on that ext4 disk (--via disk), which
#     the host reads back with debugfs, without mounting; otherwise stream to the
#     virtio-serial port org.kdebug.dump.
# Markers on the console, through init's kd_say: "kdebug-capture: start|done|error ...".
if [ -e /proc/vmcore ]; then
	kd_mode= kd_level=31 kd_comp= kd_disk=
	for kd_arg in $kd_cmdline; do  # read by /init
		case "$kd_arg" in
		kdebug.dump=*) kd_mode=${kd_arg#*=} ;;
		kdebug.level=*) kd_level=${kd_arg#*=} ;;
		kdebug.comp=zlib) kd_comp=-c ;;
		kdebug.comp=lzo) kd_comp=-l ;;
		kdebug.disk=*) kd_disk=/dev/${kd_arg#*=} ;;
		esac
	done
	kd_port=
	kd_i=0
	# The port appears once the host's control message arrives: give it 5 s.
	while [ -n "$kd_mode" ] && [ -z "$kd_port" ] && [ $kd_i -lt 50 ]; do
		[ -n "$kd_disk" ] && [ -b "$kd_disk" ] && kd_port=$kd_disk && break
		for kd_n in /sys/class/virtio-ports/*/name; do
			kd_name=
			read -r kd_name 2>/dev/null < "$kd_n"
			[ "$kd_name" = org.kdebug.dump ] || continue
			kd_dev=/dev/${kd_n%/name}
			kd_dev=/dev/${kd_dev##*/}
			[ -c "$kd_dev" ] && kd_port=$kd_dev
		done
		[ -z "$kd_port" ] && sleep 0.1
		kd_i=$((kd_i + 1))
	done
	kd_file=
	if [ -n "$kd_disk" ] && [ -n "$kd_port" ]; then
		mkdir -p /mnt/kdebug-dump
		if mount -t ext4 -o noinit_itable "$kd_disk" /mnt/kdebug-dump; then
			kd_file=/mnt/kdebug-dump/vmcore
		else
			kd_say "kdebug-capture: error no-mount (cannot mount $kd_disk as ext4)"
			kd_mode=
		fi
	fi
	if [ -z "$kd_mode" ]; then
		:
	elif [ -z "$kd_port" ]; then
		kd_say "kdebug-capture: error no-port (${kd_disk:-virtio-serial port org.kdebug.dump} not found)"
	else
		kd_say "kdebug-capture: start size=$(stat -c %s /proc/vmcore) port=$kd_port"
		# --message-level 4: errors only, no progress bars on the console.
		if [ "$kd_mode" = elf ]; then
			cat /proc/vmcore > "${kd_file:-$kd_port}"
		elif [ -n "$kd_file" ]; then
			# A file can be seeked: kdump-compressed at once, no flattened stream.
			makedumpfile $kd_comp -d "$kd_level" --message-level 4 /proc/vmcore "$kd_file"
		else
			makedumpfile -F $kd_comp -d "$kd_level" --message-level 4 /proc/vmcore > "$kd_port"
		fi
		kd_st=$?
		# The host reads the disk once QEMU has stopped: nothing may stay in the page cache.
		if [ -n "$kd_file" ]; then
			sync
			umount /mnt/kdebug-dump || kd_st=1
		fi
		kd_say "kdebug-capture: done status=$kd_st"
	fi
fi
