"""Closed-loop replay of the committed regression log: the logged expert re-drives its own log to the same
places, a new planner drives differently, reactive vehicles go on the autopilot, the map comes from the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from av_stack.agents import UnknownAgentError
from av_stack.logs import topics as T
from av_stack.logs.reader import LogReader
from av_stack.messages import Mission, PerceptionOutput, Plan, PoseEstimate
from av_stack.planning import PLANNING
from av_stack.registry import StageParams
from av_stack.replay.closed_loop import replay_closed_loop
from av_stack.replay.logged import ReplayError
from av_stack.runner import Observer
from sim.api import VehicleControl

LOG = Path(__file__).resolve().parents[2] / "data" / "logs" / "regression.mcap"
LOG_TICKS = 80


class StandingPlanner:
    """Test planner: holds the brake."""

    class Config(StageParams):
        pass

    def __init__(self, config: Config) -> None:
        self.config = config

    def reset(self, mission: Mission) -> None:
        """Nothing to keep."""

    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        return Plan(perception.frame, perception.timestamp_s, control=VehicleControl(brake=1.0))


if "_test_standing" not in PLANNING.names():
    PLANNING.register("_test_standing")(StandingPlanner)


class MapProbe(Observer):
    """Keeps the map the env drove on."""

    def __init__(self) -> None:
        self.sources = []

    def route_started(self, index: int, route_id: str, env) -> None:
        self.sources.append(env.world.source)


@pytest.fixture(scope="module")
def expert_replay():
    probe = MapProbe()
    result = replay_closed_loop(LOG, "expert", observation="bev", max_ticks=LOG_TICKS,
                                observers=lambda n: [probe])
    return result, probe


def test_the_logged_expert_re_drives_its_own_log(expert_replay):
    result, _ = expert_replay
    replay = result["replay"]
    assert replay["complete"] and not replay["reactive"]
    (route,) = replay["routes"]
    assert route["log_ticks"] == LOG_TICKS and route["actors"] >= 10 and route["actors_not_placed"] == 0
    assert route["actor_sync_error_m"]["max"] < 0.01  # the actors are where the log had them after every tick
    # same agent, same world: the same drive (a meant change of the vehicle dynamics moves the ego: then re-record
    # the log with `python -m av_stack.logs.regression --record --update`)
    assert route["ego_divergence_m"]["max"] < 0.05, route["ego_divergence_m"]
    assert route["ego_divergence_m"]["at_log_end"] is not None
    # the same Leaderboard scores as the logged run had at the same tick
    (record,) = result["routes"]
    assert record["steps"] == LOG_TICKS and record["termination"] == "route_timeout"
    assert record["route_completion"] == pytest.approx(100.0 * route["logged"]["route_completion"], abs=0.1)
    for key in ("driving_score", "route_completion", "infraction_penalty", "routes", "global", "latency_ms"):
        assert key in result
    assert result["stack"]["planning"] == "expert"


def test_the_map_is_rebuilt_from_the_logs_opendrive_text(expert_replay):
    _, probe = expert_replay
    log = LogReader(LOG)
    (source,) = probe.sources
    assert source.name == log.map_name == "procedural_2x2_seed3"
    assert source.xodr_text == log.map_xodr
    assert source.path.name == "procedural_2x2_seed3.xodr" and source.path.parent.name.startswith("avsim-replay-")


def test_a_new_planner_drives_differently_among_the_logged_actors():
    result = replay_closed_loop(LOG, "_test_standing", observation="bev", max_ticks=40)
    (route,) = result["replay"]["routes"]
    assert route["actor_sync_error_m"]["max"] < 0.01
    assert route["ego_divergence_m"]["max"] > 2.0  # the logged ego drove off; this one stands
    (record,) = result["routes"]
    assert record["steps"] == 40 and record["route_completion"] < 1.0


def test_reactive_vehicles_drive_on_the_simulators_autopilot():
    result = replay_closed_loop(LOG, "expert", reactive=True, observation="bev", max_ticks=40)
    (route,) = result["replay"]["routes"]
    assert result["replay"]["reactive"]
    assert route["actors_on_autopilot"] >= 5 and route["actors"] > route["actors_on_autopilot"]  # walkers follow
    assert result["routes"][0]["steps"] == 40


def test_a_cut_log_is_re_driven_as_far_as_it_was_read(tmp_path):
    cut = tmp_path / "cut.mcap"
    data = LOG.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = replay_closed_loop(cut, "expert", observation="bev", max_ticks=LOG_TICKS)
    replay = result["replay"]
    assert not replay["complete"] and "cut or corrupt after t =" in replay["error"]
    (route,) = replay["routes"]
    assert 20 < route["log_ticks"] < LOG_TICKS and route["ego_divergence_m"]["at_log_end"] is not None
    assert result["routes"][0]["steps"] == LOG_TICKS  # logged actors stop at the cut; the drive goes on


def test_bad_requests_give_one_clear_error(tmp_path):
    with pytest.raises(UnknownAgentError, match="unknown agent 'nobody'"):
        replay_closed_loop(LOG, "nobody")
    with pytest.raises(ReplayError, match=r"routes \['elsewhere'\] are not in the log"):
        replay_closed_loop(LOG, "expert", route_ids=["elsewhere"])
    head = tmp_path / "head.mcap"
    data = LOG.read_bytes()
    head.write_bytes(data[:40_000])  # the metadata and attachments, no route
    reader = LogReader(head)
    assert reader.map_xodr
    with pytest.raises(ReplayError, match="holds no route to replay"):
        replay_closed_loop(head, "expert")
    assert T.EPISODE == "/episode"
