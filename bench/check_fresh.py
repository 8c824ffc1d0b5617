"""Check ``fastsoftmax bench`` against an independent measurement (a plain script).

Times each ``loss_gradient`` row of a ``fastsoftmax bench --json`` file again, one
fresh Python process per (row, N), with ``timeit`` (median of 7 autoranged
repeats) and code written here, not ``fastsoftmax.bench``'s: the backends
through the public API, the peers as a user would write them. Prints both
times and both ratios to the numpy backend. Run it right after the bench, on
the same idle machine::

    fastsoftmax bench --quick --json out.json
    python bench/check_fresh.py out.json 1e3,1e4,1e5,1e6

The peers here are independent re-writes (plain fancy indexing, ``X @ W + b``),
so they may differ from the command's rows by a few percent for that reason alone.
"""

import json
import statistics
import subprocess
import sys
import timeit

PEERS = ("notebook", "sklearn", "torch-autograd", "jax-jit")


def time_one(which, size):
    """Median seconds per call of ``which`` on the bench's spiral of ``size`` points."""
    import numpy as np

    import fastsoftmax as fs

    X, y = fs.make_spiral(round(size / 3), 3, seed=0, backend="numpy")
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((2, 3)), 0.1 * rng.standard_normal(3)
    if which not in PEERS:
        be = fs.get_backend(which)
        Xb, yb, Wb, bb = map(be.asarray, (X, y, W, b))

        def f():
            return fs.loss_gradient(Xb, yb, Wb, bb, reg=1e-3, backend=which)
    elif which == "notebook":
        def f():
            scores = X @ W + b
            scores = scores - scores.max(axis=1, keepdims=True)
            exp_scores = np.exp(scores)
            probs = exp_scores / exp_scores.sum(axis=1, keepdims=True)
            n, rows = len(y), np.arange(len(y))
            loss = -np.log(probs[rows, y]).sum() / n + 0.5e-3 * (W * W).sum()
            probs[rows, y] -= 1
            probs /= n
            return loss, X.T @ probs + 1e-3 * W, probs.sum(axis=0)
    elif which == "sklearn":
        from sklearn._loss.loss import HalfMultinomialLoss
        from sklearn.linear_model._linear_loss import LinearModelLoss

        model = LinearModelLoss(HalfMultinomialLoss(n_classes=3), fit_intercept=True)
        coef, yf = np.ascontiguousarray(np.c_[W.T, b]), y.astype(float)

        def f():
            return model.loss_gradient(coef, X, yf, l2_reg_strength=1e-3, n_threads=2)
    elif which == "torch-autograd":
        import torch
        import torch.nn.functional as F

        Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        Wt, bt = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)

        def f():
            Wt.grad = bt.grad = None
            loss = F.cross_entropy(Xt @ Wt + bt, yt) + 0.5e-3 * (Wt**2).sum()
            loss.backward()
    elif which == "jax-jit":
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)

        def loss(W, b, X, y):
            S = X @ W + b
            lse = jax.scipy.special.logsumexp(S, axis=1)
            return jnp.mean(lse - S[jnp.arange(S.shape[0]), y]) + 0.5e-3 * jnp.sum(W * W)

        g = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        Xj, yj, Wj, bj = map(jnp.asarray, (X, y, W, b))

        def f():
            return jax.block_until_ready(g(Wj, bj, Xj, yj))
    f()
    f()
    timer = timeit.Timer(f)
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(7, number)) / number


def main(path, sizes):
    result = json.load(open(path))
    rows = [r["name"] for r in result["rows"] if r["available"]]
    for size in (int(float(s)) for s in sizes.split(",")):
        cells = {c["row"]: c for c in result["cells"]
                 if c["size"] == size and c["op"] == "loss_gradient" and c["k"] == 3
                 and c["d"] == 2 and c["dtype"] == "float64"}
        fresh = {}
        for name in rows:
            out = subprocess.run([sys.executable, __file__, "--one", name, str(size)],
                                 capture_output=True, text=True, check=True)
            fresh[name] = float(out.stdout)
        print(f"N={size:,}  {'row':18} {'fresh ms':>9} {'bench ms':>9} "
              f"{'t/numpy fresh':>14} {'bench':>7}")
        for name in rows:
            c = cells[name]
            print(f"        {name:18} {fresh[name] * 1e3:9.3f} {c['median_s'] * 1e3:9.3f} "
                  f"{fresh[name] / fresh['numpy']:14.3f} {c['ratio_to_numpy']:7.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(time_one(sys.argv[2], int(sys.argv[3])))
    else:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "1e3,1e4,1e5,1e6")
