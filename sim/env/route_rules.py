"""Two Leaderboard 2.0 route criteria that depend on time and speed: the route timeout and the minimum speed.

* :class:`RouteTimer`: when a route runs out of time. ``budget`` (the env's own default, fit for training):
  a fixed budget, route length / ``route_time_budget_mps`` + 30 s. ``leaderboard``: the rule of the
  Leaderboard 2.0's ``RouteTimeoutBehavior`` (scenario_runner): 300 s to start with, and every metre of
  route progress adds the time it takes at 10 % of the lane's speed limit. A car that keeps moving along
  its route never times out; one that stands still is caught by the blocked rule (180 s) first.
* :class:`MinSpeedCheck`: the Leaderboard 2.0's ``MinimumSpeedRouteTest`` with its 4 checkpoints. The
  route is cut into four equal stretches; over each one the ego's mean speed is compared with the mean
  speed of the other vehicles (every tick's average over all of them; the Leaderboard averages its
  background traffic, which leaves out scenario actors: here those count too). Below 100 % is a
  ``min_speed_infractions`` event carrying that percentage (the penalty is scaled by it in
  :mod:`sim.env.metrics`). The last stretch is scored when the route ends past 95 % of its length.
"""

from __future__ import annotations

import math

LEADERBOARD_MIN_TIMEOUT_S = 300.0
"""RouteTimeoutBehavior.MIN_TIMEOUT: the time a route starts with."""
LEADERBOARD_TIMEOUT_SPEED_SHARE = 0.10
"""RouteTimeoutBehavior.TIMEOUT_ROUTE_PERC / 100: progress buys time at this share of the speed limit."""
MIN_SPEED_CHECKPOINTS = 4
"""MinimumSpeedRouteTest(checkpoints=4) in the Leaderboard 2.0's route scenario."""
LAST_CHECKPOINT_SHARE = 0.95
"""The last stretch is scored only if the route ends past this share of its length (routes end at ~99 %)."""


class RouteTimer:
    """The route's time limit; :meth:`advance` once per tick, :meth:`expired` says when it has run out."""

    def __init__(self, mode: str, route_length_m: float, budget_mps: float, dt_s: float) -> None:
        if mode not in ("budget", "leaderboard"):
            raise ValueError(f"route timeout mode must be 'budget' or 'leaderboard', got {mode!r}")
        self.mode = mode
        self.dt_s = float(dt_s)
        self.limit_s = (LEADERBOARD_MIN_TIMEOUT_S if mode == "leaderboard"
                        else route_length_m / budget_mps + 30.0)
        self._progress_m = 0.0

    def advance(self, progress_m: float, speed_limit_mps: float) -> None:
        """One tick; the ego is ``progress_m`` along the route, on a lane limited to ``speed_limit_mps``."""
        gained = progress_m - self._progress_m
        if gained > 0.0:
            self._progress_m = progress_m
            if self.mode == "leaderboard" and speed_limit_mps > 0.0:
                self.limit_s += gained / (speed_limit_mps * LEADERBOARD_TIMEOUT_SPEED_SHARE)

    def expired(self, ticks: int) -> bool:
        """Whether ``ticks`` ticks since the start have used up the limit."""
        return ticks >= math.ceil(self.limit_s / self.dt_s)


class MinSpeedCheck:
    """The ego's speed against the traffic's, per quarter of the route (see the module docstring)."""

    def __init__(self, route_length_m: float, checkpoints: int = MIN_SPEED_CHECKPOINTS) -> None:
        self.route_length_m = float(route_length_m)
        self.checkpoint_m = self.route_length_m / checkpoints
        self.values: list[float] = []
        """The percentage of each scored stretch (above 100 where the ego was faster than traffic)."""
        self._start_m = 0.0
        self._progress_m = 0.0
        self._ego_sum = self._traffic_sum = 0.0
        self._points = 0

    def update(self, progress_m: float, ego_speed_mps: float, traffic_mean_speed_mps: float | None) -> float | None:
        """One tick; ``traffic_mean_speed_mps`` is None without other vehicles. The percentage of a stretch
        that has just ended below 100 %, else None."""
        self._progress_m = max(self._progress_m, progress_m)
        failed = None
        if self._progress_m - self._start_m > self.checkpoint_m:
            failed = self._close()
            self._start_m = self._progress_m
        if traffic_mean_speed_mps is not None:
            self._ego_sum += ego_speed_mps
            self._traffic_sum += traffic_mean_speed_mps
            self._points += 1
        return failed

    def finish(self) -> float | None:
        """At the route's end: scores the last stretch if the route got past 95 %; its percentage if below 100."""
        if self.route_length_m > 0 and self._progress_m / self.route_length_m > LAST_CHECKPOINT_SHARE:
            return self._close()
        return None

    def _close(self) -> float | None:
        if self._points > 0 and self._traffic_sum > 0.0:
            value = round(self._ego_sum / self._traffic_sum * 100.0, 2)
        else:
            value = 100.0
        self.values.append(value)
        self._ego_sum = self._traffic_sum = 0.0
        self._points = 0
        return value if value < 100.0 else None
