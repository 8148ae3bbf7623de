"""Warm starts: a guest saved at its ready line, restored instead of booted."""
