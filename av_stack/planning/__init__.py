"""Planning: the privileged expert that drives routes, and trained policies (Stable-Baselines3)."""
