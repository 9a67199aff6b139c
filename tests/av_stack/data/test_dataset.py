"""The torch Dataset over a collected directory: fields, shapes and dtypes, splits by town, the cache (identical
samples, stale caches ignored), DataLoader workers, and clear errors for a missing or corrupt dataset."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from av_stack.data.cache import build_cache
from av_stack.data.dataset import DrivingDataset, collate
from av_stack.data.manifest import DatasetError
from tests.av_stack.data.mix import PROCEDURAL

SENSORS = {"sensor/front_rgb": ((300, 400, 3), np.uint8), "sensor/front_depth": ((300, 400), np.float32),
           "sensor/front_semantic": ((300, 400), np.uint8), "sensor/light_rgb": ((192, 256, 3), np.uint8),
           "sensor/gnss": ((3,), np.float64),
           "sensor/imu": ((7,), np.float32)}
LABELS = {"bev": ((14, 192, 192), np.uint8), "ego_pose": ((6,), np.float64), "speed": ((), np.float32),
          "light_state": ((), np.int64), "light_distance": ((), np.float32), "expert_action": ((3,), np.float32),
          "applied_action": ((3,), np.float32), "noise_active": ((), np.bool_)}


@pytest.fixture(scope="module")
def cached(dataset, tmp_path_factory):
    """A copy of the shared dataset with its cache built."""
    root = tmp_path_factory.mktemp("cached") / "data"
    shutil.copytree(dataset[0], root)
    build_cache(root)
    return root


def _check_sample(sample: dict) -> None:
    for key, (shape, dtype) in {**SENSORS, **LABELS}.items():
        assert sample[key].shape == shape and sample[key].dtype == dtype, key
    for key in ("sensor/roof_lidar", "sensor/front_radar"):
        assert sample[key].ndim == 2 and sample[key].shape[1] == 4 and sample[key].dtype == np.float32, key
    assert len(sample["sensor/roof_lidar"]) > 1000
    assert sample["boxes"].shape[1:] == (7,) and sample["boxes"].dtype == np.float32
    assert sample["box_kind"].shape == sample["boxes"].shape[:1] and sample["box_kind"].dtype == np.int64
    assert sample["bev"][0].any()  # the road channel has road on it
    assert -1 <= int(sample["light_state"]) <= 4
    assert isinstance(sample["town"], str) and isinstance(sample["frame"], int)


def test_samples_have_every_field_with_its_shape_and_dtype_and_splits_are_by_town(dataset):
    root, _ = dataset
    data = DrivingDataset(root, cache=False)
    assert not data.cached and len(data) == 24
    assert data.sensors == ("front_rgb", "front_depth", "front_semantic", "light_rgb", "roof_lidar", "front_radar",
                            "gnss", "imu")
    _check_sample(data[0])
    _check_sample(data[-1])
    train, val = DrivingDataset(root, split="train"), DrivingDataset(root, split="val")
    assert len(train) == len(val) == 12 and len(DrivingDataset(root, split="test")) == 0
    assert train.towns() == ["Town01"] and val.towns() == [PROCEDURAL]
    assert {train[k]["town"] for k in range(len(train))} == {"Town01"}
    assert [val[k]["frame"] for k in range(6)] == sorted(val[k]["frame"] for k in range(6))
    assert any(bool(data[k]["noise_active"]) for k in range(len(data)))
    only = DrivingDataset(root, split=["val"], sensors=["front_rgb"])
    assert [k for k in only[0] if k.startswith("sensor/")] == ["sensor/front_rgb"]


def test_the_cache_gives_identical_samples_and_batches_through_a_dataloader(dataset, cached):
    plain = DrivingDataset(dataset[0], cache=False)
    fast = DrivingDataset(cached)
    assert fast.cached and len(fast) == len(plain)
    for k in range(len(plain)):
        a, b = plain[k], fast[k]
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], np.ndarray):
                assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), (k, key)
            else:
                assert a[key] == b[key], (k, key)
    copy = pickle.dumps(fast)  # what a spawned DataLoader worker gets: no mapped arrays, they map again
    assert len(copy) < 200_000 and np.array_equal(pickle.loads(copy)[5]["bev"], plain[5]["bev"])
    subset = DrivingDataset(cached, split="train", sensors=("front_rgb", "roof_lidar"))
    for workers in (0, 2):
        batches = list(DataLoader(subset, batch_size=4, collate_fn=collate, num_workers=workers))
        batch = batches[0]
        assert len(batches) == 3 and batch["sensor/front_rgb"].shape == (4, 300, 400, 3)
        assert batch["sensor/front_rgb"].dtype == torch.uint8 and batch["bev"].shape == (4, 14, 192, 192)
        counts = batch["sensor/roof_lidar_count"]
        assert batch["sensor/roof_lidar"].shape == (4, int(counts.max()), 4)
        assert batch["expert_action"].shape == (4, 3) and batch["town"] == ["Town01"] * 4
    uncached = list(DataLoader(DrivingDataset(dataset[0], split="train", sensors=("front_rgb",), cache=False),
                               batch_size=6, collate_fn=collate, num_workers=2))
    assert torch.equal(uncached[0]["sensor/front_rgb"], torch.from_numpy(np.stack(
        [fast[k]["sensor/front_rgb"] for k in range(6)])))


def test_a_stale_or_partial_cache_is_not_used(cached, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(cached, root)
    with pytest.raises(DatasetError, match="lacks sensor 'nope'"):
        DrivingDataset(root, sensors=["nope"])
    manifest = json.loads((root / "manifest.json").read_text())
    log = root / manifest["logs"][0]["file"]
    log.write_bytes(log.read_bytes() + b"")  # same size: still valid
    assert DrivingDataset(root).cached
    manifest["logs"] = manifest["logs"][:2]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="stale"):
        data = DrivingDataset(root)
    assert not data.cached and len(data) == 12
    with pytest.raises(DatasetError, match="stale"):
        DrivingDataset(root, cache=True)


def test_missing_or_corrupt_datasets_give_one_clear_error(dataset, tmp_path):
    with pytest.raises(DatasetError, match="no dataset directory at"):
        DrivingDataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="has no manifest.json"):
        DrivingDataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="manifest.json is corrupt: not JSON"):
        DrivingDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"logs": [{"file": "a.mcap"}]}))
    with pytest.raises(DatasetError, match=r"logs\[0\] lacks town, frames, seed, split"):
        DrivingDataset(tmp_path)
    root = tmp_path / "data"
    shutil.copytree(dataset[0], root)
    with pytest.raises(DatasetError, match="unknown split dev"):
        DrivingDataset(root, split="dev")
    with pytest.raises(DatasetError, match="has no sensor 'lidar'; its sensors are front_rgb"):
        DrivingDataset(root, sensors=["lidar"])
    with pytest.raises(DatasetError, match="no cache"):
        DrivingDataset(root, cache=True)
    first = root / json.loads((root / "manifest.json").read_text())["logs"][0]["file"]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    with pytest.raises(DatasetError, match=f"{first.name} is cut or corrupt"):
        DrivingDataset(root, cache=False)
    first.unlink()
    with pytest.raises(DatasetError, match=f"the manifest lists {first.name} but .* is missing"):
        DrivingDataset(root, cache=False)
