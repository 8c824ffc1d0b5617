"""Full-batch training steps of the two-layer network: numba vs numpy vs PyTorch CPU.

The same problem for all three: the spiral (``--n-per-class`` points per class,
3 classes, 2 features), H hidden ReLUs, the case study's initialisation
(``0.01 * randn``, drawn once with NumPy), the mean cross-entropy plus
``0.5 * reg * (|W1|^2 + |W2|^2)``, and steps ``p -= lr * grad`` (lr 1.0, reg 1e-3).

* ``numba``: fastsoftmax's fused kernel (``Backend.net_loss_gradient``), one
  pass over X per step, no N x H array.
* ``numpy``: fastsoftmax's Array-API reference on NumPy (the same hand-written
  backprop, matrix by matrix).
* ``torch``: ``nn.Sequential(Linear, ReLU, Linear)`` + autograd
  (``cross_entropy(...).backward()``), updated under ``no_grad``.

The contenders run side by side in one process, interleaved in rounds (each
round: some steps of each), so a noisy machine slows them alike; each reports
the median time per step over the rounds. ``numba`` runs ``--steps`` steps in
all; the two slow ones run ``--slow-steps`` steps (their per-step time does not
depend on the step), and the 1,000-step times are per-step medians x steps.
The losses of the first common steps are compared as a check that all three
train the same network.

    python bench/net_bench.py                          # 1e5 points per class, H=100
    python bench/net_bench.py --n-per-class 1000 --steps 100 --slow-steps 10   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _problem(n_per_class, hidden, seed):
    import fastsoftmax as fs

    X, y = fs.make_spiral(n_per_class, 3, seed=seed, backend="numpy")
    rng = np.random.default_rng(seed)
    W1 = 0.01 * rng.standard_normal((2, hidden))
    W2 = 0.01 * rng.standard_normal((hidden, 3))
    return X, y, (W1, np.zeros(hidden), W2, np.zeros(3))


def _fastsoftmax_stepper(name, X, y, params, lr, reg):
    import fastsoftmax as fs

    be = fs.get_backend(name)
    Xb, yb = be.asarray(X), be.asarray(y)
    state = [tuple(be.asarray(p.copy()) for p in params)]

    def step():
        loss, *grads = be.net_loss_gradient(Xb, yb, *state[0], reg=reg, check=False)
        state[0] = tuple(p - lr * g for p, g in zip(state[0], grads))
        return float(loss)

    return step


def _torch_stepper(X, y, params, lr, reg):
    import torch

    W1, b1, W2, b2 = params
    net = torch.nn.Sequential(torch.nn.Linear(2, W1.shape[1]), torch.nn.ReLU(),
                              torch.nn.Linear(W1.shape[1], 3)).double()
    with torch.no_grad():  # nn.Linear keeps weight as (out, in): W.T
        net[0].weight.copy_(torch.from_numpy(W1.T.copy()))
        net[0].bias.copy_(torch.from_numpy(b1))
        net[2].weight.copy_(torch.from_numpy(W2.T.copy()))
        net[2].bias.copy_(torch.from_numpy(b2))
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def step():
        net.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(Xt), yt) + 0.5 * reg * (
            net[0].weight.pow(2).sum() + net[2].weight.pow(2).sum())
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad
        return loss.item()

    return step


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-per-class", type=int, default=100_000)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000, help="numba's steps (and the "
                        "step count the results are quoted for)")
    parser.add_argument("--slow-steps", type=int, default=10,
                        help="steps actually run by numpy and torch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--reg", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)

    import numba
    import torch

    X, y, params = _problem(args.n_per_class, args.hidden, args.seed)
    n = X.shape[0]
    steppers = {
        "numba": _fastsoftmax_stepper("numba", X, y, params, args.lr, args.reg),
        "numpy": _fastsoftmax_stepper("numpy", X, y, params, args.lr, args.reg),
        "torch": _torch_stepper(X, y, params, args.lr, args.reg),
    }
    total = {"numba": args.steps, "numpy": args.slow_steps, "torch": args.slow_steps}
    per_round = {k: max(1, v // args.rounds) for k, v in total.items()}
    # Warm-up outside the clock: Numba's compile or cache load, torch's first allocations.
    # It is one extra step for each, so all three stay in step.
    losses = {k: [f()] for k, f in steppers.items()}
    times = {k: [] for k in steppers}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            for _ in range(per_round[name]):
                losses[name].append(step())
            times[name].append((time.perf_counter() - start) / per_round[name])

    median = {k: float(np.median(v)) for k, v in times.items()}
    common = min(len(v) for v in losses.values())
    spread = max(abs(losses[k][i] - losses["numpy"][i]) / abs(losses["numpy"][i])
                 for k in losses for i in range(common))
    machine = (f"{_cpu_model()}, {os.cpu_count()} cores; "
               f"numba {numba.__version__} ({numba.get_num_threads()} threads), numpy "
               f"{np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
               f"threads)")
    print(f"two-layer net, N={n:,} (spiral, D=2, K=3), H={args.hidden}, float64; {machine}")
    print(f"{'contender':<10}{'steps run':>10}{'s/step':>12}{f'{args.steps} steps (s)':>18}"
          f"{'vs numba':>10}")
    for name in steppers:
        ratio = median[name] / median["numba"]
        print(f"{name:<10}{len(losses[name]) - 1:>10}{median[name]:>12.4f}"
              f"{median[name] * args.steps:>18.1f}{ratio:>9.1f}x")
    print(f"losses agree over the first {common} steps to {spread:.1e} (relative); "
          f"numba's loss after {len(losses['numba']) - 1} steps: {losses['numba'][-1]:.6f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": n, "hidden": args.hidden, "median_s_per_step": median,
                       "per_round": times, "steps": args.steps, "machine": machine,
                       "loss_spread": spread}, fh, indent=1)


if __name__ == "__main__":
    main()
