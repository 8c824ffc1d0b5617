"""``fastsoftmax bench``: the argparse front end of the benchmark engine."""

from __future__ import annotations

import argparse
import math
import os
import sys

from ..cli import _int_at_least
from ._rows import OPS, PEERS

_DTYPES = ("float32", "float64")


def _items(text, what):
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, "
                                         f"got {text!r}")
    return items


def _whole(text, minimum, what):
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} like 1e6, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or not minimum <= value < 2**31:
        raise argparse.ArgumentTypeError(
            f"{what} must be a whole number from {minimum} to 2**31-1, got {text!r}")
    return int(value)


def _whole_list(minimum, what):
    def parse(text):
        return sorted({_whole(t, minimum, what) for t in _items(text, what + "s")})
    return parse


def _choices_list(choices, what, *, extra=()):
    def parse(text):
        items = _items(text, what)
        if len(items) == 1 and items[0] in extra:
            return items[0]
        for item in items:
            if item not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what[:-1]} {item!r}; choose from {', '.join((*extra, *choices))}")
        return list(dict.fromkeys(items))
    return parse


def _backend_list(text):
    from ..backends import list_backends

    return _choices_list(list_backends(), "backends", extra=("all", "none"))(text)


DESCRIPTION = """\
Time fastsoftmax's backends and the peers people use instead -- the cs231n
notebook's NumPy code, scikit-learn's fused multinomial loss, PyTorch autograd,
JAX jit -- side by side on the same spiral data, in one run (each row in a
worker process of its own, cell by cell, so no library's state skews another's
times). Per cell: the
median and min of --repeat timed repeats after a warm-up call (reported
separately as 'first call'), rows/s, GB/s of the input read once, the time
relative to the numpy backend and to a floor measured in the same run
(max of a streaming read of the input and one exp pass over N x K), and a
cross-check of every row's result against the numpy backend."""

EPILOG = """\
examples:
  fastsoftmax bench --quick --json out.json --plot out.png
  fastsoftmax bench --ops loss_gradient,train --sizes 1e4,1e5,1e6 --dtype float32,float64
  fastsoftmax bench --ops fit --sizes 3e6 --backends numba,numpy --peers sklearn,notebook
  fastsoftmax bench --classes 10,100 --features 64 --sizes 1e5 --backends numpy,numba --peers none
See docs/benchmarks.md for the definitions."""


def add_bench_parser(subparsers):
    """Add the ``bench`` command to ``fastsoftmax``'s sub-command parsers."""
    p = subparsers.add_parser(
        "bench", help="time backends and peers side by side on scaled-up spirals",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", type=_choices_list(OPS, "ops", extra=("all",)), default=None,
                   help=f"ops to time: {', '.join(OPS)} or all (default loss_gradient; "
                        "train is a full 200-step fit; fit is a fit to the optimum: "
                        "L-BFGS vs scikit-learn's LogisticRegression)")
    p.add_argument("--sizes", type=_whole_list(1, "size"), default=None,
                   help="numbers of points N (default 1e3,1e4,1e5,1e6,1e7; "
                        "--quick: 1e3,1e4,1e5,1e6)")
    p.add_argument("--classes", type=_whole_list(2, "class count"), default=[3],
                   help="numbers of classes K (default 3)")
    p.add_argument("--features", type=_whole_list(2, "feature count"), default=[2],
                   help="numbers of features D (default 2)")
    p.add_argument("--dtype", type=_choices_list(_DTYPES, "dtypes"), default=["float64"],
                   help="float32, float64 or both, comma-separated (default float64)")
    p.add_argument("--backends", type=_backend_list, default="all",
                   help="fastsoftmax backends to time, comma-separated, all or none "
                        "(default: all that are available here)")
    p.add_argument("--peers", type=_choices_list(PEERS, "peers", extra=("all", "none")),
                   default="all",
                   help=f"peers to time: {', '.join(PEERS)}, all or none (default all; "
                        "those not installed are skipped with a note)")
    p.add_argument("--repeat", type=_int_at_least(1), default=7,
                   help="timed repeats per cell after the warm-up (default 7)")
    p.add_argument("--quick", action="store_true",
                   help="a small sweep (sizes 1e3..1e6, no memory measurement) that "
                        "finishes in well under a minute")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="measure each row's extra peak memory for loss_gradient at the "
                        "largest size in a fresh process (default: on, off with --quick)")
    p.add_argument("--in-process", action="store_true",
                   help="run every row in this process instead of one worker process per "
                        "row (quicker to start; the rows then share the allocator and thread "
                        "pools, which skews their times)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the spiral (default 0)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="write the machine, the library versions and every cell as JSON")
    p.add_argument("--plot", metavar="PATH", default=None,
                   help="write a PNG: log-log time vs N per op and shape, one line per row")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only on a terminal anyway)")
    p.set_defaults(run=run_bench_command)
    return p


def _check_output(path, what):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"cannot write the {what} {path}: no directory {folder}")
    if not os.access(folder, os.W_OK):
        raise OSError(f"cannot write the {what} {path}: {folder} is not writable")


def config_from_args(args):
    from ._engine import QUICK_SIZES, BenchConfig

    sizes = args.sizes or list(QUICK_SIZES if args.quick else BenchConfig().sizes)
    memory = (not args.quick) if args.memory is None else args.memory
    ops = list(OPS) if args.ops == "all" else (args.ops or ["loss_gradient"])
    backends = {"all": None, "none": []}.get(args.backends, args.backends) \
        if isinstance(args.backends, str) else args.backends
    peers = {"all": None, "none": []}.get(args.peers, args.peers) \
        if isinstance(args.peers, str) else args.peers
    if backends == [] and peers == []:
        raise ValueError("nothing to run: --backends none and --peers none")
    return BenchConfig(ops=ops, sizes=sizes, classes=args.classes, features=args.features,
                       dtypes=args.dtype, backends=backends, peers=peers, repeat=args.repeat,
                       memory=memory, quick=args.quick, seed=args.seed,
                       isolate=not args.in_process, progress=not args.no_progress)


def run_bench_command(args):
    from ._engine import run_bench
    from ._report import format_footer, plot_result, write_json

    config = config_from_args(args)
    if args.json is not None:
        _check_output(args.json, "JSON file")
    if args.plot is not None:
        _check_output(args.plot, "plot")
        from ..plotting import _import_figure

        _import_figure()  # fail before measuring, not after
    result = run_bench(config, echo=True)
    argv = getattr(args, "argv", None)
    result["command"] = " ".join(["fastsoftmax", *(sys.argv[1:] if argv is None else argv)])
    print(format_footer(result), end="", flush=True)
    if args.json is not None:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot is not None:
        if result["cells"]:
            plot_result(result, args.plot)
            print(f"wrote {args.plot}")
        else:
            print(f"no cells measured: {args.plot} not written")
    return 130 if result["interrupted"] else 0
