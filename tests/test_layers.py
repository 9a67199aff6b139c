"""The layers of shared/DESIGN.md hold: the import contracts pass, and they fail on a forbidden import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (dev extra)")


def _lint(cwd: Path, *contracts: str) -> subprocess.CompletedProcess:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run([str(LINT), "--no-cache", *selected], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_import_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _scratch_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in ("sim", "av_stack", "launch"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    return copy


@pytest.mark.parametrize("module, wrong_import, contract", [
    ("sim/env/bev.py", "import sim.embedded.world", "env-through-factory"),
    ("sim/scenarios/routes.py", "from sim.carla_backend import conversions", "env-through-factory"),
    ("sim/carla_backend/events.py", "import sim.embedded.collision", "backends-independent"),
    ("sim/embedded/world.py", "import sim.carla_server.rpc", "backends-standalone"),
    ("sim/carla_server/rpc.py", "import sim.carla_backend.conversions", "server-no-client"),
    ("sim/maps/lanes.py", "import sim.env.metrics", "neutral-core"),
    ("sim/api.py", "import gymnasium", "neutral-core"),
    ("sim/env/metrics.py", "import av_stack", "sim-no-av-stack"),
    ("av_stack/__init__.py", "import sim.embedded.world", "av-stack-no-backend"),
    ("sim/env/bev.py", "import open3d", "open3d-only-raycast"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, wrong_import, contract):
    copy = _scratch_copy(tmp_path)
    target = copy / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # deliberately wrong\n")
    result = _lint(copy, contract)
    assert result.returncode != 0, result.stdout
    assert "1 broken" in result.stdout, result.stdout
    assert f"-> {wrong_import.split()[1]}" in result.stdout or wrong_import.split()[1] in result.stdout


def test_importing_the_world_interface_loads_no_heavy_dependency():
    code = ("import sys; import sim, sim.api, sim.config, sim.maps.lanes, sim.sensors.suite, sim.rules.traffic; "
            "print(sorted(m for m in ('gymnasium', 'open3d', 'torch', 'stable_baselines3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120).stdout.strip()
    assert out == "[]"
