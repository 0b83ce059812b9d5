"""ADR (OpenAI Algorithm 1) on a small hand-made parameter space."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from domain_rand.adr import ADR, WIDTH_FLOOR, ADRConfig, ADRParam, adr_config_from_dict, load_adr_config
from sim.params import ParamSpace, PhysParam

SPACE = ParamSpace(
    "toy",
    (
        PhysParam("friction", "1", 1.0, 0.2, 1.5, "ground friction"),
        PhysParam("mass_scale", "x", 1.0, 0.5, 2.0, "mass scale", log_scale=True),
        PhysParam("latency", "s", 0.0, 0.0, 0.05, "latency"),
    ),
)


def make_adr(seed: int = 0, **kw) -> ADR:
    params = kw.pop(
        "params",
        (ADRParam("friction", 0.1), ADRParam("mass_scale", 0.25, init=(0.9, 1.1)), ADRParam("latency", 0.01)),
    )
    cfg = dict(t_low=1.0, t_high=5.0, buffer_size=3, p_boundary=0.5, performance="return") | kw
    return ADR(SPACE, ADRConfig(params=params, **cfg), seed=seed)


def feed(adr: ADR, param: str, bound: str, performance: float, n: int) -> None:
    for _ in range(n):
        adr.update(param, bound, performance)


def test_ranges_start_at_nominal_or_declared_initial_range():
    adr = make_adr()
    assert adr.ranges == {"friction": [1.0, 1.0], "mass_scale": [0.9, 1.1], "latency": [0.0, 0.0]}


def test_high_performance_widens_only_the_evaluated_bound_after_m_results():
    adr = make_adr()
    feed(adr, "friction", "high", 5.0, 2)  # t_H reached, but the buffer is not full yet
    assert adr.ranges["friction"] == [1.0, 1.0]
    adr.update("friction", "high", 6.0)
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.1])
    feed(adr, "friction", "low", 9.0, 3)
    assert adr.ranges["friction"] == pytest.approx([0.9, 1.1])
    assert adr.buffers["friction"] == {"low": [], "high": []}  # cleared after each decision


def test_low_performance_narrows_and_middling_performance_holds():
    adr = make_adr()
    feed(adr, "friction", "high", 10.0, 9)  # three widenings → [1.0, 1.3]
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.3])
    feed(adr, "friction", "high", 1.0, 3)  # mean == t_L: narrows (≤)
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.2])
    feed(adr, "friction", "high", 3.0, 3)  # between thresholds: hold, buffer still cleared
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.2])
    assert adr.buffers["friction"]["high"] == []
    feed(adr, "friction", "high", 0.0, 1)
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.2])


def test_decision_uses_the_buffer_mean_not_the_last_result():
    adr = make_adr()
    for p in (0.0, 0.0, 15.0):  # mean 5.0 = t_H although two episodes failed
        adr.update("latency", "high", p)
    assert adr.ranges["latency"] == pytest.approx([0.0, 0.01])


def test_ranges_never_leave_the_hard_limits():
    adr = make_adr()
    feed(adr, "friction", "low", 10.0, 3 * 20)
    feed(adr, "friction", "high", 10.0, 3 * 20)
    feed(adr, "latency", "low", 10.0, 3 * 5)  # nominal sits at the hard low limit already
    assert adr.ranges["friction"] == [0.2, 1.5]
    assert adr.ranges["latency"][0] == 0.0


def test_ranges_never_shrink_inside_the_initial_range():
    adr = make_adr()
    feed(adr, "mass_scale", "low", 0.0, 3 * 4)
    feed(adr, "mass_scale", "high", 0.0, 3 * 4)
    assert adr.ranges["mass_scale"] == [0.9, 1.1]
    feed(adr, "mass_scale", "high", 10.0, 3 * 2)  # widen twice → 1.6, then narrow 5 times → floor 1.1
    feed(adr, "mass_scale", "high", 0.0, 3 * 5)
    assert adr.ranges["mass_scale"] == pytest.approx([0.9, 1.1])


def test_boundary_sampling_probability_and_pinned_values():
    adr = make_adr(seed=3)
    feed(adr, "friction", "low", 10.0, 3)
    feed(adr, "friction", "high", 10.0, 6)  # friction ∈ [0.9, 1.2]
    n = 6000
    counts: dict[object, int] = {}
    for _ in range(n):
        params, tag = adr.sample()
        key = tag[:2] if tag else None
        counts[key] = counts.get(key, 0) + 1
        for name, (lo, hi) in adr.ranges.items():
            assert lo <= params[name] <= hi
        if tag is not None:
            name, bound, value = tag
            assert value == params[name]
            assert params[name] == adr.ranges[name][0 if bound == "low" else 1]
    sigma = math.sqrt(0.25 / n)
    assert abs(counts[None] / n - 0.5) < 5 * sigma
    pinned = [counts.get((name, b), 0) / n for name in adr.names for b in ("low", "high")]
    assert len(pinned) == 6 and all(abs(f - 0.5 / 6) < 0.025 for f in pinned)


@pytest.mark.parametrize("p_b,expect_pinned", [(0.0, False), (1.0, True)])
def test_boundary_probability_extremes(p_b, expect_pinned):
    adr = make_adr(p_boundary=p_b)
    assert all((adr.sample()[1] is not None) == expect_pinned for _ in range(200))


def test_nominal_episodes_at_their_rate_and_never_credited_to_a_bound():
    """p_nominal: that share of episodes runs every ADR parameter at nominal (the ideal corner), with no tag;
    off (0), the sample stream is the paper's, draw for draw."""
    adr = make_adr(seed=5, p_nominal=0.25)
    feed(adr, "friction", "low", 10.0, 3)  # friction ∈ [0.9, 1.0]: nominal draws are exact, not in-range luck
    nominal = {name: SPACE[name].nominal for name in adr.names}
    n, hits = 4000, 0
    for _ in range(n):
        params, tag = adr.sample()
        if params == nominal:
            hits += 1
            assert tag is None
    assert abs(hits / n - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    off, plain = make_adr(seed=5, p_nominal=0.0), make_adr(seed=5)
    assert all(off.sample() == plain.sample() for _ in range(50))
    assert adr_config_from_dict({"p_nominal": 0.1, "t_low": 0, "t_high": 1,
                                 "params": {"friction": {"delta": 0.1}}}).p_nominal == 0.1  # fmt: skip


def test_corner_episodes_pin_several_bounds_at_their_rate_and_are_never_credited():
    """p_corner: that share of episodes puts corner_size adaptive parameters at one of their current bounds each
    (the adapt-false one never), with no tag; off (0), the sample stream is the paper's, draw for draw."""
    params = (ADRParam("friction", 0.1, init=(0.6, 1.2)), ADRParam("mass_scale", 0.25, init=(0.8, 1.5)),
              ADRParam("latency", 0.0, init=(0.0, 0.04), adapt=False))  # fmt: skip
    adr = make_adr(seed=7, params=params, p_corner=0.3, corner_size=2, p_boundary=0.0)
    bounds = {n: set(r) for n, r in adr.ranges.items()}
    n, corners, sides = 4000, 0, set()
    for _ in range(n):
        sample, tag = adr.sample()
        assert tag is None
        at_bound = [k for k in ("friction", "mass_scale") if sample[k] in bounds[k]]
        assert sample["latency"] not in bounds["latency"]  # plain DR: drawn in range, never pinned
        if len(at_bound) == 2:
            corners += 1
            sides.add((sample["friction"], sample["mass_scale"]))
    assert abs(corners / n - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)
    assert len(sides) == 4  # every vertex of the two ranges is drawn
    off, plain = make_adr(seed=5, p_corner=0.0), make_adr(seed=5)
    assert all(off.sample() == plain.sample() for _ in range(50))
    cfg = adr_config_from_dict({"p_corner": 0.2, "corner_size": 3, "t_low": 0, "t_high": 1,
                                "params": {"friction": {"delta": 0.1}}})  # fmt: skip
    assert (cfg.p_corner, cfg.corner_size) == (0.2, 3)


def test_fixed_parameters_are_plain_dr_and_leave_every_boundary_to_the_adaptive_ones():
    """"adapt": false: drawn in the initial range each episode, never pinned, never moved."""
    params = (ADRParam("friction", 0.1), ADRParam("mass_scale", 0.0, init=(0.8, 1.2), adapt=False),
              ADRParam("latency", 0.0, init=(0.0, 0.02), adapt=False))  # fmt: skip
    adr = make_adr(seed=3, params=params, p_boundary=1.0)
    draws = [adr.sample() for _ in range(400)]
    assert all(tag is not None and tag[0] == "friction" for _, tag in draws)
    lat = np.array([p["latency"] for p, _ in draws])
    assert lat.min() >= 0.0 and lat.max() <= 0.02 and lat.std() > 0.004  # spread over the range, not pinned
    with pytest.raises(ValueError, match="no bound"):
        adr.update("latency", "high", 10.0)
    cfg = adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {
        "friction": {"delta": 0.1}, "latency": {"init": [0.0, 0.02], "adapt": False}}})  # fmt: skip
    assert cfg.params[1] == ADRParam("latency", 0.0, (0.0, 0.02), adapt=False)
    with pytest.raises(ValueError, match="needs an"):
        adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"latency": {"adapt": False}}})
    with pytest.raises(ValueError, match="adapt must be true or false"):
        adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"latency": {"delta": 0.1, "adapt": "no"}}})
    only_fixed = make_adr(params=params[1:], p_boundary=1.0)
    assert all(only_fixed.sample()[1] is None for _ in range(20))


def test_scale_factors_are_sampled_log_uniformly():
    adr = make_adr(p_boundary=0.0)
    adr.ranges["mass_scale"] = [0.5, 2.0]
    draws = np.array([adr.sample()[0]["mass_scale"] for _ in range(4000)])
    # log-uniform on [0.5, 2]: median = geometric mean 1.0 (uniform would give 1.25)
    assert abs(np.median(draws) - 1.0) < 0.05
    assert draws.min() >= 0.5 and draws.max() <= 2.0


def test_entropy_is_mean_log_width_in_nats_per_dimension():
    adr = make_adr()
    adr.ranges = {"friction": [0.5, 1.5], "mass_scale": [0.9, 1.1], "latency": [0.0, 0.0]}
    expected = (math.log(1.0) + math.log(0.2) + math.log(WIDTH_FLOOR)) / 3
    assert adr.entropy_npd() == pytest.approx(expected)
    s = adr.scalars()
    assert s["adr/npd"] == pytest.approx(expected)
    assert s["adr/friction/low"] == 0.5 and s["adr/friction/high"] == 1.5
    assert set(s) == {"adr/npd"} | {f"adr/{n}/{b}" for n in adr.names for b in ("low", "high")}


def _run(adr: ADR, episodes: int, rng: np.random.Generator) -> list:
    """Sample/report like a training loop whose performance depends on the sampled physics."""
    trace = []
    for _ in range(episodes):
        params, tag = adr.sample()
        perf = 8.0 - 6.0 * abs(params["friction"] - 1.0) + rng.normal()
        adr.report(tag, perf)
        trace.append((params, tag))
    return trace


def test_seeded_determinism():
    a, b = make_adr(seed=7), make_adr(seed=7)
    ta, tb = _run(a, 300, np.random.default_rng(0)), _run(b, 300, np.random.default_rng(0))
    assert ta == tb and a.ranges == b.ranges
    assert a.ranges["friction"] != [1.0, 1.0]  # the run actually moved a bound
    assert _run(make_adr(seed=8), 300, np.random.default_rng(0)) != ta


def test_state_round_trip_through_a_checkpoint_resumes_exactly(tmp_path):
    adr = make_adr(seed=1)
    _run(adr, 157, np.random.default_rng(1))
    assert any(buf for bufs in adr.buffers.values() for buf in bufs.values())  # partial buffers are state too
    path = tmp_path / "ckpt.pt"
    torch.save({"param_source": adr.state_dict()}, path)
    state = torch.load(path, weights_only=True)["param_source"]
    json.dumps(state)  # plain types only
    resumed = make_adr(seed=99)  # the seed must not matter after loading
    resumed.load_state_dict(state)
    assert resumed.ranges == adr.ranges and resumed.buffers == adr.buffers
    assert _run(resumed, 200, np.random.default_rng(5)) == _run(adr, 200, np.random.default_rng(5))
    assert resumed.state_dict() == adr.state_dict()


def test_loading_state_of_a_different_parameter_set_is_refused():
    state = make_adr().state_dict()
    other = make_adr(params=(ADRParam("friction", 0.1),))
    with pytest.raises(ValueError, match="same --adr-config"):
        other.load_state_dict(state)


def test_report_routes_by_tag_and_ignores_unpinned_episodes():
    adr = make_adr()
    adr.report(None, 100.0)
    adr.report(("latency", "high", 0.0), 100.0)
    assert adr.buffers["latency"]["high"] == [100.0]
    assert all(
        not b for n, bufs in adr.buffers.items() for k, b in bufs.items() if (n, k) != ("latency", "high")
    )
    with pytest.raises(ValueError, match="no bound"):
        adr.report(("nope", "high", 1.0), 1.0)
    with pytest.raises(ValueError, match="not finite"):
        adr.report(("latency", "low", 0.0), float("nan"))


def test_vector_envs_results_of_a_moved_bound_are_dropped_not_credited():
    """Eight workers sample before any reports: the first m results move the bound, the rest are stale."""
    adr = make_adr(p_boundary=1.0, params=(ADRParam("friction", 0.1),))
    in_flight = [adr.sample()[1] for _ in range(8)]
    high = [t for t in in_flight if t[1] == "high"]
    assert len(high) >= 4 and all(t == ("friction", "high", 1.0) for t in high)
    for tag in high:
        adr.report(tag, 10.0)
    assert adr.ranges["friction"] == pytest.approx([1.0, 1.1])  # widened once, by the first m = 3 results
    assert adr.n_stale == len(high) - 3 and adr.buffers["friction"]["high"] == []
    params, tag = adr.sample()
    while tag[1] != "high":
        params, tag = adr.sample()
    assert tag == ("friction", "high", params["friction"]) and params["friction"] == pytest.approx(1.1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(params=(ADRParam("gravity", 0.1),)), "unknown parameter 'gravity'"),
        (dict(params=(ADRParam("friction", 0.1, init=(1.2, 0.8)),)), "inverted"),
        (dict(params=(ADRParam("friction", 0.1, init=(0.1, 1.0)),)), "hard limits"),
        (dict(t_low=5.0, t_high=1.0), "thresholds out of order"),
        (dict(t_low=2.0, t_high=2.0), "thresholds out of order"),
        (dict(buffer_size=0), "buffer_size"),
        (dict(p_boundary=1.5), "p_boundary"),
        (dict(p_nominal=1.0), "p_nominal"),
        (dict(p_nominal=0.5, p_corner=0.5), "p_corner"),
        (dict(corner_size=0), "corner_size"),
        (dict(params=(ADRParam("friction", 0.0),)), "delta must be > 0"),
        (dict(params=(ADRParam("friction", 0.1), ADRParam("friction", 0.2))), "twice"),
    ],
)
def test_bad_configs_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_adr(**kwargs)


def test_config_file_extends_a_base_file_and_refuses_a_cycle(tmp_path):
    """"base": a variant names the file it changes (relative to itself); its keys win, the rest are the base's."""
    defaults = ADRConfig(params=(ADRParam("friction", 0.1),), t_low=1.0, t_high=5.0, performance="return")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "main.json").write_text(json.dumps(
        {"t_high": 7, "p_boundary": 0.3, "params": {"latency": {"delta": 0.005, "init": [0.0, 0.01]}}}))  # fmt: skip
    variant = tmp_path / "recipes" / "variant.json"
    variant.write_text(json.dumps({"base": "main.json", "p_nominal": 0.25, "t_high": 6}))
    cfg = load_adr_config(str(variant), defaults)
    assert (cfg.t_low, cfg.t_high, cfg.p_boundary, cfg.p_nominal) == (1.0, 6.0, 0.3, 0.25)
    assert cfg.params == (ADRParam("latency", 0.005, (0.0, 0.01)),)
    # a variant's params change the base file's by name and add new ones; the rest stay the base's
    (tmp_path / "recipes" / "main.json").write_text(json.dumps({"t_high": 7, "params": {
        "latency": {"delta": 0.005, "init": [0.0, 0.01]}, "mass": {"delta": 0.1}}}))  # fmt: skip
    variant.write_text(json.dumps({"base": "main.json", "params": {
        "latency": {"delta": 0.002, "init": [0.0, 0.02]}, "noise": {"init": [0.0, 0.1], "adapt": False}}}))  # fmt: skip
    assert load_adr_config(str(variant), defaults).params == (
        ADRParam("latency", 0.002, (0.0, 0.02)), ADRParam("mass", 0.1), ADRParam("noise", 0.0, (0.0, 0.1), False))
    loop = tmp_path / "recipes" / "loop.json"
    loop.write_text(json.dumps({"base": "loop.json"}))
    with pytest.raises(ValueError, match="leads back to itself"):
        load_adr_config(str(loop), defaults)
    variant.write_text(json.dumps({"base": 3}))
    with pytest.raises(ValueError, match='"base" must be the path'):
        load_adr_config(str(variant), defaults)


def test_config_file_overrides_defaults_and_rejects_unknown_keys(tmp_path):
    base = ADRConfig(params=(ADRParam("friction", 0.1),), t_low=1.0, t_high=5.0, buffer_size=4, performance="return")
    path = tmp_path / "adr.json"
    path.write_text(json.dumps({"t_high": 7, "params": {"latency": {"delta": 0.005, "init": [0.0, 0.01]}}}))
    cfg = load_adr_config(str(path), base)
    assert (cfg.t_low, cfg.t_high, cfg.buffer_size) == (1.0, 7.0, 4)
    assert cfg.params == (ADRParam("latency", 0.005, (0.0, 0.01)),)
    with pytest.raises(ValueError, match="unknown keys"):
        adr_config_from_dict({"t_hgh": 3}, base)
    with pytest.raises(ValueError, match="delta"):
        adr_config_from_dict({"params": {"latency": {"step": 0.1}}}, base)
    with pytest.raises(ValueError, match="missing"):
        adr_config_from_dict({"t_low": 0, "t_high": 1})
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_adr_config(str(path), base)


def test_hard_corners_pin_each_parameter_at_its_worse_measured_bound():
    """corner_side "hard": a corner pins each parameter at the bound whose last decision measured the lower
    performance (an undecided bound counts as t_high); with nothing decided it is "random"'s draw, so the two share
    one sample stream until ADR has measured."""
    params = (ADRParam("friction", 0.1, init=(0.6, 1.2)), ADRParam("mass_scale", 0.25, init=(0.8, 1.5)))
    hard = make_adr(seed=7, params=params, p_corner=0.5, corner_size=2, p_boundary=0.0, corner_side="hard")
    rand = make_adr(seed=7, params=params, p_corner=0.5, corner_size=2, p_boundary=0.0)
    assert all(hard.sample() == rand.sample() for _ in range(50))
    for perf, bound in ((0.1, "low"), (0.9, "high")):  # friction: low fails; mass_scale: only high decided
        for _ in range(hard.config.buffer_size):
            hard.update("friction", bound, perf)
    for _ in range(hard.config.buffer_size):
        hard.update("mass_scale", "high", 0.5)  # below t_high: harder than its undecided low bound
    lows, highs = hard.ranges["friction"][0], hard.ranges["mass_scale"][1]
    corners = [s for s, _ in (hard.sample() for _ in range(400)) if s["friction"] == lows]
    assert corners and all(s["mass_scale"] == highs for s in corners)
    assert not any(s["friction"] == hard.ranges["friction"][1] for s, _ in (hard.sample() for _ in range(400)))
    with pytest.raises(ValueError, match="corner_side"):
        make_adr(corner_side="worst")
    cfg = adr_config_from_dict({"corner_side": "hard", "t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1}}})
    assert cfg.corner_side == "hard"


def test_uniform_corner_depth_puts_every_pinned_parameter_at_one_depth_toward_its_bound():
    """corner_depth "uniform": each corner episode draws one depth u in [0, 1] and puts every pinned parameter at
    nominal + u·(bound − nominal), so the corners walk the line from the nominal plant to the corner."""
    params = (ADRParam("friction", 0.1, init=(0.4, 1.2)), ADRParam("latency", 0.01, init=(0.0, 0.04)))
    adr = make_adr(seed=3, params=params, p_corner=0.5, corner_size=2, p_boundary=0.0, corner_depth="uniform",
                   corner_side="hard")
    feed(adr, "friction", "low", 0.5, 3)  # low friction and long latency measured hard (and held: initial range)
    feed(adr, "latency", "high", 0.5, 3)
    assert adr.ranges == {"friction": [0.4, 1.2], "latency": [0.0, 0.04]}
    depths = []
    for _ in range(2000):
        s, tag = adr.sample()
        assert tag is None
        u = (s["friction"] - 1.0) / (0.4 - 1.0)
        if abs(u - s["latency"] / 0.04) < 1e-9:  # a corner (a plain draw meets the line with probability 0)
            depths.append(u)
    assert abs(len(depths) / 2000 - 0.5) < 0.05
    assert min(depths) < 0.05 and max(depths) > 0.95 and abs(np.mean(depths) - 0.5) < 0.05
    deep = make_adr(seed=3, params=params, p_corner=0.999, corner_size=2, corner_depth="uniform",
                    corner_side="hard", corner_depth_low=0.6)
    feed(deep, "latency", "high", 0.5, 3)
    lat = np.array([deep.sample()[0]["latency"] for _ in range(400)])
    assert np.mean(lat >= 0.6 * 0.04 - 1e-12) > 0.99 and lat.min() < 0.7 * 0.04  # corners: u in [0.6, 1]
    with pytest.raises(ValueError, match="corner_depth_low"):
        make_adr(corner_depth_low=1.0)
    with pytest.raises(ValueError, match="corner_depth"):
        make_adr(corner_depth="deep")
    cfg = adr_config_from_dict({"corner_depth": "uniform", "t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1}}})
    assert cfg.corner_depth == "uniform"
    bound = make_adr(seed=3, params=params, p_corner=0.5, corner_size=2, p_boundary=0.0)
    corners = [s for s, _ in (bound.sample() for _ in range(200)) if s["latency"] in (0.0, 0.04)]
    assert corners and all(s["friction"] in (0.4, 1.2) for s in corners)


def test_corner_rest_nominal_holds_every_unpinned_parameter_at_nominal_in_corner_episodes_only():
    params = (ADRParam("friction", 0.1, init=(0.4, 1.2)), ADRParam("mass_scale", 0.25, init=(0.8, 1.5)),
              ADRParam("latency", 0.01, init=(0.0, 0.04)))  # fmt: skip
    adr = make_adr(seed=2, params=params, p_corner=0.5, corner_size=1, p_boundary=0.0, corner_rest="nominal")
    nominal = {"friction": 1.0, "mass_scale": 1.0, "latency": 0.0}
    samples = [adr.sample()[0] for _ in range(400)]
    bounds = {"friction": (0.4, 1.2), "mass_scale": (0.8, 1.5), "latency": (0.0, 0.04)}
    corners = [s for s in samples if sum(s[n] != nominal[n] for n in s) <= 1 and any(s[n] in bounds[n] for n in s)]
    assert abs(len(corners) / 400 - 0.5) < 0.1
    assert all(sum(s[n] == nominal[n] for n in s) >= 2 for s in corners)
    assert sum(all(s[n] != nominal[n] for n in s) for s in samples) > 100  # the other episodes: every one drawn
    with pytest.raises(ValueError, match="corner_rest"):
        make_adr(corner_rest="zero")


def test_declared_corner_sides_pin_their_bound_and_bring_fixed_parameters_into_corners():
    """A parameter's "corner": "low"|"high" is the bound every corner pins it at, whatever corner_side says and
    whatever ADR measured; with it, a parameter that does not adapt (plain DR) joins the corners too."""
    params = (ADRParam("friction", 0.1, init=(0.4, 1.2), corner="low"),
              ADRParam("mass_scale", 0.0, init=(0.8, 1.5), adapt=False, corner="high"),
              ADRParam("latency", 0.01, init=(0.0, 0.04)))  # fmt: skip
    adr = make_adr(seed=5, params=params, p_corner=0.5, corner_size=3, p_boundary=0.0, corner_side="hard")
    feed(adr, "friction", "high", 0.5, 3)  # measured: high friction is the harder bound; the declaration wins
    samples = [adr.sample()[0] for _ in range(400)]
    corners = [s for s in samples if s["mass_scale"] == 1.5]
    assert abs(len(corners) / 400 - 0.5) < 0.1
    assert all(s["friction"] == 0.4 and s["latency"] in (0.0, 0.04) for s in corners)
    assert not any(s["friction"] == 1.2 for s in samples)
    cfg = adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1, "corner": "low"}}})
    assert cfg.params[0].corner == "low"
    with pytest.raises(ValueError, match='corner must be "low", "high" or "either"'):
        adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1, "corner": "hard"}}})
    with pytest.raises(ValueError, match='optional "corner"'):
        adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1, "side": "low"}}})


def test_a_corner_declared_either_brings_a_fixed_parameter_into_corners_on_both_sides():
    """"either": a parameter with no hard side (a calibration offset) joins the corners at one bound or the other,
    ½ each, whatever corner_side says and whatever ADR measured."""
    params = (ADRParam("friction", 0.1, init=(0.4, 1.2), corner="low"),
              ADRParam("latency", 0.0, init=(0.0, 0.04), adapt=False, corner="either"))  # fmt: skip
    adr = make_adr(seed=6, params=params, p_corner=0.5, corner_size=2, p_boundary=0.0, corner_side="hard")
    samples = [adr.sample()[0] for _ in range(800)]
    corners = [s["latency"] for s in samples if s["friction"] == 0.4]
    assert abs(len(corners) / 800 - 0.5) < 0.1
    assert set(corners) == {0.0, 0.04} and abs(np.mean(np.array(corners) == 0.04) - 0.5) < 0.1
    cfg = adr_config_from_dict({"t_low": 0, "t_high": 1, "params": {"friction": {"delta": 0.1, "corner": "either"}}})
    assert cfg.params[0].corner == "either"
