"""Post-mortem over the engines: many dumps analysed side by side (triage)."""
