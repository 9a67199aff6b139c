"""Prior maps: ``avsim map build-prior`` on a collected log and dataset, the file round trip, voxel
accumulation, cropping, bad inputs, and Open3D staying out of ``import av_stack.localization`` and the EKF."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from av_stack.localization.prior_map import (PriorMap, PriorMapError, VoxelCloud, load_prior_map, save_prior_map,
                                             voxel_means)
from launch.prior_map_cli import build_prior


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(build_prior)
    app.callback()(lambda: None)
    return app


def _build(*args: str):
    return CliRunner().invoke(_app(), ["build-prior", *args])


def test_build_prior_from_a_log_and_a_dataset_round_trip(dataset, tmp_path):
    log = sorted(dataset.glob("*.mcap"))[0]
    result = _build(str(log), "--out", str(tmp_path / "one.npz"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["map"] == "Town01" and summary["logs"] == 1 and summary["points"] > 1000
    prior = load_prior_map(tmp_path / "one.npz")
    assert len(prior) == summary["points"] and prior.voxel_m == 0.2 and prior.sources == (log.name,)
    assert np.allclose(np.linalg.norm(prior.normals, axis=1), 1.0, atol=1e-3)
    low, high = prior.extent()
    assert low[2] > -1.0 and high[2] < 30.0  # ground and buildings, nothing below the road
    # The ground under the logged ego is in the map, and its normals point up or down.
    near, normals = prior.crop(float(prior.points[:, 0].mean()), float(prior.points[:, 1].mean()), 200.0)
    flat = near[:, 2] < 0.1
    assert flat.mean() > 0.2 and np.median(np.abs(normals[flat, 2])) > 0.95
    # Every log of the dataset, the voxel size and range from the options.
    result = _build(str(dataset), "--out", str(tmp_path / "all.npz"), "--voxel", "0.5", "--max-range", "30",
                    "--json")
    assert result.exit_code == 0, result.output
    both = load_prior_map(tmp_path / "all.npz")
    assert len(both.sources) == 2 and both.voxel_m == 0.5 and len(both) < len(prior)
    # save / load keeps everything
    save_prior_map(both, tmp_path / "copy.npz")
    again = load_prior_map(tmp_path / "copy.npz")
    assert np.array_equal(again.points, both.points) and np.array_equal(again.normals, both.normals)
    assert (again.voxel_m, again.map_name, again.sources) == (both.voxel_m, both.map_name, both.sources)


def test_build_prior_bad_inputs_are_one_line_and_keep_what_is_there(dataset, tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"an older map")
    cases = [([str(tmp_path / "nothing")], "no log file or dataset directory"),
             ([str(out)], "not a readable MCAP log"),
             ([str(dataset), "--town", "Town05"], "no log of town 'Town05'"),
             ([str(dataset), "--lidar", "roof"], "no LiDAR named 'roof'")]
    for source, expected in cases:
        result = _build(*source, "--out", str(out))
        assert result.exit_code == 2 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert out.read_bytes() == b"an older map"
    result = _build(str(dataset), "--out", str(tmp_path / "map.txt"))
    assert result.exit_code == 2 and ".npz" in result.output


def test_corrupt_and_foreign_files_are_prior_map_errors(tmp_path):
    good = save_prior_map(PriorMap(np.random.default_rng(0).normal(size=(50, 3)), np.tile([0, 0, 1.0], (50, 1)),
                                   0.2, "T"), tmp_path / "good.npz")
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(PriorMapError, match="cut.npz is not a readable prior map"):
        load_prior_map(tmp_path / "cut.npz")
    with np.load(good) as archive:
        fields = dict(archive)
    np.savez(tmp_path / "v9.npz", **{**fields, "version": np.array(9)})
    with pytest.raises(PriorMapError, match="v9.npz is prior-map version 9"):
        load_prior_map(tmp_path / "v9.npz")
    np.savez(tmp_path / "nan.npz", **{**fields, "points": np.full((50, 3), np.nan, np.float32)})
    with pytest.raises(PriorMapError, match="nan.npz: .*finite"):
        load_prior_map(tmp_path / "nan.npz")
    np.savez(tmp_path / "other.npz", **{**fields, "format": np.array("something else")})
    with pytest.raises(PriorMapError, match="other.npz is not a prior map"):
        load_prior_map(tmp_path / "other.npz")
    with pytest.raises(PriorMapError, match="no prior map at"):
        load_prior_map(tmp_path / "absent.npz")


def test_voxel_accumulation_is_exact_and_counts_logs():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-3, 3, (500, 3)), rng.uniform(-3, 3, (400, 3))
    one, two, merged = VoxelCloud(1.0), VoxelCloud(1.0), VoxelCloud(1.0)
    one.add(a[:200])
    one.add(a[200:])  # two batches of one log
    two.add(b)
    merged.merge(one)
    merged.merge(two)
    expected = voxel_means(np.concatenate([a, b]), 1.0)
    assert np.allclose(np.sort(merged.means(), axis=0), np.sort(expected, axis=0))
    assert one.logs.max() == 1 and merged.logs.max() == 2 and merged.counts.sum() == 900
    with pytest.raises(PriorMapError, match="voxel"):
        merged.merge(VoxelCloud(0.5))


def test_crop_matches_a_brute_force_selection():
    points = np.random.default_rng(1).uniform(-100, 100, (20000, 3))
    prior = PriorMap(points, np.tile([0.0, 0.0, 1.0], (len(points), 1)), 0.2)
    near, _ = prior.crop(13.0, -41.0, 27.5)
    expected = points[(np.abs(points[:, 0] - 13.0) <= 27.5) & (np.abs(points[:, 1] + 41.0) <= 27.5)]
    assert len(near) == len(expected)
    assert np.allclose(np.sort(near[:, 0]), np.sort(expected[:, 0].astype(np.float32)))
    assert len(prior.crop(1e4, 1e4, 10.0)[0]) == 0


def test_the_localization_package_and_the_ekf_do_not_import_open3d():
    code = ("import sys, numpy as np\n"
            "from av_stack.localization import LOCALIZATION\n"
            "from av_stack.localization.evaluate import evaluate_localization\n"
            "from av_stack.messages import EgoSignals, SensorFrame\n"
            "stage = LOCALIZATION.build({'name': 'ekf'})\n"
            "stage.step(SensorFrame(0, 0.0, EgoSignals(1.0, gnss=np.array([0.001, 0.001, 0.0]))))\n"
            "assert 'open3d' not in sys.modules, 'open3d was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
