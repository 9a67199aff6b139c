"""Detections drawn into a BEV layer (the classical stage's vehicle and pedestrian channels, and the learned
stage's with ``vehicle_layer`` / ``pedestrian_layer``: ``boxes`` or ``union``)."""

from __future__ import annotations

import cv2
import numpy as np

from av_stack.messages import BevSpec, Detections
from sim.api import ActorKind
from sim.transforms import box_corners

__all__ = ["draw_boxes"]


def draw_boxes(detections: Detections, kind: ActorKind, spec: BevSpec) -> np.ndarray:
    """(H, W) float32 0/1 mask of the oriented boxes of the detections of ``kind`` (ego frame)."""
    size = spec.config.size_px
    mask = np.zeros((size, size), np.uint8)
    keep = detections.kind == int(kind)
    if keep.any():
        corners = box_corners(detections.center_m[keep, :2], detections.yaw_rad[keep], detections.extent_m[keep, :2])
        pixels = spec.ego_to_pixel(corners.reshape(-1, 2)).reshape(-1, 4, 2)
        for quad in np.round(pixels * 8).astype(np.int32):  # one fill per box: overlaps stay filled
            cv2.fillConvexPoly(mask, quad, 1, cv2.LINE_8, 3)
    return mask.astype(np.float32)
