"""Save sample sensor images: RGB, depth, semantic and a LiDAR top view (``benchmarks/samples/``).

Usage: ``python -m benchmarks.sensor_samples [--map Town10HD] [--ticks 60]``. The hero drives on
autopilot through traffic for ``--ticks`` ticks, then every camera of the benchmark suite is saved,
and the LiDAR sweep is drawn from above (colour by height, ego at the centre, 1 px = 0.2 m).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from benchmarks.sensors_bench import SUITE
from sim.render import save_png
from sim.embedded.sensors.rig import SensorRig
from sim.sensors.suite import load_suite
from sim.embedded.world import EmbeddedWorld

OUT = Path(__file__).resolve().parent / "samples"
CITYSCAPES = {0: (0, 0, 0), 1: (128, 64, 128), 2: (244, 35, 232), 3: (70, 70, 70), 4: (102, 102, 156),
              5: (190, 153, 153), 6: (153, 153, 153), 7: (250, 170, 30), 8: (220, 220, 0), 9: (107, 142, 35),
              10: (152, 251, 152), 11: (70, 130, 180), 12: (220, 20, 60), 13: (255, 0, 0), 14: (0, 0, 142),
              15: (0, 0, 70), 16: (0, 60, 100), 18: (0, 0, 230), 24: (157, 234, 50), 25: (81, 0, 81)}


def lidar_top_view(points: np.ndarray, size_px: int = 600, m_per_px: float = 0.2) -> np.ndarray:
    """LiDAR points (N, 4) seen from above, x up the image, coloured by height."""
    image = np.zeros((size_px, size_px, 3), np.uint8)
    col = (size_px / 2 + points[:, 1] / m_per_px).astype(int)
    row = (size_px / 2 - points[:, 0] / m_per_px).astype(int)
    ok = (col >= 0) & (col < size_px) & (row >= 0) & (row < size_px)
    height = np.clip((points[ok, 2] + 2.5) / 5.0, 0, 1)
    colours = cv2.applyColorMap((height * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    image[row[ok], col[ok]] = colours
    return image


def main() -> None:
    """Drive a little, then save the samples."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--map", default="Town10HD")
    parser.add_argument("--ticks", type=int, default=60)
    args = parser.parse_args()
    world = EmbeddedWorld(map=args.map, seed=0)
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
    world.spawn_traffic(50)
    world.spawn_walkers(30)
    rig = SensorRig(world, load_suite(SUITE))
    for _ in range(args.ticks):
        data = rig.measure(world.tick())
    OUT.mkdir(exist_ok=True)
    save_png(OUT / "rgb.png", data["rgb"].data)
    depth = data["depth"].data
    save_png(OUT / "depth.png", (255 * (1 - np.clip(np.log1p(depth) / np.log1p(200.0), 0, 1))).astype(np.uint8))
    palette = np.zeros((256, 3), np.uint8)
    for tag, colour in CITYSCAPES.items():
        palette[tag] = colour
    save_png(OUT / "semantic.png", palette[data["semantic"].data])
    save_png(OUT / "lidar_top.png", lidar_top_view(data["lidar"].data))
    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.png')))} to {OUT}")


if __name__ == "__main__":
    main()
