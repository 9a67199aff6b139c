"""The small collection mix of the data tests: two towns, two logs of 6 frames each per town."""

PROCEDURAL = "procedural_2x2_seed1"
MIX = {"towns": [{"map": "Town01"}, {"procedural": {"seed": 1, "grid_rows": 2, "grid_cols": 2}}],
       "traffic": [{"vehicles": 2, "walkers": 0}], "frames": 12, "frames_per_log": 6,
       "noise": {"start_probability": 0.3, "duration_s": [0.2, 0.4]}, "split": {"val": [PROCEDURAL]}}
