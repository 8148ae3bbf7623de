"""vmcore -> Report -> text | json | md | html (the post-mortem pipeline)."""
