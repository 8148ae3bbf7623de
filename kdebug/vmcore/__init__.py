"""Dumps on disk: recognise a vmcore's format and read its VMCOREINFO
(:mod:`.info`, pure), then find what analysing it needs (:mod:`.locate`)."""
