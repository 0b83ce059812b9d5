"""Export of a policy with memory: explicit state inputs/outputs, initial state in the manifest, parity over whole
seeded episodes (state carried and reset at episode starts), the controller's state handling."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from deploy.bundle import Policy, load_bundle, self_test
from deploy.export import export_bundle, verify_bundle
from deploy.export_recurrent import RecurrentTorquePolicy, ort_stream, record_episodes, torch_stream
from deploy.runtime import policy_step
from policies.lstm_td3 import LSTMActor, LSTMTD3Config, RecurrentInferencePolicy
from sim.robots import get_robot

CFG = LSTMTD3Config(history_len=4, mem_hidden=32, cur_hidden=32, hidden=(64,))


def _policy(seed: int = 0) -> RecurrentInferencePolicy:
    spec = get_robot("biped")
    torch.manual_seed(seed)
    actor = LSTMActor(spec.obs_dim, spec.action.n, CFG)
    arch = {"kind": "lstm-td3", "obs_dim": spec.obs_dim, "act_dim": spec.action.n, "hidden": list(CFG.hidden),
            "activation": "relu", "history_len": 4, "mem_hidden": 32, "cur_hidden": 32}  # fmt: skip
    meta = {"env_id": "s2r/Biped-v0", "robot_id": "biped", "obs_dim": spec.obs_dim, "act_dim": spec.action.n,
            "actor_arch": arch, "config": {"algo": "lstm-td3"}}  # fmt: skip
    rng = np.random.default_rng(seed)
    return RecurrentInferencePolicy(actor, rng.normal(0, 0.1, spec.obs_dim), rng.uniform(0.5, 2, spec.obs_dim),
                                    10.0, 1e-8, meta).eval()  # fmt: skip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "bundle"
    policy = _policy()
    manifest = export_bundle(policy, out, n_random=500)
    return policy, out, manifest


def test_graph_has_explicit_state_and_initial_state_in_manifest(bundle):
    policy, out, manifest = bundle
    graph = onnx.load(str(out / "policy.onnx")).graph
    assert [i.name for i in graph.input] == ["obs", "hist_obs", "hist_act", "hist_len"]
    assert [o.name for o in graph.output] == ["torque_nm", "hist_obs_next", "hist_act_next", "hist_len_next"]
    state = manifest["model"]["state"]
    assert [(s["input"], s["output"], s["shape"]) for s in state] == [
        ("hist_obs", "hist_obs_next", ["batch", 4, 24]), ("hist_act", "hist_act_next", ["batch", 4, 4]),
        ("hist_len", "hist_len_next", ["batch"])]  # fmt: skip
    assert np.all(np.asarray(state[0]["initial"]) == 0) and state[2]["initial"] == 0.0
    assert manifest["parity"]["max_abs_diff"] <= 1e-5 and manifest["parity"]["episodes"] >= 2
    assert self_test(load_bundle(out)) <= 1e-5
    assert verify_bundle(policy, out, n_random=200)["max_abs_diff"] <= 1e-5


def test_parity_over_whole_seeded_episodes_and_the_state_matters(bundle):
    policy, out, _ = bundle
    obs, starts = record_episodes(policy, "s2r/Biped-v0", 300, seed=7)
    assert starts[0] and starts.sum() >= 2  # a random LSTM policy falls: several episodes, several resets
    model = RecurrentTorquePolicy(policy, get_robot("biped").action.limits_nm).eval()
    ref, got = torch_stream(model, obs, starts), ort_stream(Policy(load_bundle(out)), obs, starts)
    limits = get_robot("biped").action.limits_nm
    assert np.max(np.abs(ref - got) / limits) <= 1e-5
    memoryless = ort_stream(Policy(load_bundle(out)), obs, np.ones(len(obs), bool))  # state reset every step
    assert np.max(np.abs(memoryless - got)) > 1e-3  # the carried state changes the torques


def test_controller_state_is_reset_and_a_nonfinite_state_is_a_fault(bundle):
    _, out, _ = bundle
    policy = Policy(load_bundle(out))
    obs = load_bundle(out).sample_obs()
    first = policy(obs[0]).copy()
    policy(obs[1])
    assert policy.state_in[2][0] == 2.0 and policy.state_finite()
    policy.reset_state()
    assert np.array_equal(policy(obs[0]), first)  # back to the initial state: the same answer as the first step
    policy.state_in[0][0, 0, 3] = np.nan  # a corrupted state (a memory fault)
    _, ok = policy_step(policy, obs[1])
    assert not ok and policy.state_finite() and policy.state_in[2][0] == 0.0  # reset to the initial state
    _, ok = policy_step(policy, obs[0])
    assert ok


def test_export_holds_the_actor_and_nothing_more(bundle):
    """The graph's weights are the actor's (plus normalizer, limits and a few constants): no critic rode along."""
    policy, out, _ = bundle
    n_graph = sum(int(np.prod(t.dims)) for t in onnx.load(str(out / "policy.onnx")).graph.initializer)
    n_actor = sum(p.numel() for p in policy.actor.parameters())
    assert n_actor <= n_graph <= n_actor + 2 * 24 + 4 + 64
