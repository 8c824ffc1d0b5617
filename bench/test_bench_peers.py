"""Time the peers' ``loss_gradient`` on the same spirals, in the same groups as the backends.

The peers are the rows of ``fastsoftmax bench``: the notebook's NumPy code,
scikit-learn's ``LinearModelLoss``, PyTorch autograd and ``jax.jit``. Each
converts the data to its own arrays before timing; each call is synchronised.
"""

import numpy as np
import pytest

from conftest import LOSS_GRADIENT_BIG, LOSS_GRADIENT_SHAPES, bench_data, group, settle, shape_id


def _case(benchmark, peer, shape):
    n, k, d, dtype = shape
    benchmark.group = group("loss_gradient", shape)
    benchmark.extra_info.update(op="loss_gradient", peer=peer.name, n=n, k=k, d=d, dtype=dtype)
    peer.prepare("loss_gradient", bench_data(shape))
    try:
        peer.run()  # warm-up: jax.jit compiles here, not in the timing
        settle(benchmark)
        result = benchmark(peer.run)
        out = peer.outputs(result)
    finally:
        peer.release()
    assert out["dW"].shape == (d, k) and out["db"].shape == (k,)
    assert np.isfinite(out["loss"])


@pytest.mark.parametrize("shape", LOSS_GRADIENT_SHAPES, ids=shape_id)
def test_peer_loss_gradient(benchmark, peer, shape):
    _case(benchmark, peer, shape)


@pytest.mark.big
@pytest.mark.parametrize("shape", LOSS_GRADIENT_BIG, ids=shape_id)
def test_peer_loss_gradient_big(benchmark, peer, shape):
    _case(benchmark, peer, shape)
