"""What the numba backend costs the first time a process uses it, and saying so.

Two things ``"auto"`` and a waiting user need to know about the Numba kernels:

* whether compiling them is still ahead (``cache_looks_warm``): Numba caches
  compiled kernels on disk (``cache=True``), in ``__pycache__`` beside
  ``numba.py`` or under ``$NUMBA_CACHE_DIR``; a process that finds them there
  loads them in a fraction of a second, one that does not compiles for seconds;
* whether a compile is running now: ``install_notice`` registers a listener for
  Numba's ``numba:compile`` event, which fires only when Numba really compiles
  (not when it loads from the cache), and prints one line on stderr the first
  time one of fastsoftmax's kernels starts compiling in this process.

The costs are measured on the reference machine (docs/benchmarks.md, "Where
auto switches to numba"); they only need to be right to a factor of two.
"""

from __future__ import annotations

import glob
import os
import sys

# A new process on the reference machine (2 cores): ``import numba`` and the
# backend's load take ~0.35 s; the first call then loads the kernels from the
# disk cache in ~0.35 s, or compiles them: ~6 s (serial kernel, N <= 32,768),
# ~9 s (parallel kernel).
LOAD_S = 0.35
CACHED_FIRST_CALL_S = 0.35
COMPILE_S = 6.0
COMPILE_PARALLEL_S = 9.0

_MODULE = "fastsoftmax.backends.numba"
_installed = False
_noticed = False
_ready = False  # sticky: once a kernel is in the process it stays
_cache_warm = None  # looked up once per process


def _source():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "numba.py")


def cache_looks_warm():
    """Whether Numba's disk cache holds kernels of ``numba.py`` newer than its source.

    Looks where Numba looks first (``$NUMBA_CACHE_DIR``, else ``__pycache__``
    beside the source) without importing Numba. A cache for other argument
    types, or one Numba rejects, still compiles: this can only err towards
    ``numba`` once per new signature.
    """
    source = _source()
    try:
        stamp = os.path.getmtime(source)
    except OSError:
        return False
    folder = os.environ.get("NUMBA_CACHE_DIR")
    pattern = ("**/numba._loss_gradient_narrow*.nbi" if folder
               else "numba._loss_gradient_narrow*.nbi")
    root = folder or os.path.join(os.path.dirname(source), "__pycache__")
    return any(os.path.getmtime(p) >= stamp
               for p in glob.glob(os.path.join(root, pattern), recursive=True))


def one_off_s(loaded):
    """Seconds a process still pays before its first numba call returns."""
    global _cache_warm
    if _cache_warm is None:
        _cache_warm = cache_looks_warm()
    first = CACHED_FIRST_CALL_S if _cache_warm else COMPILE_S
    return first + (0.0 if loaded else LOAD_S)


def kernels_ready():
    """Whether any of fastsoftmax's Numba kernels is compiled or loaded in this process."""
    global _ready
    if not _ready:
        module = sys.modules.get(_MODULE)
        _ready = module is not None and any(
            getattr(v, "signatures", None) and hasattr(v, "py_func")
            for v in vars(module).values())
    return _ready


def install_notice():
    """Print ``compiling the numba kernels once, ~N s`` on stderr at the first compile.

    Idempotent; a no-op when Numba's event API is missing.
    """
    global _installed
    if _installed:
        return
    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - older Numba: no notice
        return

    class _Notice(event.Listener):
        def on_start(self, ev):
            global _noticed
            dispatcher = (ev.data or {}).get("dispatcher")
            func = getattr(dispatcher, "py_func", None)
            if _noticed or getattr(func, "__module__", None) != _MODULE:
                return
            _noticed = True
            parallel = bool(getattr(dispatcher, "targetoptions", {}).get("parallel"))
            seconds = COMPILE_PARALLEL_S if parallel else COMPILE_S
            print(f"fastsoftmax: compiling the numba kernels once, ~{seconds:.0f} s "
                  "(later runs load them from the disk cache)", file=sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    event.register("numba:compile", _Notice())
    _installed = True
