"""Benchmarks of the dask backend (docs/benchmarks.md, "The dask backend").

    python bench/dask_bench.py evaluation --n 3e7 --chunk-rows 1e6 --repeat 9
        one loss_gradient evaluation: 2 single-threaded workers (X persisted)
        vs numba in this process with 2 threads, on the same data, timed in
        alternation (ABAB...) so a busy machine slows both alike
    python bench/dask_bench.py fit --store PATH.zarr [--max-iter 100] [--tol 1e-4]
        L-BFGS on a Zarr store streamed from disk on every pass: seconds per
        evaluation, each worker's peak resident memory (the kernel's ru_maxrss
        of the worker process, and its memory before), final loss, accuracy

Each prints one JSON object on its last line. Run it from the repository root
(``PYTHONPATH=.``) so the workers import this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def _worker_memory(client):
    """``{worker: (rss now, peak rss)}`` in MiB, read in each worker process."""
    def probe():
        import resource

        import psutil

        return (psutil.Process().memory_info().rss / 2**20,
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10)

    return client.run(probe)


def evaluation(args):
    from distributed import Client

    import fastsoftmax as fs
    from fastsoftmax.distributed import local_cluster

    n = int(float(args.n))
    rows = int(float(args.chunk_rows))
    numba = fs.get_backend("numba")
    dask_be = fs.get_backend("dask")
    with local_cluster(2, threads_per_worker=1) as cluster, Client(cluster) as client:
        X, y = fs.make_spiral(n // 3, 3, seed=0, shuffle=False, dtype=args.dtype,
                              backend="dask", chunks=rows)
        X, y = client.persist([X, y])
        held = {w: sum(1 for key in keys if isinstance(key, tuple) and key[0] == X.name)
                for w, keys in client.has_what().items()}  # where X's blocks were persisted
        Xh, yh = X.compute(), y.compute()  # the same data for numba, in this process
        rng = np.random.default_rng(0)
        W = (0.01 * rng.standard_normal((2, 3))).astype(args.dtype)
        b = np.zeros(3, args.dtype)
        ref = numba.loss_gradient(Xh, yh, W, b, reg=1e-3, check=False)
        got = dask_be.loss_gradient(X, y, W, b, reg=1e-3, check=False)
        agree = max(float(np.max(np.abs(np.asarray(r, np.float64) - g)))
                    for r, g in zip(ref, got))
        times = {"numba": [], "dask": []}
        for _ in range(args.repeat):
            for name, run in (("numba", lambda: numba.loss_gradient(Xh, yh, W, b, reg=1e-3,
                                                                    check=False)),
                              ("dask", lambda: dask_be.loss_gradient(X, y, W, b, reg=1e-3,
                                                                     check=False))):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(json.dumps({
            "bench": "evaluation", "n": Xh.shape[0], "chunk_rows": rows, "blocks": X.numblocks[0],
            "dtype": args.dtype, "numba_threads": numba.device, "workers": 2,
            "threads_per_worker": 1, "median_s": med, "min_s": {k: min(v) for k, v in
                                                                times.items()},
            "ratio_dask_over_numba": med["dask"] / med["numba"], "max_abs_diff": agree,
            "blocks_per_worker": held,
            "loadavg": os.getloadavg()}))


def fit(args):
    from distributed import Client

    import fastsoftmax as fs
    from fastsoftmax.distributed import local_cluster

    with local_cluster(args.workers, threads_per_worker=1,
                       memory_limit=args.memory_limit) as cluster, Client(cluster) as client:
        X, y = fs.load_zarr(args.store)
        before = _worker_memory(client)
        # Import Numba and load the kernels on every worker (tiny blocks), so that
        # "warm" is a worker's memory before any data: the baseline of the peak.
        tiny = fs.make_spiral(10, 3, seed=0, dtype=str(X.dtype), backend="dask", chunks=3)
        fs.loss_gradient(tiny[0], tiny[1], np.zeros((X.shape[1], 3), X.dtype),
                         np.zeros(3, X.dtype))
        warm = _worker_memory(client)
        stamps = []

        def callback(i, loss):
            stamps.append((time.perf_counter(), float(loss)))
            print(f"evaluation {i}: loss {float(loss):.6f} "
                  f"({stamps[-1][0] - (stamps[-2][0] if len(stamps) > 1 else start):.1f} s)",
                  flush=True)

        clf = fs.SoftmaxClassifier(solver="lbfgs", max_iter=args.max_iter, tol=args.tol,
                                   backend="dask")
        start = time.perf_counter()
        clf.fit(X, y, callback=callback)
        fit_s = time.perf_counter() - start
        after_fit = _worker_memory(client)  # ru_maxrss only grows: the fit's peak
        t = time.perf_counter()
        accuracy = clf.score(X, y)
        score_s = time.perf_counter() - t
        after = _worker_memory(client)
        passes = np.diff([start] + [s for s, _ in stamps])
        print(json.dumps({
            "bench": "fit", "store": args.store, "n": X.shape[0], "dtype": str(X.dtype),
            "chunk_rows": X.chunks[0][0], "blocks": X.numblocks[0],
            "store_gib": sum(a.nbytes for a in (X, y)) / 2**30, "workers": args.workers,
            "n_evals": clf.n_evals_, "n_iter": clf.n_iter_, "converged": bool(clf.converged_),
            "fit_s": fit_s, "median_pass_s": float(np.median(passes[1:] if len(passes) > 1
                                                             else passes)),
            "first_pass_s": float(passes[0]), "score_s": score_s,
            "final_loss": clf.loss_history_[-1], "accuracy": accuracy,
            "W": clf.W_.tolist(), "b": clf.b_.tolist(),
            "worker_mib_before": {w: m[0] for w, m in before.items()},
            "worker_mib_warm": {w: m[0] for w, m in warm.items()},
            "worker_peak_rss_mib_fit": {w: m[1] for w, m in after_fit.items()},
            "worker_peak_rss_mib_with_score": {w: m[1] for w, m in after.items()},
            "loadavg": os.getloadavg()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    ev = sub.add_parser("evaluation")
    ev.add_argument("--n", default="3e7")
    ev.add_argument("--chunk-rows", default="1e6")
    ev.add_argument("--dtype", default="float64")
    ev.add_argument("--repeat", type=int, default=9)
    ev.set_defaults(run=evaluation)
    ft = sub.add_parser("fit")
    ft.add_argument("--store", required=True)
    ft.add_argument("--max-iter", type=int, default=100)
    ft.add_argument("--tol", type=float, default=1e-4)
    ft.add_argument("--workers", type=int, default=2)
    ft.add_argument("--memory-limit", default="4GiB")
    ft.set_defaults(run=fit)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
