"""The ``fastsoftmax`` command line: ``train``, ``backends`` and ``bench``.

Errors a user can cause (a bad flag, an unusable backend, bad values, an
output path that cannot be written, a problem too large for the memory) print
one line ``fastsoftmax: error: ...`` on stderr and exit with status 2 -- never a
traceback, and always before any work. A run that fails on valid flags
(training that diverges) prints one line too and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
import warnings

from ._cliutil import (
    UsageError,
    fits_in_memory,
    float_at_least,
    gib,
    int_at_least,
    output_path,
)
from .backends import BackendUnavailableError, backend_info, get_backend, list_backends

PROG = "fastsoftmax"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block."""

    def error(self, message):
        raise UsageError(message)


class RunFailed(Exception):
    """A run that failed on valid flags (training diverged): one line, exit status 1."""


def _backend_choice(text):
    if text != "auto" and text not in list_backends():
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; known: auto, {', '.join(list_backends())}")
    return text


def build_parser():
    from . import __version__

    parser = _Parser(prog=PROG, description="Fast softmax-classifier kernels on NumPy, "
                     "Numba and CuPy: train on the spiral, list backends, benchmark.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train the softmax classifier on the spiral (the notebook's experiment)",
        description="Full-batch gradient descent on the cs231n spiral. With no flags it "
                    "reproduces the notebook: 300 points, 3 classes, 200 steps of size 1.0.")
    train.add_argument("--backend", type=_backend_choice, default=None,
                       help="backend name (default: $FASTSOFTMAX_BACKEND, else auto)")
    train.add_argument("--n-per-class", type=int_at_least(1), default=100,
                       help="points per class (default 100)")
    train.add_argument("--classes", type=int_at_least(1), default=3,
                       help="number of classes K (default 3)")
    train.add_argument("--features", type=int_at_least(2), default=2,
                       help="number of features D (default 2; more embeds the spiral)")
    train.add_argument("--noise", type=float_at_least(0.0), default=0.2,
                       help="angular noise of the spiral (default 0.2)")
    train.add_argument("--solver", choices=("gd", "lbfgs"), default="gd",
                       help="gd: the notebook's gradient descent (default); lbfgs: SciPy's "
                            "L-BFGS-B to the optimum")
    train.add_argument("--iters", type=int_at_least(1), default=None,
                       help="most iterations: gradient steps, or L-BFGS iterations "
                            "(default 200; 10000 for --model mlp)")
    train.add_argument("--tol", type=float_at_least(0.0), default=None,
                       help="stop when the largest gradient entry is <= TOL (default: 0 for "
                            "gd, which runs every step as the notebook; 1e-4 for lbfgs)")
    train.add_argument("--lr", type=float_at_least(0.0, strict=True), default=1.0,
                       help="step size (default 1.0)")
    train.add_argument("--reg", type=float_at_least(0.0), default=1e-3,
                       help="L2 regularisation strength (default 1e-3)")
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument("--seed", type=int_at_least(0), default=None,
                       help="seed for the data and the initial weights "
                            "(default: drawn at random and reported)")
    train.add_argument("--print-every", type=int_at_least(0), default=10,
                       help="print the loss every N steps (0: never; default 10)")
    train.add_argument("--plot", metavar="PATH", default=None,
                       help="write the decision regions and the loss curve to a PNG "
                            "(the format follows the extension; none: .png is added)")
    train.add_argument("--json", action="store_true",
                       help="print exactly one JSON object on stdout instead of text")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar on stderr for runs longer than a second "
                            "(default: only when stderr is a terminal and not with --json)")
    # -- the model (issue 11: the case study's two-layer network) --
    train.add_argument("--model", choices=("linear", "mlp"), default="linear",
                       help="linear: the softmax classifier (default); mlp: a hidden layer of "
                            "ReLUs, then softmax (TwoLayerNet; --iters defaults to 10000)")
    train.add_argument("--hidden", type=int_at_least(1), default=None,
                       help="hidden ReLU units of --model mlp (default 100)")
    train.add_argument("--init-scale", type=float_at_least(0.0, strict=True), default=None,
                       help="std of --model mlp's initial weights (default 0.01)")
    train.add_argument("--diagnostics", action="store_true",
                       help="--model mlp: record and print dead ReLUs, gradient norms and "
                            "update/weight ratios (and plot them with --plot)")
    _add_dask_flags(train)
    train.set_defaults(run=_run_train)

    make_data = sub.add_parser(
        "make-data", help="write a spiral of any size to a Zarr store, block by block",
        description="Generate the spiral block by block (on Dask) and write it to a Zarr v3 "
                    "store that 'train --data' and fastsoftmax.load_zarr read back.")
    make_data.add_argument("--out", metavar="PATH", required=True,
                           help="the store to write (a directory, PATH.zarr by convention)")
    make_data.add_argument("--n-per-class", type=int_at_least(1), default=100,
                           help="points per class (default 100)")
    make_data.add_argument("--classes", type=int_at_least(1), default=3,
                           help="number of classes K (default 3)")
    make_data.add_argument("--features", type=int_at_least(2), default=2,
                           help="number of features D (default 2)")
    make_data.add_argument("--noise", type=float_at_least(0.0), default=0.2,
                           help="angular noise of the spiral (default 0.2)")
    make_data.add_argument("--dtype", choices=("float64", "float32"), default="float32")
    make_data.add_argument("--seed", type=int_at_least(0), default=0,
                           help="seed of the data (default 0)")
    make_data.add_argument("--overwrite", action="store_true",
                           help="replace an existing store at PATH")
    _add_dask_flags(make_data, data=False)
    make_data.set_defaults(run=_run_make_data)


    backends = sub.add_parser("backends", help="list the backends and whether they are usable",
                              description="Every backend fastsoftmax knows: name, available, "
                                          "version, device, and why not when it is not.")
    backends.add_argument("--json", action="store_true", help="print a JSON list instead")
    backends.set_defaults(run=_run_backends)

    from .bench import add_bench_parser  # light: the engine imports its peers when it runs

    add_bench_parser(sub)
    return parser


def _add_dask_flags(parser, *, data=True):
    """The flags of the dask backend: where the cluster is, how the data is split."""
    group = parser.add_argument_group("dask (with --backend dask; see docs/dask.md)")
    group.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="'local' (default): start a LocalCluster on 127.0.0.1; "
                            "tcp://HOST:PORT or tls://HOST:PORT: join a running scheduler")
    group.add_argument("--workers", type=int_at_least(1), default=2,
                       help="worker processes of the local cluster (default 2)")
    group.add_argument("--threads-per-worker", type=int_at_least(1), default=1,
                       help="threads per local worker, one kernel thread each (default 1)")
    group.add_argument("--chunk-rows", type=int_at_least(1), default=None,
                       help="rows per block (default: the store's chunks, else up to "
                            "1,048,576 rows and at least one block per worker thread)")
    for flag, what in (("--tls-ca-file", "CA certificate"), ("--tls-cert", "client certificate"),
                       ("--tls-key", "client private key")):
        group.add_argument(flag, metavar="PEM", default=None,
                           help=f"{what} for a tls:// scheduler (default: Dask's config)")
    if data:
        group.add_argument("--data", metavar="PATH", default=None,
                           help="train on a Zarr store written by make-data instead of a "
                                "generated spiral")
        group.add_argument("--persist", action="store_true",
                           help="keep X and y in the workers' memory between passes "
                                "(default: regenerate or re-read them on every pass)")


def _dask_session(args, backend):
    """The Dask client for ``--backend dask`` (closed on exit); nothing otherwise."""
    import contextlib

    if backend.name != "dask":
        given = [flag for flag, value in (("--scheduler", args.scheduler), ("--data", args.data),
                                          ("--chunk-rows", args.chunk_rows))
                 if value is not None]
        if given or args.persist:
            raise UsageError(f"{(given or ['--persist'])[0]} needs --backend dask")
        return contextlib.nullcontext()
    from .distributed import dask_client

    return dask_client(args.scheduler or "local", workers=args.workers,
                       threads_per_worker=args.threads_per_worker, tls_ca_file=args.tls_ca_file,
                       tls_cert=args.tls_cert, tls_key=args.tls_key)


def _progress_bar(total, progress, json_mode):
    """A tqdm bar on stderr, shown once a run passes a second; None when off.

    ``progress`` None (the default) means: on a terminal, and not with --json
    (whose runs are read by programs), as pip and tqdm-based tools decide.
    """
    if progress is None and (json_mode or not sys.stderr.isatty()):
        return None
    if progress is False:
        return None
    from tqdm import tqdm

    # Asked for (--progress): at once; by default only once the run passes a second.
    return tqdm(total=total, desc="training", unit="step", file=sys.stderr, leave=False,
                dynamic_ncols=True, delay=0.0 if progress is True else 1.0)


def _train_bytes(n, d, k, itemsize, backend_name):
    """A generous guess of the memory ``train`` needs: the data, the scores and temporaries."""
    data = n * (d * itemsize + 4)
    if backend_name == "numba":  # fused: no N x K array
        return 2 * data
    return 2 * data + 12 * n * k * itemsize  # the reference's N x K temporaries


class _Diverged(Exception):
    """Raised by ``train``'s callback at the first non-finite loss of gradient descent."""

    def __init__(self, iteration, loss):
        super().__init__(iteration, loss)
        self.iteration, self.loss = iteration, loss


def _diverged_message(args, iteration, loss):
    what = "the weights overflowed" if loss is None else f"loss {loss}"
    if args.solver != "gd":
        where, hint = "iteration", f"try a smaller --reg (now {args.reg:g})"
    elif args.lr * args.reg >= 2:
        # Each step scales W by (1 - lr * reg): beyond 2 the L2 term alone diverges.
        where, hint = "step", (f"--lr x --reg = {args.lr * args.reg:.3g} >= 2 makes the L2 "
                               f"term alone diverge; try a smaller --reg (now {args.reg:g}) "
                               f"or --lr (now {args.lr:g})")
    else:
        where, hint = "step", f"try a smaller --lr (now {args.lr:g})"
    return f"training diverged at {where} {iteration} ({what}); {hint}"


def _run_train(args):
    plot = None
    if args.plot is not None:
        from .plotting import _import_figure

        _import_figure()  # fail before training, not after
        plot = output_path(args.plot, "--plot", plot=True)
    _mlp_defaults(args)  # --iters' default depends on --model
    n = args.n_per_class * args.classes
    # "auto" picks by the whole run's work: every step computes N x K scores.
    backend = get_backend(args.backend, work=args.iters * n * args.classes)
    if backend.name == "jax" and args.dtype == "float64":
        # The library switches nothing global in JAX; the command owns its process, and
        # --dtype float64 asks for JAX's 64-bit mode.
        import jax

        jax.config.update("jax_enable_x64", True)
    if backend.name == "dask" and plot is not None:
        raise UsageError("--plot is not available with --backend dask (it would gather X)")
    with _dask_session(args, backend):
        return _train(args, backend, plot, n)


def _train(args, backend, plot, n):
    import numpy as np

    from .backends import to_numpy
    from .datasets import make_spiral
    from .models import ConvergenceWarning, SoftmaxClassifier, TrainingDivergedError

    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    if backend.name == "dask":  # blocks on the workers; the data never sit in this process
        from .distributed import training_data

        X, y = training_data(args.data, n_per_class=args.n_per_class, n_classes=args.classes,
                             n_features=args.features, noise=args.noise, seed=seed,
                             dtype=args.dtype, chunk_rows=args.chunk_rows, persist=args.persist)
        if args.data is not None:  # the store's shape, not the flags'
            from ._dask_data import zarr_attrs

            args.features = X.shape[1]
            args.classes = zarr_attrs(args.data).get("n_classes", args.classes)
            n = X.shape[0]
    else:
        itemsize = 8 if args.dtype == "float64" else 4
        need = _train_bytes(n, args.features, args.classes, itemsize, backend.name)
        fits, available = fits_in_memory(need)
        if not fits:
            raise UsageError(f"--n-per-class {args.n_per_class} x --classes {args.classes} x "
                             f"--features {args.features} needs about {gib(need)} with "
                             f"backend {backend.name}; {gib(available)} is available")
        X, y = make_spiral(args.n_per_class, args.classes, n_features=args.features,
                           noise=args.noise, shuffle=False, seed=seed, dtype=args.dtype,
                           backend=backend)
    if not args.json:
        print(f"training on {n:,} spiral points ({args.classes} classes, {args.features} "
              f"features, {args.dtype}) with backend {backend.name}, seed {seed}", flush=True)

    # L-BFGS reports every evaluation (line-search trials too): no known total.
    bar = _progress_bar(args.iters if args.solver == "gd" else None, args.progress, args.json)
    first_step = []

    # On the CPU a loss is a number already: stop at the first non-finite one (every
    # later step is NaN too). On a GPU that would sync every step; the solver then
    # names the first non-finite loss at the end instead.
    stop_early = args.solver == "gd" and str(backend.device).startswith("cpu")

    def report(i, loss):
        if i == 0:  # the first step holds any JIT compile or kernel cache load
            first_step.append(time.perf_counter() - start)
        if stop_early and not math.isfinite(value := float(loss)):
            raise _Diverged(i, value)
        if bar is not None:
            bar.update(1)
        if not args.json and args.print_every and i % args.print_every == 0 \
                and not args.diagnostics:  # printed after fit, diagnostics beside the loss
            line = f"iteration {i}: loss {float(loss):f}"
            print(line) if bar is None else bar.write(line)

    tol = args.tol if args.tol is not None else (0.0 if args.solver == "gd" else 1e-4)
    if args.model == "mlp":
        model = _mlp_model(args, tol, backend, seed)
    else:
        model = SoftmaxClassifier(solver=args.solver, lr=args.lr, reg=args.reg,
                                  max_iter=args.iters, tol=tol, backend=backend,
                                  random_state=seed)
    start = time.perf_counter()
    # A diverging run overflows on the way: NumPy's warnings would bury the one
    # line that says so.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        # Reported in the output (converged, iterations), not as a warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            model.fit(X, y, callback=report)
        except (_Diverged, TrainingDivergedError) as exc:
            raise RunFailed(_diverged_message(args, exc.iteration, exc.loss)) from None
        finally:
            if bar is not None:
                bar.close()
        fitted = ((model.W1_, model.b1_, model.W2_, model.b2_) if args.model == "mlp"
                  else (model.W_, model.b_))
        if not all(np.all(np.isfinite(to_numpy(a))) for a in fitted):
            raise RunFailed(_diverged_message(args, model.n_iter_, None))
        train_time = time.perf_counter() - start
        accuracy = model.score(X, y)
        objective = _objective(model, X, y)

    if plot is not None:
        from .plotting import plot_training

        plot_training(model, X, y, plot,
                      title=f"fastsoftmax train: {n:,} points, backend {backend.name}")
    if args.json:
        print(json.dumps({
            "backend": backend.name, "dtype": args.dtype, "seed": seed,
            "n_samples": n, "n_features": args.features, "n_classes": args.classes,
            "noise": args.noise, "iters": args.iters, "lr": args.lr, "reg": args.reg,
            "solver": args.solver, "tol": tol, "n_iter": model.n_iter_,
            "n_evals": model.n_evals_, "converged": model.converged_,
            "final_loss": model.loss_history_[-1], "objective": objective,
            "accuracy": accuracy,
            "train_seconds": train_time, "first_step_seconds": first_step[0],
            "loss_history": model.loss_history_,
            "plot": plot,
            **_mlp_json(args, model),
        }))
    else:
        _print_diagnostics(args, model)
        print(f"training accuracy: {accuracy:.2f}")
        if args.solver == "gd":
            print(f"({model.n_iter_} steps in {train_time:.3f} s; the first step, with any "
                  f"JIT compile or cache load, took {first_step[0]:.3f} s)")
        else:
            print(f"(L-BFGS: {model.n_iter_} iterations, {model.n_evals_} evaluations in "
                  f"{train_time:.3f} s, {'converged' if model.converged_ else 'NOT converged'}"
                  f"; objective {objective:.10g})")
        if plot is not None:
            print(f"wrote {plot}")
    return 0


def _run_make_data(args):
    import os

    from .distributed import dask_client

    if os.path.exists(args.out) and not args.overwrite:  # before starting a cluster
        raise UsageError(f"--out {args.out} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    with dask_client(args.scheduler or "local", workers=args.workers,
                     threads_per_worker=args.threads_per_worker, tls_ca_file=args.tls_ca_file,
                     tls_cert=args.tls_cert, tls_key=args.tls_key):
        from .distributed import write_spiral

        n, blocks = write_spiral(args.out, n_per_class=args.n_per_class, n_classes=args.classes,
                                 n_features=args.features, noise=args.noise, seed=args.seed,
                                 dtype=args.dtype, chunk_rows=args.chunk_rows,
                                 overwrite=args.overwrite)
    print(f"wrote {n:,} points ({args.classes} classes, {args.features} features, "
          f"{args.dtype}) in {blocks} blocks to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _objective(model, X, y):
    """The training objective at the fitted weights (the loss after the last step)."""
    from ._api import loss

    if _model_kind(model) == "mlp":
        from ._api_net import net_loss_gradient

        params = (model.W1_, model.b1_, model.W2_, model.b2_)
        return float(net_loss_gradient(X, y, *params, reg=model.reg,
                                       backend=model.backend_)[0])
    return float(loss(X, y, model.W_, model.b_, reg=model.reg, backend=model.backend_))


# -- the two-layer network's options (issue 11) -------------------------------------
def _model_kind(model):
    return "mlp" if hasattr(model, "W1_") else "linear"


def _mlp_defaults(args):
    """Resolve the model-dependent defaults; mlp-only flags on the linear model are
    a usage error, not silently ignored."""
    if args.model == "linear":
        for flag, value in (("--hidden", args.hidden), ("--init-scale", args.init_scale),
                            ("--diagnostics", args.diagnostics or None)):
            if value is not None:
                raise UsageError(f"{flag} applies to --model mlp only")
    if args.iters is None:
        args.iters = 10_000 if args.model == "mlp" else 200  # the case study; the notebook


def _mlp_model(args, tol, backend, seed):
    from .models import TwoLayerNet

    return TwoLayerNet(hidden=args.hidden or 100, solver=args.solver, lr=args.lr,
                       reg=args.reg, max_iter=args.iters, tol=tol,
                       init_scale=args.init_scale or 0.01, diagnostics=args.diagnostics,
                       backend=backend, random_state=seed)


def _mlp_json(args, model):
    if args.model != "mlp":
        return {"model": "linear"}
    diagnostics = getattr(model, "diagnostics_", None)
    if diagnostics is not None:  # strict JSON has no inf (a ratio over zero weights)
        diagnostics = {key: [v if math.isfinite(v) else None for v in values]
                       for key, values in diagnostics.items()}
    return {"model": "mlp", "hidden": model.hidden, "init_scale": model.init_scale,
            "diagnostics": diagnostics}


def _print_diagnostics(args, model):
    """The notebook's loss lines, each with the diagnostics of that evaluation."""
    if not args.diagnostics or not args.print_every:
        return
    d = model.diagnostics_
    for i in range(0, len(model.loss_history_), args.print_every):
        print(f"iteration {i}: loss {model.loss_history_[i]:f}  "
              f"dead ReLUs {100 * d['dead_fraction'][i]:3.0f}%  "
              f"|dW1| {d['grad_norm_W1'][i]:.2e}  |dW2| {d['grad_norm_W2'][i]:.2e}  "
              f"update/weight W1 {d['update_ratio_W1'][i]:.1e}  "
              f"W2 {d['update_ratio_W2'][i]:.1e}")


def _run_backends(args):
    rows = [backend_info(name) for name in list_backends()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':<18}{'available':<11}{'version':<12}{'device':<28}reason")
    for r in rows:
        print(f"{r['name']:<18}{'yes' if r['available'] else 'no':<11}{r['version']:<12}"
              f"{r['device']:<28}{r['reason']}")
    return 0


def main(argv=None):
    """Entry point of the ``fastsoftmax`` command; returns the exit status."""
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version
            return exc.code
        args.argv = sys.argv[1:] if argv is None else list(argv)
        return args.run(args)
    except RunFailed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        detail = " ".join(str(exc).split())
        print(f"{PROG}: error: out of memory{': ' + detail if detail else ''}; "
              "try a smaller problem", file=sys.stderr)
        return 2
    except (UsageError, ValueError, TypeError, BackendUnavailableError, ImportError,
            OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
