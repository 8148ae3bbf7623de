"""Talk to a running guest: its serial console (pexpect) and QMP."""
