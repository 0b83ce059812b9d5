"""The training log's episode window reads the task's info["metrics"], and resumes checkpoints from before them."""

from __future__ import annotations

from policies.runner import EpisodeStats


def test_columns_come_from_the_metrics_the_env_reports():
    stats = EpisodeStats(4)
    stats.add(10.0, 100, {"metrics": {"success": 1.0, "fell": 0.0, "distance_m": 16.0}})
    stats.add(-90.0, 40, {"metrics": {"success": 0.0, "fell": 1.0, "distance_m": 2.0}})
    row = stats.row()
    assert row["success_rate"] == 0.5 and row["fall_rate"] == 0.5 and row["distance_m"] == 9.0
    assert "success 50%" in stats.line() and "distance_m 9.00" in stats.line()
    other = EpisodeStats(4)
    other.add(1.0, 5, {"metrics": {"success": 1.0, "out_of_range": 0.0}})  # any task's keys, unknown here
    assert other.row()["out_of_range"] == 0.0 and "fall_rate" not in other.row()
    other.add(1.0, 5, {"is_success": True})  # a Gymnasium env without metrics: its is_success
    assert other.row()["success_rate"] == 1.0


def test_a_checkpoint_from_before_the_metrics_resumes():
    old = {"episodes": 3, "return": [1.0, 2.0], "length": [10, 20], "distance_m": [3.0, 5.0], "fell": [1.0, 0.0],
           "is_success": [0.0, 1.0]}  # fmt: skip
    stats = EpisodeStats(20)
    stats.load_state_dict(old)
    assert stats.row()["success_rate"] == 0.5 and stats.row()["fall_rate"] == 0.5 and stats.episodes == 3
    stats.add(0.0, 1, {"metrics": {"success": 1.0, "fell": 0.0, "distance_m": 15.0}})
    assert stats.row()["distance_m"] == 23.0 / 3
