"""The light reader on several cameras (av_stack/perception/learned/light.py): at the stop line the front camera
cannot see the heads and the suite's ``light_rgb`` can, so a red that turned green is read again; a frame
without ``light_rgb`` is read exactly as by the front camera alone; a bad ``cameras`` option is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from av_stack.bridge import calibration_of
from av_stack.messages import SensorFrame
from av_stack.perception.learned.light import (
    EXTRA_LIGHT_CAMERA,
    LightCameraError,
    LightConfig,
    LightReader,
    RouteLightLocator,
    clipped_window,
    head_box,
    light_window,
    world_to_ego,
)
from sim.sensors.suite import load_suite
from tests.av_stack.perception.test_light_locator import CAMERA, frame_at, mission

SUITE = calibration_of(load_suite("configs/sensors/default.yaml"))
LIGHT_CAMERA = SUITE[EXTRA_LIGHT_CAMERA]
RED, GREEN = (255, 40, 30), (40, 255, 100)


class ColourNet(nn.Module):
    """Stands in for LightNet: red or green, whichever channel is brighter in the patch (never yellow)."""

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        mean = patch.float().mean(dim=(2, 3))
        return torch.stack([mean[:, 0], torch.full_like(mean[:, 0], -1e3), mean[:, 1]], dim=1)


def frame(x: float, t: float, front: tuple[int, int, int], light: tuple[int, int, int] | None,
          speed: float = 5.0) -> SensorFrame:
    """A frame at route position ``x`` whose front image is all ``front``, with a ``light_rgb`` image all
    ``light`` (None: the frame has no such camera)."""
    base = frame_at(x, t=t, speed=speed, image=np.full((300, 400, 3), front, np.uint8))
    if light is None:
        return base
    data = {**base.data, EXTRA_LIGHT_CAMERA: np.full((192, 256, 3), light, np.uint8)}
    return SensorFrame(base.frame, base.timestamp_s, base.ego, data, {**base.calibration,
                                                                     EXTRA_LIGHT_CAMERA: LIGHT_CAMERA})


def drive(reader: LightReader, light: tuple[int, int, int] | None) -> list[tuple[str, str, str | None]]:
    """Approach the first light (stop line at x = 50, the pole 1 m before it) reading red in front, stop 4 m
    before the line for 3 s: (state, source, camera) per frame."""
    reader.reset(mission())
    out = []
    for k, x in enumerate(np.arange(20.0, 46.0, 1.0)):
        obs = reader(frame(x, 0.2 * k, RED, light))
        out.append((obs.state.name, reader.source, reader.camera if reader.source == "read" else None))
    for k in range(30):
        obs = reader(frame(46.0, 5.2 + 0.1 * k, RED, light, speed=0.0))
        out.append((obs.state.name, reader.source, reader.camera if reader.source == "read" else None))
    return out


def test_the_shipped_light_camera_sees_the_stop_line_where_the_front_camera_cannot():
    m, window = mission(), LightConfig().window
    locator = RouteLightLocator()
    locator.reset(m)
    locator.update((46.0, 0.0, 0.0), 0.0, 0.0)  # 4 m before the line, the pole 3 m ahead
    target = locator.target(0.0)
    corners = world_to_ego(head_box(m, target, window), target.pose)
    front = light_window(corners, SUITE["front_rgb"])
    assert front is None or front.visible < window.min_visible
    seen = clipped_window(corners, LIGHT_CAMERA)
    assert seen.visible >= window.min_visible
    u0, v0, u1, v1 = seen.box
    assert u1 - u0 == pytest.approx(2 * (v1 - v0)) and u0 < 256 and u1 > 0 and v0 < 192 and v1 > 0


def test_the_clipped_window_counts_what_is_in_the_image_and_is_none_behind():
    box = np.array([[a, c, z] for a in (8.0, 12.0) for c in (-1.0, 1.0) for z in (1.4, 3.4)])
    assert clipped_window(box, CAMERA).visible == pytest.approx(1.0)  # well in front of the front camera
    assert light_window(box, CAMERA).visible == pytest.approx(1.0)
    straddling = box.copy()
    straddling[:, 0] -= 9.5  # from 1.5 m behind the camera to 2.5 m ahead
    assert light_window(straddling, CAMERA) is None
    part = clipped_window(straddling, CAMERA)
    assert 0.0 < part.visible < 1.0
    behind = box.copy()
    behind[:, 0] -= 20.0
    assert clipped_window(behind, CAMERA) is None


def test_at_the_stop_line_the_reader_falls_back_to_the_light_camera_and_sees_the_green():
    reader = LightReader(ColourNet(), LightConfig(), range_m=40.0)
    seen = drive(reader, GREEN)
    approach, stopped = seen[:26], seen[26:]
    # far out the front camera reads the red; when it loses the heads the light camera takes over
    assert approach[5] == ("RED", "read", "front_rgb")
    assert all(s == ("GREEN", "read", EXTRA_LIGHT_CAMERA) for s in stopped)


def test_a_frame_without_the_light_camera_is_read_as_by_the_front_camera_alone():
    default = drive(LightReader(ColourNet(), LightConfig(), range_m=40.0), None)
    front_only = drive(LightReader(ColourNet(), LightConfig(), range_m=40.0, cameras=("front_rgb",)), GREEN)
    assert default == front_only
    assert default[-1] == ("RED", "held", None)  # the light out of view: the last reading holds


def test_a_bad_cameras_option_is_one_clear_error():
    with pytest.raises(LightCameraError, match="distinct camera names"):
        LightReader(ColourNet(), LightConfig(), cameras=())
    with pytest.raises(LightCameraError, match="distinct camera names"):
        LightReader(ColourNet(), LightConfig(), cameras=("front_rgb", "front_rgb"))
    reader = LightReader(ColourNet(), LightConfig(), cameras=("front_rgb", "roof_cam"))
    reader.reset(mission())
    with pytest.raises(LightCameraError, match=r"'roof_cam' is not a camera of the frame \(its cameras: front_rgb"):
        reader(frame(30.0, 0.0, RED, GREEN))


def test_the_stage_option_reaches_the_reader():
    from av_stack.perception.learned.stage import LearnedPerception

    config = LearnedPerception.Config(light_cameras=["light_rgb", "front_rgb"])
    assert config.light_cameras == ("light_rgb", "front_rgb")
    assert LearnedPerception.Config().light_cameras is None


def test_training_on_a_missing_extra_dataset_is_one_clear_error(dataset, tmp_path):
    from av_stack.data.manifest import DatasetError
    from av_stack.perception.learned.light_train import train_light

    config = LightConfig.model_validate({"train": {"data": str(dataset), "extra_data": [str(tmp_path / "nope")],
                                                   "epochs": 1}})
    with pytest.raises(DatasetError, match="nope"):
        train_light(config, tmp_path / "run")
