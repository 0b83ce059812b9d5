"""The bundle manifest records the final ADR ranges and the success rate at each bound ADR decided on."""

from __future__ import annotations

from deploy.manifest import adr_summary
from domain_rand.adr import ADR, default_adr_config
from sim.params import ParamSpace, PhysParam

SPACE = ParamSpace("biped", (PhysParam("ground_friction", "1", 1.0, 0.05, 2.0, "friction"),
                             PhysParam("action_latency", "s", 0.0, 0.0, 0.1, "latency")))  # fmt: skip


def test_adr_summary_has_ranges_and_success_at_bounds():
    cfg = default_adr_config("biped")
    from dataclasses import replace

    from domain_rand.adr import ADRParam

    adr = ADR(SPACE, replace(cfg, params=(ADRParam("ground_friction", 0.05), ADRParam("action_latency", 0.004))))
    for _ in range(cfg.buffer_size):  # 100 % success at the high latency bound: it widens
        adr.update("action_latency", "high", 1.0)
    for k in range(cfg.buffer_size):  # 30 % at the low friction bound: it holds at nominal (cannot narrow)
        adr.update("ground_friction", "low", float(k < 3))
    summary = adr_summary(adr.state_dict())
    assert summary is not None and summary["performance"] == "success" and summary["thresholds"] == [0.5, 0.8]
    assert summary["ranges"]["action_latency"] == [0.0, 0.004]
    assert summary["at_bounds"]["action_latency"]["high"] == {"value": 0.0, "performance": 1.0, "episodes": 10}
    assert summary["at_bounds"]["ground_friction"]["low"]["performance"] == 0.3
    assert adr_summary({"kind": "fixed", "ranges": {}}) is None and adr_summary(None) is None
