"""Vehicle controllers of the AV stack (lateral path tracking)."""
