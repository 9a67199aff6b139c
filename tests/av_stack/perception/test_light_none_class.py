"""The light reader's defences against misreads (av_stack/perception/learned/light.py, light_train.py): a held
state changes only after ``confirm_frames`` (default 2) confident readings in a row; a model with ``none_class`` says when a
crop holds no lit head, which the reader takes as "not seen"; ``min_visible_clipped`` lets the light camera read
a window whose box is partly behind it; the training negatives lie above the heads' box; and a tiny training run
learns the fourth class."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from av_stack.perception.learned.light import (
    EXTRA_LIGHT_CAMERA,
    NONE_CLASS,
    LightConfig,
    LightNet,
    LightReader,
    box_samples,
    head_box,
    light_net,
    load_light_checkpoint,
    project,
    save_light_checkpoint,
    world_to_ego,
)
from av_stack.perception.learned.light_train import accuracy_by_distance, fit, lifted_window, random_window
from sim.config import ConfigError
from tests.av_stack.perception.test_light_cameras import GREEN, LIGHT_CAMERA, RED, frame
from tests.av_stack.perception.test_light_classifier import lamp_patches, small_config
from tests.av_stack.perception.test_light_locator import CAMERA, mission


pytestmark = pytest.mark.usefixtures("one_thread")


NONE_CONFIG = LightConfig.model_validate({"model": {"none_class": True}})


class ScriptedNet(nn.Module):
    """Stands in for LightNet: each call returns the next scripted class with probability ~0.99."""

    def __init__(self, script: list[int], classes: int = 4) -> None:
        super().__init__()
        self.script, self.classes = list(script), classes

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        logits = torch.full((1, self.classes), -5.0)
        logits[0, self.script.pop(0)] = 5.0
        return logits


def read_sequence(script: list[int], confirm_frames: int = 3) -> list[tuple[str, str]]:
    """(state, source) of a reader whose classifier answers ``script``, 20 m before the first light."""
    reader = LightReader(ScriptedNet(script), NONE_CONFIG, confirm_frames=confirm_frames)
    reader.reset(mission())
    out = []
    for k in range(len(script)):
        obs = reader(frame(30.0, 0.05 * k, RED, None, speed=0.0))
        assert reader.source != "none" and obs.distance_m == pytest.approx(20.0, abs=0.5)
        out.append((obs.state.name, reader.source))
    return out


R, Y, G, N = 0, 1, 2, NONE_CLASS


def test_a_held_state_changes_only_after_confirm_frames_readings_in_a_row():
    assert read_sequence([R, G, R, G, G, G, N, R]) == [
        ("RED", "read"),     # the first reading is taken at once
        ("RED", "held"),     # one green: not yet
        ("RED", "read"),     # red again: the streak is broken
        ("RED", "held"), ("RED", "held"),
        ("GREEN", "read"),   # the third green in a row
        ("GREEN", "held"),   # no lit head in the crop: as if out of view
        ("GREEN", "held")]
    assert [s for s, _ in read_sequence([R, G], confirm_frames=1)] == ["RED", "GREEN"]
    reader = LightReader(ScriptedNet([R, G, G]), NONE_CONFIG)  # the default: two in a row
    reader.reset(mission())
    assert reader.confirm_frames == 2
    assert [reader(frame(30.0, 0.05 * k, RED, None, speed=0.0)).state.name for k in range(3)] == ["RED", "RED", "GREEN"]
    with pytest.raises(ValueError, match="confirm_frames"):
        LightReader(ScriptedNet([]), NONE_CONFIG, confirm_frames=0)


def test_a_crop_without_a_lit_head_never_becomes_the_light():
    assert read_sequence([N, N, N]) == [("RED", "unseen")] * 3  # never read: the safe guess, not a reading
    assert read_sequence([N, G, N, N]) == [("RED", "unseen"), ("GREEN", "read"), ("GREEN", "held"),
                                           ("GREEN", "held")]
    # an unsure no-head answer interrupts a streak like any other
    assert read_sequence([R, G, G, N, G, G]) == [("RED", "read"), ("RED", "held"), ("RED", "held"),
                                                 ("RED", "held"), ("RED", "held"), ("RED", "held")]


def far_pole_mission():
    """The test route with the first light's pole 5.5 m before its stop line (x = 50), as on a Town02 stop."""
    m = mission()
    location = m.signals.location_xyz.copy()
    location[0, 0] = 44.5
    return replace(m, signals=replace(m.signals, location_xyz=location))


def light_camera_share(x: float) -> float:
    """The share of the first light's box in the light camera's clipped window, the ego at ``x``."""
    reader = LightReader(LightNet(8), LightConfig())
    reader.reset(far_pole_mission())
    view = reader.view(frame(x, 0.0, RED, GREEN))
    window = reader.window(view.target, LIGHT_CAMERA)
    return 0.0 if window is None else window.visible


def test_the_clipped_threshold_lets_the_light_camera_read_a_box_partly_behind_it():
    # near the pole the box reaches behind the rear-roof camera: find a place where 20-50 % is in view
    shares = {x: light_camera_share(x) for x in np.arange(40.0, 50.0, 0.25)}
    x = next(x for x, share in shares.items() if 0.2 <= share < 0.5)
    default = LightReader(LightNet(8), LightConfig())
    lowered = LightReader(LightNet(8), LightConfig.model_validate({"window": {"min_visible_clipped": 0.2}}))
    for reader in (default, lowered):
        reader.reset(far_pole_mission())
    seen_default = default.view(frame(x, 0.0, RED, GREEN))
    seen_lowered = lowered.view(frame(x, 0.0, RED, GREEN))
    assert seen_lowered.camera == EXTRA_LIGHT_CAMERA and lowered.in_view(seen_lowered.window, seen_lowered.camera)
    assert not default.in_view(seen_default.window, seen_default.camera)
    # the checkpoint's own camera keeps the plain threshold
    assert lowered.in_view(seen_lowered.window, "front_rgb") is False


def test_training_negatives_lie_wholly_above_the_heads():
    m, config = mission(), LightConfig()
    reader = LightReader(LightNet(8), config)
    reader.reset(m)
    rng = np.random.default_rng(0)
    found = 0
    for x in (15.0, 30.0, 44.0, 46.0):
        view = reader.view(frame(x, 0.0, RED, GREEN))
        target = view.target
        for calibration in (CAMERA, LIGHT_CAMERA):
            for lift in (0.0, 3.0, 7.0, 9.0, 12.0):  # low lifts overlap the heads: they must be refused
                window = lifted_window(reader, target, calibration, target.pose, lift)
                if window is None:
                    continue
                found += 1
                corners = world_to_ego(head_box(m, target, config.window), target.pose)
                pixels, depth = project(box_samples(corners, 6), calibration)
                assert window.box[3] < pixels[depth > 0.5, 1].min()  # the crop's bottom above every head point
                assert window.box[3] > 0.0  # and it reaches into the image
    assert found >= 6
    for _ in range(50):
        u0, v0, u1, v1 = random_window((256, 192), rng).box
        assert u1 - u0 == pytest.approx(2 * (v1 - v0)) and 24 <= u1 - u0 <= 256 and 0 <= (u0 + u1) / 2 <= 256


def test_a_tiny_training_run_learns_the_no_lamp_class(tmp_path):
    patches, labels = lamp_patches(96)
    rng = np.random.default_rng(3)
    empty = rng.integers(40, 90, (48, 2, 24, 48, 3)).astype(np.uint8)
    empty[:16, :, :8] = (120, 170, 230)  # sky across the top of some
    patches = np.concatenate([patches, empty])
    labels = np.concatenate([labels, np.full(48, NONE_CLASS)])
    config = LightConfig.model_validate({"model": {"width": 8, "none_class": True},
                                         "train": {"batch_size": 16, "learning_rate": 0.01}})
    model = light_net(config)
    assert model.head.out_features == 4
    fit(model, patches, labels, config, tmp_path, epochs=8)
    test, truth = lamp_patches(40, crops=1, seed=1)
    test_empty = np.random.default_rng(4).integers(40, 90, (20, 1, 24, 48, 3)).astype(np.uint8)
    scores = accuracy_by_distance(model, np.concatenate([test, test_empty])[:, 0],
                                  np.concatenate([truth, np.full(20, NONE_CLASS)]), np.full(60, 15.0))
    assert scores["accuracy"] >= 0.9 and scores["none_recall"] >= 0.9 and scores["false_none"] <= 0.1
    loaded, loaded_config, _ = load_light_checkpoint(tmp_path / "last.pt")
    assert loaded_config.model.none_class and loaded.head.out_features == 4
    with pytest.raises(ValueError, match="none_class"):
        fit(LightNet(8), patches, labels, small_config(), epochs=1)


def test_an_old_three_class_checkpoint_still_loads_and_a_bad_lift_range_is_named(tmp_path):
    save_light_checkpoint(tmp_path / "old.pt", LightNet(8), small_config())
    model, config, _ = load_light_checkpoint(tmp_path / "old.pt")
    assert not config.model.none_class and model.head.out_features == 3
    with pytest.raises(ConfigError, match="negative_lift_m"):
        from av_stack.perception.learned.light import load_light_config

        load_light_config({"train": {"negative_lift_m": [9.0, 4.0]}})
