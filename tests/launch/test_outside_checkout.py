"""``avsim`` run from a directory outside the checkout, and from the built wheel: shipped configs still load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "town01_short_02"  # a short route of the default eval config's route set


def avsim_in(cwd: Path, *args: str, pythonpath: Path = ROOT) -> subprocess.CompletedProcess:
    """``avsim ARGS`` with ``cwd`` as the current directory and the package imported from ``pythonpath``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    code = "import sys, launch; print('launch from', launch.__file__, file=sys.stderr); from launch.cli import app; app()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """An empty directory outside the checkout."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def test_help_outside_the_checkout(elsewhere):
    result = avsim_in(elsewhere, "eval", "driving", "--help")
    assert result.returncode == 0, result.stderr
    assert "env/leaderboard_town01.yaml" in result.stdout


def test_eval_default_config_outside_the_checkout(elsewhere):
    # The oracle stack config, the env config it builds on and the route file that names
    # (configs/routes/town01.yaml) all come from the package.
    result = avsim_in(elsewhere, "eval", "driving", "--agent", "oracle", "--route", ROUTE, "--observation", "state",
                      "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["env"] == "env/leaderboard_town01.yaml" and record["agent"] == "oracle"
    assert [r["route_id"] for r in record["routes"]] == [ROUTE] and record["routes"][0]["route_completion"] > 0


def test_shipped_config_by_short_name_outside_the_checkout(elsewhere):
    result = avsim_in(elsewhere, "map", "generate", "town.xodr", "--config", "procedural_small")
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "town.xodr").read_text().lstrip().startswith("<?xml")


def test_a_local_path_is_used_as_is(elsewhere):
    config = elsewhere / "my_town.yaml"
    config.write_text("grid_rows: 2\ngrid_cols: 2\nhighway: false\n")
    result = avsim_in(elsewhere, "map", "generate", "a.xodr", "--config", "my_town.yaml")
    assert result.returncode == 0, result.stderr
    result = avsim_in(elsewhere, "map", "generate", "b.xodr", "--config", "procedural_small")
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "a.xodr").read_text() != (elsewhere / "b.xodr").read_text()


def test_missing_config_exits_2_naming_it_and_the_choices(elsewhere):
    result = avsim_in(elsewhere, "eval", "driving", "--agent", "random", "--config", "configs/env/nope.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "configs/env/nope.yaml does not exist" in message
    assert "env/default.yaml" in message and "env/leaderboard_town01.yaml" in message


def _copy_source(destination: Path) -> Path:
    """The checkout's files without build outputs, so a stale build/ folder cannot leak into the wheel."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "outputs", "*.egg-info", "__pycache__",
                                    ".pytest_cache")
    shutil.copytree(ROOT, destination, symlinks=True, ignore=ignore)
    return destination


def test_wheel_ships_the_configs_and_runs_from_them(tmp_path, elsewhere):
    source = _copy_source(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("avsim-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    expected = {f"sim/_configs/{p.relative_to(ROOT / 'configs').as_posix()}" for p in (ROOT / "configs").rglob("*.yaml")}
    assert expected and expected <= names
    assert "sim/resources.py" in names

    # Import avsim from the unpacked wheel (real files, no symbolic link, no checkout) and load shipped configs.
    site = tmp_path / "site"
    result = avsim_in(elsewhere, "eval", "driving", "--route", ROUTE, "--observation", "state", "--json",
                      pythonpath=site)
    assert result.returncode == 0, result.stderr
    assert f"launch from {site / 'launch' / '__init__.py'}" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["routes"][0]["route_id"] == ROUTE
