"""softmax, log_softmax, logsumexp against scipy.special and the naive loops."""

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax as fs

from conftest import assert_close, rtol_for
from naive import logsumexp_row, softmax_row

OPS = {
    "softmax": (fs.softmax, sp.softmax),
    "log_softmax": (fs.log_softmax, sp.log_softmax),
    "logsumexp": (fs.logsumexp, sp.logsumexp),
}


def _scipy(op, S, axis):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return OPS[op][1](np.asarray(S, dtype=np.float64), axis=axis)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("shape,axis", [((7, 5), -1), ((7, 5), 0), ((4,), 0),
                                        ((3, 4, 5), 1), ((1, 1), -1)])
def test_matches_scipy_random(backend, dtype, op, shape, axis):
    S = (5 * np.random.default_rng(1).standard_normal(shape)).astype(dtype)
    out = OPS[op][0](S, axis, backend=backend)
    assert fs.to_numpy(out).dtype == dtype
    assert_close(out, _scipy(op, S, axis), dtype)


EXTREME = {
    "float64": [[1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4 - 1.0], [1e300, -1e300, 1e300],
                [-1e300, -1e300, -1e300], [1e308, 1e308, 0.0]],
    "float32": [[1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4 - 1.0], [1e38, -1e38, 1e38],
                [-3e38, -3e38, -3e38], [3e38, 3e38, 0.0]],
}


@pytest.mark.parametrize("op", list(OPS))
def test_extreme_finite_scores_stay_finite_and_match_scipy(backend, dtype, op):
    S = np.array(EXTREME[dtype.name], dtype=dtype)
    out = fs.to_numpy(OPS[op][0](S, backend=backend))
    expected = _scipy(op, S, -1)
    assert np.all(np.isfinite(out))
    # Compare in float64 at the scale of each row's largest entry.
    rtol = rtol_for(dtype)
    for row_out, row_exp, row_in in zip(np.atleast_1d(out), np.atleast_1d(expected), S):
        np.testing.assert_allclose(row_out, row_exp, rtol=rtol,
                                   atol=rtol * max(1.0, float(np.max(np.abs(row_in)))))


def test_softmax_of_huge_equal_scores_is_uniform(backend, dtype):
    big = 1e300 if dtype == np.float64 else 1e38
    out = fs.to_numpy(fs.softmax(np.full((2, 4), big, dtype=dtype), backend=backend))
    np.testing.assert_array_equal(out, np.full((2, 4), 0.25, dtype=dtype))


@pytest.mark.parametrize("op", list(OPS))
def test_masked_entries_match_scipy(backend, dtype, op):
    inf = np.inf
    S = np.array([[0.0, -inf, 1.0], [-inf, -inf, 3.0], [-inf, -inf, -inf],
                  [2.0, 2.0, -inf]], dtype=dtype)
    out = fs.to_numpy(OPS[op][0](S, backend=backend))
    expected = _scipy(op, S, -1)
    # Same NaN pattern, same infinities, finite values within tolerance.
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    assert_close(out, expected, dtype)


def test_fully_masked_row_semantics(backend):
    S = np.full((1, 3), -np.inf)
    assert np.isnan(fs.to_numpy(fs.softmax(S, backend=backend))).all()
    assert np.isnan(fs.to_numpy(fs.log_softmax(S, backend=backend))).all()
    assert fs.to_numpy(fs.logsumexp(S, backend=backend))[0] == -np.inf


def test_naive_loop_reference(backend):
    S = np.random.default_rng(3).standard_normal((6, 4)) * 10
    assert_close(fs.softmax(S, backend=backend), [softmax_row(r) for r in S], np.float64)
    assert_close(fs.logsumexp(S, backend=backend), [logsumexp_row(r) for r in S],
                 np.float64)


def test_rows_sum_to_one_and_log_softmax_is_log_of_softmax(backend, dtype):
    S = (20 * np.random.default_rng(4).standard_normal((50, 9))).astype(dtype)
    P = fs.to_numpy(fs.softmax(S, backend=backend))
    assert_close(P.sum(axis=1), np.ones(50), dtype)
    L = fs.to_numpy(fs.log_softmax(S, backend=backend))
    assert_close(np.exp(L.astype(np.float64)), P, dtype, scale=1.0)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_shapes_and_dtypes(data):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    S = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-50, 50, width=32)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    for name, (ours, _) in OPS.items():
        out = ours(S, axis, backend="numpy")
        assert out.dtype == dtype
        assert_close(out, _scipy(name, S, axis), dtype, scale=50.0)
