"""crash as a second engine: run it non-interactively (runner.py, the only
place that starts it) and parse its text (parse.py, pure)."""
