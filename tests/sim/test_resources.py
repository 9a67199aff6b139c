"""Shipped configs are found relative to the package, from any current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import ConfigError
from sim.resources import SHIPPED_CONFIGS_DIR, locate_config, resolve_config, shipped_config, shipped_configs
from sim.scenarios.routes import RouteError, load_route_file
from sim.sensors.suite import SHIPPED_SUITES_DIR, load_suite, shipped_suite_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """A current directory outside the checkout, with no configs/ folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_shipped_configs_are_the_repository_configs() -> None:
    repo = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert shipped_configs() == repo and "env/leaderboard_town01.yaml" in repo
    for name in repo:
        assert shipped_config(name).read_bytes() == (ROOT / "configs" / name).read_bytes()
    assert shipped_configs("routes") == ["routes/town01.yaml", "routes/town02.yaml", "routes/town10hd.yaml"]
    assert SHIPPED_SUITES_DIR == SHIPPED_CONFIGS_DIR / "sensors"


def test_shipped_names_with_or_without_prefix_suffix_and_kind(elsewhere) -> None:
    expected = SHIPPED_CONFIGS_DIR / "env" / "default.yaml"
    for name in ("env/default.yaml", "configs/env/default.yaml", "env/default"):
        assert shipped_config(name) == expected
        assert resolve_config(name) == expected
    assert shipped_config("default", kind="env") == expected
    assert resolve_config("default.yaml", kind="env") == expected
    assert resolve_config("default", kind="world") == SHIPPED_CONFIGS_DIR / "world" / "default.yaml"


def test_an_existing_path_wins_over_a_shipped_name(elsewhere) -> None:
    local = elsewhere / "configs" / "env" / "default.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("map: Town02\n")
    assert resolve_config("configs/env/default.yaml") == Path("configs/env/default.yaml")
    assert locate_config("configs/env/default.yaml") == Path("configs/env/default.yaml")


def test_missing_config_names_it_and_lists_the_choices(elsewhere) -> None:
    with pytest.raises(ConfigError, match="no_such.yaml does not exist") as info:
        resolve_config("configs/env/no_such.yaml", kind="env")
    assert "env/default.yaml" in str(info.value) and "routes/" not in str(info.value)
    with pytest.raises(ConfigError, match="no shipped config 'nope'.*sensors/default.yaml"):
        shipped_config("nope")
    assert locate_config("configs/env/no_such.yaml") == Path("configs/env/no_such.yaml")


@pytest.mark.parametrize("name", ["../configs/env/default.yaml", "env/../../pyproject.toml", "/configs/env/default.yaml"])
def test_paths_outside_the_shipped_folder_are_not_looked_up(elsewhere, name: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(name)


def test_loaders_accept_shipped_paths_from_any_directory(elsewhere) -> None:
    routes = load_route_file("configs/routes/town01.yaml")
    assert routes.town == "Town01" and routes.routes
    names = [spec.name for spec in load_suite("configs/sensors/default.yaml").sensors]
    assert names and names == [spec.name for spec in load_suite(shipped_suite_path("default")).sensors]
    with pytest.raises(RouteError, match="nope.yaml does not exist"):
        load_route_file("configs/routes/nope.yaml")


def test_load_model_config_takes_a_file_a_dict_or_defaults_with_one_clear_error(tmp_path):
    from pydantic import BaseModel, ConfigDict

    from sim.resources import load_model_config

    class Small(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 3

    assert load_model_config(None, Small, "perception", "small config").size == 3
    assert load_model_config({"size": 5}, Small, "perception", "small config").size == 5
    (tmp_path / "s.yaml").write_text("size: 7\n")
    assert load_model_config(str(tmp_path / "s.yaml"), Small, "perception", "small config").size == 7
    (tmp_path / "bad.yaml").write_text("sise: 7\n")
    with pytest.raises(ConfigError, match="(?s)bad.yaml: .*sise"):
        load_model_config(str(tmp_path / "bad.yaml"), Small, "perception", "small config")
    with pytest.raises(ConfigError, match="missing.yaml does not exist and is not a shipped config name"):
        load_model_config(str(tmp_path / "missing.yaml"), Small, "perception", "small config")
