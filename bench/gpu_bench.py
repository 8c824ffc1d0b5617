"""GPU benchmark of the cupy backend's fused loss_gradient (a plain script).

Measures, on the current CUDA device, in one run:

* the device-to-device copy bandwidth (cudaMemcpy of a few GB; bytes read plus
  bytes written, the way the 4.3 TB/s of an H200 is quoted);
* the fused ``loss_gradient`` at N = 1e8, D = 2, K = 3 (float32 and float64),
  both the bare kernel call (``check=False``, no host sync) and the public
  ``fs.loss_gradient`` (validation plus the 4-byte flag read-back);
* the generic CuPy path: the Array-API reference run on CuPy (``check=False``);
* PyTorch ``cross_entropy`` + autograd (forward and backward for W and b) on the
  same GPU and the same arrays (shared through DLPack), if torch sees CUDA;
* the fused kernels' registers and local memory as CuPy's NVRTC built them
  (``num_regs``, ``local_size_bytes``: the figures tests/test_cuda_sources.py
  predicts with nvcc);
* with ``--train-n``: ``SoftmaxClassifier(backend="cupy")`` fitted for
  ``--train-steps`` steps on a spiral of that many points made on the device.

Times are CUDA-event medians. Effective bandwidth counts ONE read of X and y
(the minimum any implementation must move); the issue's targets are checked
against the copy measured in the same run. Prints a table and writes JSON.

    python bench/gpu_bench.py                       # N = 1e8, writes gpu_bench.json
    python bench/gpu_bench.py --n 10000000 --out /tmp/b.json --repeat 50
    python bench/gpu_bench.py --train-only --train-n 10000000 --train-steps 200

Without a usable GPU it prints the reason and exits with status 0 (nothing to
measure); with --require-gpu, status 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time


def _median_ms(times):
    return statistics.median(times)


def time_cupy(cupy, fn, repeat, warmup):
    """CUDA-event times (ms) of ``fn()`` on the current stream."""
    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return times


def time_torch(torch, fn, repeat, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def copy_bandwidth(cupy, nbytes, repeat):
    """Device-to-device cudaMemcpy: GB/s counting bytes read + bytes written."""
    src = cupy.ones(nbytes, dtype=cupy.uint8)
    dst = cupy.empty_like(src)
    rt = cupy.cuda.runtime
    stream = cupy.cuda.get_current_stream().ptr

    def run():
        rt.memcpyAsync(dst.data.ptr, src.data.ptr, nbytes, rt.memcpyDeviceToDevice, stream)

    times = time_cupy(cupy, run, repeat, 3)
    ms = _median_ms(times)
    return {"bytes": nbytes, "ms_median": ms, "ms_min": min(times),
            "gbps": 2 * nbytes / (ms * 1e-3) / 1e9}


def _case(name, dtype, times, nbytes, extra=None):
    ms = _median_ms(times)
    out = {"name": name, "dtype": dtype, "ms_median": ms, "ms_min": min(times),
           "ms_max": max(times), "repeat": len(times),
           "gbps_one_read": nbytes / (ms * 1e-3) / 1e9}
    out.update(extra or {})
    return out


def bench_dtype(fs, cupy, be, n, dtype, args, torch):
    from fastsoftmax.backends import Backend

    X, y = fs.make_spiral(n // 3, 3, seed=0, dtype=dtype, backend=be)
    n = X.shape[0]
    W = 0.01 * be.standard_normal((2, 3), seed=1, dtype=dtype)
    b = cupy.zeros(3, dtype=dtype)
    reg = 1e-3
    nbytes = X.nbytes + y.nbytes
    cases = []

    fused = lambda: be.loss_gradient(X, y, W, b, reg=reg, check=False)  # noqa: E731
    cases.append(_case("fused", dtype, time_cupy(cupy, fused, args.repeat, 3), nbytes))
    public = lambda: fs.loss_gradient(X, y, W, b, reg=reg, backend=be)  # noqa: E731
    cases.append(_case("fused_public_api", dtype, time_cupy(cupy, public, args.repeat, 3),
                       nbytes, {"note": "validation + 4-byte flag read-back (a sync)"}))
    got = [cupy.asnumpy(a) for a in fused()]

    if not args.skip_generic:
        generic = lambda: Backend.loss_gradient(be, X, y, W, b, reg=reg, check=False)  # noqa: E731
        ref = [cupy.asnumpy(a) for a in generic()]
        cases.append(_case("generic_cupy_reference", dtype,
                           time_cupy(cupy, generic, max(3, args.repeat // 4), 1), nbytes))
        import numpy as np

        # A sanity check, not a test: |fused - generic| per output. The entries of
        # dW and db are sums of N terms that largely cancel, so compare absolutely.
        cases[0]["abs_diff_vs_generic"] = {
            name: float(np.max(np.abs(u.astype(float) - v.astype(float))))
            for name, u, v in zip(("loss", "dW", "db"), got, ref)}

    if torch is not None:
        tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        Xt = torch.from_dlpack(X)
        yt = torch.from_dlpack(y).long()  # cross_entropy wants int64 labels (copied untimed)
        Wt = torch.from_dlpack(W).clone().requires_grad_(True)
        bt = torch.zeros(3, dtype=tdtype, device=Xt.device, requires_grad=True)
        F = torch.nn.functional

        def torch_step():
            Wt.grad = bt.grad = None
            loss = F.cross_entropy(Xt @ Wt + bt, yt) + 0.5 * reg * (Wt * Wt).sum()
            loss.backward()
            return loss

        cases.append(_case("torch_cross_entropy_autograd", dtype,
                           time_torch(torch, torch_step, args.repeat, 3),
                           Xt.nbytes + yt.nbytes,
                           {"torch": torch.__version__, "labels": "int64"}))
    return n, cases


def kernel_usage(be, dtype, label_dtype, d, k):
    """Registers and local memory of the fused kernel as CuPy compiled it."""
    from fastsoftmax.backends import cupy as cb

    names = cb.fused_kernel_names(dtype, label_dtype, d, k)
    kernel, per_sm = be._kernel("loss_gradient.cu", names, 0, cb.FUSED_BLOCK)
    return {"kernel": names[0], "num_regs": int(kernel.num_regs),
            "local_size_bytes": int(kernel.local_size_bytes), "blocks_per_sm": per_sm}


def bench_train(fs, cupy, be, n, steps):
    """Wall time of SoftmaxClassifier(backend="cupy").fit: ``steps`` full-batch steps."""
    X, y = fs.make_spiral(n // 3, 3, seed=0, dtype="float32", backend=be)
    model = fs.SoftmaxClassifier(max_iter=steps, seed=0, backend="cupy")
    fs.SoftmaxClassifier(max_iter=2, seed=0, backend="cupy").fit(X[:1000], y[:1000])  # compile
    cupy.cuda.Device().synchronize()
    t0 = time.perf_counter()
    model.fit(X, y)
    cupy.cuda.Device().synchronize()
    wall = time.perf_counter() - t0
    accuracy = float(model.score(X, y))
    return {"n": int(X.shape[0]), "steps": int(model.n_iter_), "wall_s": wall,
            "ms_per_step": 1e3 * wall / max(1, int(model.n_iter_)),
            "first_loss": float(model.loss_history_[0]),
            "last_loss": float(model.loss_history_[-1]), "training_accuracy": accuracy}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000_000, help="rows (default 1e8)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--copy-bytes", type=int, default=4 << 30)
    parser.add_argument("--skip-generic", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--out", default="gpu_bench.json")
    parser.add_argument("--require-gpu", action="store_true")
    parser.add_argument("--train-n", type=int, default=0,
                        help="also fit SoftmaxClassifier on this many points (0: no)")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--train-only", action="store_true",
                        help="only the classifier run (with --train-n)")
    args = parser.parse_args(argv)

    import fastsoftmax as fs
    from fastsoftmax.backends import backend_info

    info = backend_info("cupy")
    if not info["available"]:
        print(f"gpu_bench: skipped: backend 'cupy' is unavailable here: {info['reason']}")
        return 2 if args.require_gpu else 0
    import cupy

    be = fs.get_backend("cupy")
    torch = None
    if not args.skip_torch:
        try:
            import torch

            if not torch.cuda.is_available():
                torch = None
        except ImportError:
            torch = None

    t0 = time.time()
    result = {"device": be.device, "cupy": cupy.__version__, "fastsoftmax_backend": repr(be),
              "python": platform.python_version(), "n_requested": args.n}
    print(f"device: {be.device}")
    if args.train_n:
        train = result["train"] = bench_train(fs, cupy, be, args.train_n, args.train_steps)
        print(f"train SoftmaxClassifier(backend='cupy') N={train['n']:,} {train['steps']} "
              f"steps: {train['wall_s']:.2f} s ({train['ms_per_step']:.2f} ms/step), loss "
              f"{train['first_loss']:.4f} -> {train['last_loss']:.4f}, training accuracy "
              f"{train['training_accuracy']:.3f}")
    if args.train_only:
        result["wall_s"] = time.time() - t0
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.out}")
        return 0
    label = str(fs.make_spiral(1, 3, seed=0, backend=be)[1].dtype)  # the timed labels' dtype
    result["kernels"] = [kernel_usage(be, t, label, 2, 3) for t in args.dtypes.split(",")]
    for usage in result["kernels"]:
        print(f"kernel {usage['kernel']}: {usage['num_regs']} registers, "
              f"{usage['local_size_bytes']} bytes local memory, "
              f"{usage['blocks_per_sm']} blocks of 256 per SM")
    result["copy"] = copy_bandwidth(cupy, args.copy_bytes, args.repeat)
    result["cases"] = []
    cupy.get_default_memory_pool().free_all_blocks()
    copy_gbps = result["copy"]["gbps"]
    print(f"device-to-device copy: {copy_gbps:,.0f} GB/s (read + write)")
    for dtype in args.dtypes.split(","):
        n, cases = bench_dtype(fs, cupy, be, args.n, dtype, args, torch)
        cupy.get_default_memory_pool().free_all_blocks()  # the dtype's arrays are gone
        if torch is not None:
            torch.cuda.empty_cache()
        result["n"] = n
        fused_ms = cases[0]["ms_median"]
        for case in cases:
            case["fraction_of_copy_bandwidth"] = case["gbps_one_read"] / copy_gbps
            case["fused_speedup"] = case["ms_median"] / fused_ms
            result["cases"].append(case)
            print(f"{dtype:8s} {case['name']:30s} {case['ms_median']:9.3f} ms  "
                  f"{case['gbps_one_read']:8,.0f} GB/s  "
                  f"{100 * case['fraction_of_copy_bandwidth']:5.1f}% of copy  "
                  f"fused is {case['fused_speedup']:6.1f}x faster")

    by = {(c["name"], c["dtype"]): c for c in result["cases"]}
    fused32 = by.get(("fused", "float32"))
    if fused32 and args.n >= 100_000_000:
        targets = {"fused_fraction_of_copy_ge_0.70": fused32["fraction_of_copy_bandwidth"] >= 0.70}
        if ("generic_cupy_reference", "float32") in by:
            targets["fused_ge_10x_generic"] = by[("generic_cupy_reference", "float32")][
                "ms_median"] >= 10 * fused32["ms_median"]
        if ("torch_cross_entropy_autograd", "float32") in by:
            targets["fused_faster_than_torch"] = by[("torch_cross_entropy_autograd", "float32")][
                "ms_median"] > fused32["ms_median"]
        result["targets"] = targets
        print("targets (N=1e8, D=2, K=3, float32):",
              ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in targets.items()))
    result["wall_s"] = time.time() - t0
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
