"""Replay of run logs (``run.mcap``, :mod:`av_stack.logs`): open loop through one stage, closed loop with a new agent.

- :func:`~av_stack.replay.open_loop.replay_open_loop`: a perception or
  localization stage on the logged sensor frames, scored against the logged
  ground truth (:mod:`av_stack.replay.metrics`);
- :func:`~av_stack.replay.closed_loop.replay_closed_loop`: a new agent
  re-drives the logged routes on the embedded simulator, on the map rebuilt
  from the log, with the other actors on their logged trajectories or on the
  simulator's traffic model; Leaderboard scores as ``avsim eval driving``;
- :mod:`av_stack.logs.regression`: process-replay regression tests of every
  stage against committed reference outputs.

``avsim replay`` (:mod:`launch.replay_cli`) runs the first two.
"""
