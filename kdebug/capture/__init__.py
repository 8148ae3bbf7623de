"""Crash capture: kdump in the guest or QEMU's own memory dump, both ending in
a :class:`~kdebug.capture.record.Capture` and a directory with the vmcore."""
