"""Process replay: every stage re-run on the committed log gives its committed reference outputs; a changed stage
is caught, named by stage, frame and field; ``--update`` rewrites the references."""

from __future__ import annotations

import json

import pytest

from av_stack.logs import regression
from av_stack.logs.regression import DATA_DIR, LOG_NAME, STAGES, check, compare, main, replay_stage, update


def test_the_committed_log_is_small():
    assert (DATA_DIR / LOG_NAME).stat().st_size < 1_000_000


def test_every_stage_matches_its_reference():
    differences = check()
    assert set(differences) == set(STAGES)
    assert differences == {stage: [] for stage in STAGES}, differences


def test_the_references_hold_real_outputs():
    docs = {stage: json.loads(regression.reference_path(stage).read_text()) for stage in STAGES}
    assert all(len(doc["frames"]) == 80 for doc in docs.values())
    assert [doc["section"]["name"] for doc in docs.values()] == ["oracle", "oracle", "expert", "stanley"]
    assert sum(len(f["detections"]["kind"]) for f in docs["perception"]["frames"]) > 300
    assert sum(f["bev_sum"] is not None for f in docs["perception"]["frames"]) == 20
    assert all(len(f["trajectory_xy"]) > 10 for f in docs["planning"]["frames"])
    assert any(f["control"] and f["control"]["throttle"] > 0.5 for f in docs["control"]["frames"])


def test_a_changed_stage_is_caught_with_the_frame_and_field():
    expected = json.loads(regression.reference_path("control").read_text())
    actual = replay_stage("control", section={"name": "stanley", "gain": 2.5})
    differences = compare(expected["frames"], actual["frames"])
    assert differences and all(".control." in d for d in differences)
    assert any(".steer" in d for d in differences)
    assert compare({"a": [1.0, 2.0]}, {"a": [1.0 + 1e-9, 2.0]}) == []
    assert compare({"a": [1.0, "RED"]}, {"a": [1.0001, "GREEN"]}) == [".a[0]: 1.0 != 1.0001",
                                                                      ".a[1]: 'RED' != 'GREEN'"]


def test_update_rewrites_the_references_and_the_command_checks_them(tmp_path, capsys):
    folder = tmp_path / "reference"
    written = update(references=folder, stages=("localization", "control"))
    assert [p.name for p in written] == ["localization.json", "control.json"]
    assert main(["--references", str(folder), "--stage", "localization", "--stage", "control"]) == 0
    doc = json.loads((folder / "localization.json").read_text())
    doc["frames"][7]["pose"]["x_m"] += 0.01
    (folder / "localization.json").write_text(json.dumps(doc))
    assert main(["--references", str(folder), "--stage", "localization"]) == 1
    out = capsys.readouterr().out
    assert "localization: 1 differences from its reference" in out
    assert f"frame {doc['frames'][7]['frame']} [7].pose.x_m" in out
    assert "--update" in out
    assert main(["--references", str(tmp_path / "none"), "--stage", "planning"]) == 1
    assert "no reference file planning.json (make it with --update)" in capsys.readouterr().out


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage 'steering'"):
        replay_stage("steering")
