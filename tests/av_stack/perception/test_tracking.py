"""The centre tracker: ids persist across frames with the ego's motion taken out, new objects get new ids,
kinds never mix, and the velocity comes from the displacement."""

from __future__ import annotations

import math

import numpy as np

from av_stack.perception.tracking import CentreTracker
from sim.api import ActorKind

CAR, WALKER = int(ActorKind.VEHICLE), int(ActorKind.WALKER)


def test_a_car_keeps_its_id_while_the_ego_drives_and_turns():
    tracker = CentreTracker()
    ids, velocity, tracked = tracker.update([CAR], [[10.0, 0.0]], 0.0, 0.0, 0.0)
    assert ids.tolist() == [0] and not tracked[0] and np.allclose(velocity, 0.0)
    # the ego drove 1 m and turned 0.1 rad to the right; the car stood still in the world
    cos, sin = math.cos(0.1), math.sin(0.1)
    rel = np.array([10.0 - 1.0, 0.0])
    seen = np.array([cos * rel[0] + sin * rel[1], -sin * rel[0] + cos * rel[1]])
    ids, velocity, tracked = tracker.update([CAR], [seen], 0.1, 1.0, 0.1)
    assert ids.tolist() == [0] and tracked[0] and np.hypot(*velocity[0]) < 1e-6


def test_new_objects_get_new_ids_and_kinds_do_not_mix():
    tracker = CentreTracker(smoothing=0.0)
    tracker.update([CAR, WALKER], [[10.0, 0.0], [5.0, 3.0]], 0.0, 0.0, 0.0)
    ids, velocity, tracked = tracker.update([WALKER, CAR, CAR], [[10.2, 0.0], [10.5, 0.0], [20.0, 5.0]], 0.1, 0.0,
                                            0.0)
    assert ids[1] == 0 and tracked[1] and np.allclose(velocity[1], [5.0, 0.0])  # 0.5 m in 0.1 s
    assert ids[0] not in (0, 1) and ids[2] not in (0, 1) and ids[0] != ids[2]  # the walker at 10.2 m is new
    assert not tracked[0] and not tracked[2]
