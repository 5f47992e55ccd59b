import json

import numpy as np
import pytest
from conftest import ESFT, need_shared

from xnet_gym.activation import ActivationTrace, clustered_trace, load_esft, load_trace_npz, save_trace_npz, zipf_trace


def test_esft_intent_shape_and_summary():
    folder = need_shared(ESFT / "intent")
    trace = load_esft(folder)
    assert trace.experts.shape == (26, 8222, 6)
    assert trace.weights.shape == (26, 8222, 6)
    summary = json.loads((folder / "summary.json").read_text())["token_scores"]
    ref = np.array([[summary[str(layer)][str(e)] for e in range(64)] for layer in range(1, 27)])
    np.testing.assert_allclose(trace.probabilities() / 6, ref, atol=5e-5)


def test_zipf_probabilities_follow_the_law():
    rng = np.random.default_rng(0)
    trace = zipf_trace(2, 8, 1, 40000, 1.0, rng)
    p = np.sort(trace.probabilities()[0])[::-1]
    w = 1 / np.arange(1, 9)
    np.testing.assert_allclose(p, w / w.sum(), atol=0.01)   # top-1: exactly the softmax
    assert trace.probabilities().sum(axis=1) == pytest.approx([1.0, 1.0])


def test_topk_sets_are_distinct_and_probabilities_sum_to_k():
    trace = zipf_trace(3, 16, 4, 500, 1.2, np.random.default_rng(1))
    srt = np.sort(trace.experts, axis=2)
    assert np.all(srt[:, :, 1:] != srt[:, :, :-1])
    np.testing.assert_allclose(trace.probabilities().sum(axis=1), 4.0)


def test_clustered_strength_raises_coactivation():
    def top_pair_lift(strength):
        t = clustered_trace(1, 64, 2, 40000, 0.0, 8, strength, np.random.default_rng(2))
        p = t.probabilities()[0]
        cond = t.coactivation(0)                 # P(f | e)
        lift = cond / p[None, :]
        np.fill_diagonal(lift, 0)
        return lift.max()

    # Lift of the most co-activated pair over independence, P(e, f) / (P(e) P(f)).
    assert top_pair_lift(0.0) < 1.5
    assert top_pair_lift(4.0) > 3.0


def test_npz_roundtrip(tmp_path):
    trace = zipf_trace(2, 8, 2, 30, 1.0, np.random.default_rng(0))
    w = np.random.default_rng(1).random(trace.experts.shape)
    t = ActivationTrace(trace.experts, 8, w)
    save_trace_npz(t, tmp_path / "t.npz")
    back = load_trace_npz(tmp_path / "t.npz", 8)
    np.testing.assert_array_equal(back.experts, t.experts)
    np.testing.assert_allclose(back.weights, w, atol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]
