"""The network's inputs from one frame's sensor arrays (numpy, no torch): a resized camera image and the
LiDAR and radar BEV rasters, plus the camera's ground grid from the calibration (computed once)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from av_stack.messages import BevSpec, SensorCalibration
from av_stack.perception.learned.config import ModelConfig
from av_stack.perception.learned.geometry import (NetworkGrid, camera_ground_grid, is_mirror_symmetric,
                                                  lidar_points_ego, lidar_raster, network_grid, radar_bev)


class FeatureError(ValueError):
    """A frame lacks a sensor the model's inputs need; the message names it and what the frame has."""


@dataclass(frozen=True)
class InputBuilder:
    """Builds the input arrays of :class:`~av_stack.perception.learned.model.FusionNet` for one model config
    and sensor calibration; ``spec`` is the shared BEV grid, :attr:`grid` the network's (the rasters' grid)."""

    config: ModelConfig
    calibration: Mapping[str, SensorCalibration]
    spec: BevSpec
    grid: NetworkGrid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", network_grid(self.spec, self.config.scale, self.config.detection_range_m))
        for input_name in self.config.inputs:
            sensor = getattr(self.config, input_name)
            if sensor not in self.calibration:
                raise FeatureError(f"the model's {input_name} input is sensor {sensor!r}, but the suite has "
                                   f"{sorted(self.calibration)}")
        if "camera" in self.config.inputs:
            c = self.calibration[self.config.camera]
            if c.intrinsics is None or c.image_size is None:
                raise FeatureError(f"sensor {self.config.camera!r} is not a camera (no intrinsics)")

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) the camera image is resized to."""
        width, height = self.calibration[self.config.camera].image_size
        new_width = self.config.image_width
        return new_width, max(8, int(round(height * new_width / width)))

    def ground_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The camera's (G, G, 2) grid and (G, G) mask (for ``FusionNet.set_camera``)."""
        c = self.calibration[self.config.camera]
        return camera_ground_grid(c.intrinsics, c.image_size, c.mount, self.grid.spec, self.grid.scale)

    @property
    def can_mirror(self) -> bool:
        """Whether the inputs can be mirrored left to right (the camera, if used, sits on the centre line)."""
        return "camera" not in self.config.inputs or is_mirror_symmetric(self.calibration[self.config.camera].mount)

    def lidar_points(self, sensors: Mapping[str, np.ndarray], mirror: bool = False
                     ) -> tuple[np.ndarray, np.ndarray] | None:
        """((N, 3) ego-frame points, (N,) intensity) of the model's LiDAR (None: the frame has none)."""
        name = self.config.lidar
        if name not in sensors or name not in self.calibration:
            return None
        return lidar_points_ego(np.asarray(sensors[name]), self.calibration[name].mount, mirror)

    def __call__(self, sensors: Mapping[str, np.ndarray], mirror: bool = False,
                 lidar_ego: tuple[np.ndarray, np.ndarray] | None = None,
                 channels_last: bool = False) -> dict[str, np.ndarray]:
        """``image`` (3, h, w) float32 in [0, 1], ``lidar`` (4, G, G), ``radar`` (2, G, G), as the inputs ask;
        ``mirror``: of the scene mirrored left to right (training augmentation; needs :attr:`can_mirror`);
        ``lidar_ego``: the LiDAR's :meth:`lidar_points` if already computed; ``channels_last``: the rasters
        are views of (G, G, C) arrays, which channels-last tensors take without a copy."""
        if mirror and not self.can_mirror:
            raise FeatureError(f"camera {self.config.camera!r} is off the centre line: its inputs cannot mirror")
        out: dict[str, np.ndarray] = {}
        for input_name in self.config.inputs:
            name = getattr(self.config, input_name)
            if name not in sensors:
                raise FeatureError(f"the frame has no {input_name} data from {name!r}; it has {sorted(sensors)}")
            data, mount = sensors[name], self.calibration[name].mount
            if input_name == "camera":
                image = cv2.resize(np.asarray(data, dtype=np.uint8), self.image_size, interpolation=cv2.INTER_AREA)
                if mirror:
                    image = image[:, ::-1]
                out["image"] = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
            elif input_name == "lidar":
                points = lidar_points_ego(np.asarray(data), mount, mirror) if lidar_ego is None else lidar_ego
                out["lidar"] = lidar_raster(*points, self.grid.spec, self.grid.scale, channels_last)
            else:
                out["radar"] = radar_bev(np.asarray(data), mount, self.grid.spec, self.grid.scale, mirror,
                                         channels_last)
        return out
