"""The ``fastsoftmax`` command line: ``train``, ``backends`` and ``bench``.

Errors a user can cause (a bad flag, an unusable backend, bad values) print one
line ``fastsoftmax: error: ...`` on stderr and exit with status 2 -- never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
import warnings

from .backends import BackendUnavailableError, backend_info, get_backend, list_backends

PROG = "fastsoftmax"


class UsageError(Exception):
    """A mistake on the command line, reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block."""

    def error(self, message):
        raise UsageError(message)


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _float_at_least(minimum, *, strict=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>' if strict else '>='} {minimum:g}, got {text}")
        return value
    return parse


def _backend_choice(text):
    if text != "auto" and text not in list_backends():
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; known: auto, {', '.join(list_backends())}")
    return text


def build_parser():
    parser = _Parser(prog=PROG, description="Fast softmax-classifier kernels on NumPy, "
                     "Numba and CuPy: train on the spiral, list backends, benchmark.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train", help="train the softmax classifier on the spiral (the notebook's experiment)",
        description="Full-batch gradient descent on the cs231n spiral. With no flags it "
                    "reproduces the notebook: 300 points, 3 classes, 200 steps of size 1.0.")
    train.add_argument("--backend", type=_backend_choice, default=None,
                       help="backend name (default: $FASTSOFTMAX_BACKEND, else auto)")
    train.add_argument("--n-per-class", type=_int_at_least(1), default=100,
                       help="points per class (default 100)")
    train.add_argument("--classes", type=_int_at_least(1), default=3,
                       help="number of classes K (default 3)")
    train.add_argument("--features", type=_int_at_least(2), default=2,
                       help="number of features D (default 2; more embeds the spiral)")
    train.add_argument("--noise", type=_float_at_least(0.0), default=0.2,
                       help="angular noise of the spiral (default 0.2)")
    train.add_argument("--solver", choices=("gd", "lbfgs"), default="gd",
                       help="gd: the notebook's gradient descent (default); lbfgs: SciPy's "
                            "L-BFGS-B to the optimum")
    train.add_argument("--iters", type=_int_at_least(1), default=200,
                       help="most iterations: gradient steps, or L-BFGS iterations "
                            "(default 200)")
    train.add_argument("--tol", type=_float_at_least(0.0), default=None,
                       help="stop when the largest gradient entry is <= TOL (default: 0 for "
                            "gd, which runs every step as the notebook; 1e-4 for lbfgs)")
    train.add_argument("--lr", type=_float_at_least(0.0, strict=True), default=1.0,
                       help="step size (default 1.0)")
    train.add_argument("--reg", type=_float_at_least(0.0), default=1e-3,
                       help="L2 regularisation strength (default 1e-3)")
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument("--seed", type=_int_at_least(0), default=None,
                       help="seed for the data and the initial weights "
                            "(default: drawn at random and reported)")
    train.add_argument("--print-every", type=_int_at_least(0), default=10,
                       help="print the loss every N steps (0: never; default 10)")
    train.add_argument("--plot", metavar="PATH", default=None,
                       help="write the decision regions and the loss curve to a PNG")
    train.add_argument("--json", action="store_true",
                       help="print exactly one JSON object on stdout instead of text")
    _add_dask_flags(train)
    train.set_defaults(run=_run_train)

    make_data = sub.add_parser(
        "make-data", help="write a spiral of any size to a Zarr store, block by block",
        description="Generate the spiral block by block (on Dask) and write it to a Zarr v3 "
                    "store that 'train --data' and fastsoftmax.load_zarr read back.")
    make_data.add_argument("--out", metavar="PATH", required=True,
                           help="the store to write (a directory, PATH.zarr by convention)")
    make_data.add_argument("--n-per-class", type=_int_at_least(1), default=100,
                           help="points per class (default 100)")
    make_data.add_argument("--classes", type=_int_at_least(1), default=3,
                           help="number of classes K (default 3)")
    make_data.add_argument("--features", type=_int_at_least(2), default=2,
                           help="number of features D (default 2)")
    make_data.add_argument("--noise", type=_float_at_least(0.0), default=0.2,
                           help="angular noise of the spiral (default 0.2)")
    make_data.add_argument("--dtype", choices=("float64", "float32"), default="float32")
    make_data.add_argument("--seed", type=_int_at_least(0), default=0,
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
    group.add_argument("--workers", type=_int_at_least(1), default=2,
                       help="worker processes of the local cluster (default 2)")
    group.add_argument("--threads-per-worker", type=_int_at_least(1), default=1,
                       help="threads per local worker, one kernel thread each (default 1)")
    group.add_argument("--chunk-rows", type=_int_at_least(1), default=None,
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


def _progress_bar(total, enabled):
    """A tqdm bar on a terminal for runs longer than a second, else None."""
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="training", unit="step", delay=1.0, file=sys.stderr,
                leave=False)


def _run_train(args):
    if args.plot is not None:
        from .plotting import _import_figure

        _import_figure()  # fail before training, not after
    backend = get_backend(args.backend)
    if backend.name == "dask" and args.plot is not None:
        raise UsageError("--plot is not available with --backend dask (it would gather X)")
    with _dask_session(args, backend):
        return _train(args, backend)


def _train(args, backend):
    from .datasets import make_spiral
    from .models import ConvergenceWarning, SoftmaxClassifier

    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    if backend.name == "dask":
        from ._dask_data import training_data

        X, y = training_data(args.data, n_per_class=args.n_per_class, n_classes=args.classes,
                             n_features=args.features, noise=args.noise, seed=seed,
                             dtype=args.dtype, chunk_rows=args.chunk_rows, persist=args.persist)
        if args.data is not None:  # the store's shape, not the flags'
            from ._dask_data import zarr_attrs

            args.features = X.shape[1]
            args.classes = zarr_attrs(args.data).get("n_classes", args.classes)
    else:
        X, y = make_spiral(args.n_per_class, args.classes, n_features=args.features,
                           noise=args.noise, shuffle=False, seed=seed, dtype=args.dtype,
                           backend=backend)
    n = X.shape[0]
    if not args.json:
        print(f"training on {n:,} spiral points ({args.classes} classes, {args.features} "
              f"features, {args.dtype}) with backend {backend.name}, seed {seed}")

    bar = _progress_bar(args.iters, enabled=True)
    first_step = []

    def report(i, loss):
        if i == 0:  # the first step holds any JIT compile or kernel cache load
            first_step.append(time.perf_counter() - start)
        if bar is not None:
            bar.update(1)
        if not args.json and args.print_every and i % args.print_every == 0:
            line = f"iteration {i}: loss {float(loss):f}"
            print(line) if bar is None else bar.write(line)

    tol = args.tol if args.tol is not None else (0.0 if args.solver == "gd" else 1e-4)
    model = SoftmaxClassifier(solver=args.solver, lr=args.lr, reg=args.reg,
                              max_iter=args.iters, tol=tol, backend=backend,
                              random_state=seed)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # Reported in the output (converged, iterations), not as a warning.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y, callback=report)
    finally:
        if bar is not None:
            bar.close()
    train_time = time.perf_counter() - start
    accuracy = model.score(X, y)

    if args.plot is not None:
        from .plotting import plot_training

        plot_training(model, X, y, args.plot,
                      title=f"fastsoftmax train: {n:,} points, backend {backend.name}")
    if args.json:
        print(json.dumps({
            "backend": backend.name, "dtype": args.dtype, "seed": seed,
            "n_samples": n, "n_features": args.features, "n_classes": args.classes,
            "noise": args.noise, "iters": args.iters, "lr": args.lr, "reg": args.reg,
            "solver": args.solver, "tol": tol, "n_iter": model.n_iter_,
            "n_evals": model.n_evals_, "converged": model.converged_,
            "final_loss": model.loss_history_[-1], "objective": _objective(model, X, y),
            "accuracy": accuracy,
            "train_seconds": train_time, "first_step_seconds": first_step[0],
            "loss_history": model.loss_history_,
            "plot": args.plot,
        }))
    else:
        print(f"training accuracy: {accuracy:.2f}")
        if args.solver == "gd":
            print(f"({model.n_iter_} steps in {train_time:.3f} s; the first step, with any "
                  f"JIT compile or cache load, took {first_step[0]:.3f} s)")
        else:
            print(f"(L-BFGS: {model.n_iter_} iterations, {model.n_evals_} evaluations in "
                  f"{train_time:.3f} s, {'converged' if model.converged_ else 'NOT converged'}"
                  f"; objective {_objective(model, X, y):.10g})")
        if args.plot is not None:
            print(f"wrote {args.plot}")
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
        from ._dask_data import write_spiral

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

    return float(loss(X, y, model.W_, model.b_, reg=model.reg, backend=model.backend_))


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
        args = parser.parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else list(argv)
        return args.run(args)
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
