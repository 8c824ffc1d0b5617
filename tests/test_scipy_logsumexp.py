"""SciPy's own test cases for logsumexp, softmax and log_softmax, on every backend.

Ported from scipy/special/tests/test_logsumexp.py (TestLogSumExp, TestSoftmax)
and scipy/special/tests/test_log_softmax.py: the same inputs and expected
values, translated to this API. Where SciPy relies on its default
``axis=None`` we pass ``axis=None`` (our default is ``-1``, one distribution per
row of ``(N, K)`` scores); for 1-d input the two are the same.

Skipped, and why:

* every case with ``b=`` (scale factors) or ``return_sign=`` (test_logsumexp_b,
  _sign, _sign_zero, _sign_shape, _b_zero, _b_shape, test_dtypes_ab): this API
  has no ``b`` nor ``return_sign``;
* complex input (test_logsumexp_complex_sign, gh-21610, gh-21709, the complex
  dtypes of test_dtypes_a): fastsoftmax is real-valued; complex input is a
  ``TypeError`` naming ``S``, checked below instead;
* ``keepdims=True``: not in this API;
* zero-size input (SciPy: ``logsumexp([]) = -inf``): fastsoftmax raises
  ``ValueError("S has no entries ...")`` by design (an empty row of scores is
  a bug upstream, not a distribution); checked below instead;
* ``_wrap_radians``: a SciPy-internal helper for complex results.
"""

import math

import numpy as np
import pytest

import fastsoftmax as fs

from conftest import rtol_for


def lse(S, axis=-1, *, backend):
    return np.asarray(fs.to_numpy(fs.logsumexp(S, axis, backend=backend)))


def close(actual, desired, rtol=None, dtype=np.float64):
    actual = np.asarray(fs.to_numpy(actual))
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    np.testing.assert_allclose(actual.astype(np.float64), desired.astype(np.float64),
                               rtol=rtol_for(dtype) if rtol is None else rtol, atol=0)


# -- TestLogSumExp.test_logsumexp ----------------------------------------------------
def test_logsumexp_large_inputs(backend):
    a = np.arange(200.0)
    close(lse(a, backend=backend), np.log(np.sum(np.exp(a))))
    close(lse(np.array([1000.0, 1000.0]), backend=backend), 1000.0 + math.log(2.0))
    close(lse(np.full((1000,), 10000), backend=backend), 10000.0 + math.log(1000))


def test_logsumexp_tiny_terms_over_axes(backend):
    x = np.full(1_000_000, 1e-40)
    logx = np.log(x)
    X, logX = np.stack([x, x]), np.stack([logx, logx])
    close(np.exp(lse(logX, None, backend=backend)), np.sum(X))
    close(np.exp(lse(logX, 0, backend=backend)), np.sum(X, axis=0))
    close(np.exp(lse(logX, 1, backend=backend)), np.sum(X, axis=1))


def test_logsumexp_special_values(backend):
    inf, nan = np.array([np.inf]), np.array([np.nan])
    assert lse(inf, backend=backend) == np.inf
    assert lse(-inf, backend=backend) == -np.inf
    assert np.isnan(lse(nan, backend=backend))
    assert lse(np.array([-np.inf, -np.inf]), backend=backend) == -np.inf


def test_logsumexp_different_magnitudes_and_multiple_axes(backend):
    a = np.array([[1e10, 1e-10], [-1e10, -np.inf]])
    close(lse(a, -1, backend=backend), np.array([1e10, -1e10]))
    close(lse(a, (-1, -2), backend=backend), np.array(1e10))


# -- test_logsumexp_shape (without b), test_xp_invalid_input, test_list ---------------
def test_logsumexp_shape(backend):
    a = np.ones((1, 2, 3, 4))
    assert lse(a, 2, backend=backend).shape == (1, 2, 4)
    assert lse(a, (1, 3), backend=backend).shape == (1, 3)


@pytest.mark.parametrize("arg", [1, [1, 2, 3]])
def test_scalar_and_list_input(backend, arg):
    assert lse(arg, backend=backend) == lse(np.atleast_1d(np.asarray(arg)), backend=backend)


def test_list(backend):
    close(lse([1000, 1000], backend=backend), 1000.0 + math.log(2.0))


# -- test_dtypes_a (real dtypes) -------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_dtypes_a(backend, dtype):
    out = fs.to_numpy(fs.logsumexp(np.array([1000.0, 1000.0], dtype=dtype), backend=backend))
    want = np.float64 if dtype.startswith("int") else np.dtype(dtype)
    assert np.asarray(out).dtype == want
    close(out, 1000.0 + math.log(2.0), dtype=want)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_is_a_type_error(backend, dtype):
    with pytest.raises(TypeError, match="S must be a real floating array"):
        fs.logsumexp(np.array([1 + 1j, 2 - 1j], dtype=dtype), backend=backend)


def test_zero_size_is_a_value_error(backend):
    with pytest.raises(ValueError, match="S has no entries"):
        fs.logsumexp(np.array([]), backend=backend)


# -- test_gh18295: full relative accuracy when one term dominates ----------------------
def test_gh18295(backend):
    a = np.array([0.0, -40.0])
    close(lse(a, backend=backend), np.logaddexp(a[0], a[1]))  # 4.248e-18, not 0


# -- TestSoftmax -------------------------------------------------------------------------
EXPECTED_ARANGE4 = np.array([0.03205860328008499, 0.08714431874203256,
                             0.23688281808991013, 0.6439142598879722])  # mpmath, dps=200


def test_softmax_fixtures(backend):
    def sm(x, axis=-1):
        return fs.softmax(x, axis, backend=backend)

    close(sm([1000, 0, 0, 0]), np.array([1, 0, 0, 0]), rtol=1e-13)
    close(sm([1, 1]), np.array([0.5, 0.5]), rtol=1e-13)
    close(sm([0, 1]), np.array([1, np.e]) / (1 + np.e), rtol=1e-13)
    x = np.arange(4)
    close(sm(x), EXPECTED_ARANGE4, rtol=1e-13)
    close(sm(x + 100), EXPECTED_ARANGE4, rtol=1e-13)  # translation invariance
    # axis=None (SciPy's default) works on the whole array and keeps the shape.
    close(sm(x.reshape(2, 2), None), EXPECTED_ARANGE4.reshape(2, 2), rtol=1e-13)


def test_softmax_multi_axes(backend):
    def sm(x, axis):
        return fs.softmax(x, axis, backend=backend)

    close(sm([[1000, 0], [1000, 0]], 0), np.array([[0.5, 0.5], [0.5, 0.5]]), rtol=1e-13)
    close(sm([[1000, 0], [1000, 0]], 1), np.array([[1, 0], [1, 0]]), rtol=1e-13)
    x = np.array([[-25, 0, 25, 50], [1, 325, 749, 750]])
    expected = np.array([[2.678636961770877e-33, 1.9287498479371314e-22,
                          1.3887943864771144e-11, 0.999999999986112],
                         [0.0, 1.9444526359919372e-185, 0.2689414213699951,
                          0.7310585786300048]])  # mpmath, dps=200
    close(sm(x, 1), expected, rtol=1e-13)
    close(sm(x.T, 0), expected.T, rtol=1e-13)
    close(sm(x.reshape(2, 2, 2), (1, 2)), expected.reshape(2, 2, 2), rtol=1e-13)


# -- test_log_softmax.py ---------------------------------------------------------------
EXPECTED_LOG_ARANGE4 = np.array([-3.4401896985611953, -2.4401896985611953,
                                 -1.4401896985611953, -0.44018969856119533])  # mpmath


@pytest.mark.parametrize("x,expected", [(np.array([1000, 1]), np.array([0, -999])),
                                        (np.arange(4), EXPECTED_LOG_ARANGE4)])
def test_log_softmax(backend, x, expected):
    close(fs.log_softmax(x, backend=backend), expected, rtol=1e-13)


def test_log_softmax_translation_and_none_axis(backend):
    close(fs.log_softmax(np.arange(4) + 100, backend=backend), EXPECTED_LOG_ARANGE4,
          rtol=1e-13)
    close(fs.log_softmax(np.arange(4).reshape(2, 2), None, backend=backend),
          EXPECTED_LOG_ARANGE4.reshape(2, 2), rtol=1e-13)


@pytest.mark.parametrize("axis,expected", [(0, np.log(0.5) * np.ones((2, 2))),
                                           (1, np.array([[0, -999], [0, -999]]))])
def test_log_softmax_axes(backend, axis, expected):
    close(fs.log_softmax([[1000, 1], [1000, 1]], axis, backend=backend), expected, rtol=1e-13)


def test_log_softmax_2d_and_3d(backend):
    x = np.arange(8).reshape(2, 4)
    expected = np.vstack([EXPECTED_LOG_ARANGE4] * 2)
    close(fs.log_softmax(x, 1, backend=backend), expected, rtol=1e-13)
    close(fs.log_softmax(x.T, 0, backend=backend), expected.T, rtol=1e-13)
    close(fs.log_softmax(x.reshape(2, 2, 2), (1, 2), backend=backend),
          expected.reshape(2, 2, 2), rtol=1e-13)


def test_log_softmax_scalar(backend):
    close(fs.log_softmax(1.0, backend=backend), np.array(0.0), rtol=1e-13)
