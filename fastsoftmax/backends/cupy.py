"""The ``cupy`` backend: the Array-API reference on CuPy, plus fused CUDA kernels.

Every op runs on the GPU with the arrays on the device. Most of them are the
reference itself, run unchanged through ``array_api_compat.cupy``; the hot ones
are CUDA kernels (sources in ``cuda/*.cu`` beside this file, compiled by CuPy's
NVRTC on first use and cached on disk by CuPy):

* ``loss_gradient`` (and ``loss``): one fused pass over ``X``, ``y`` (and
  ``sample_weight``) with the scores, the stable softmax and the per-thread
  partial ``dW``, ``db`` and loss in registers, a deterministic block reduction
  in double, and a second tiny pass that adds the blocks in a fixed order. The
  value checks ride along as a flag. For shapes whose registers would not fit
  (``K`` or ``D * K`` large, see ``loss_gradient_path``) it falls back to cuBLAS
  for ``X @ W`` and ``X.T @ dscores`` around one row kernel, which costs an
  ``N x K`` buffer.
* ``softmax``, ``log_softmax``, ``logsumexp`` over the last axis, and
  ``cross_entropy(_gradient)``: row kernels, one pass over ``S``.

float32 in, float32 out, and every sum over the N rows in float64, as in the
reference: inside the kernels (per-thread partial sums included) and on the
host side (``sum_rows``, ``gemm_tn_f64``: plain functions of an array namespace,
so the tests run them on NumPy without a GPU).

The kernels take raw device pointers, so every entry point first makes its
arguments agree (``_linear_arrays``, ``_score_arrays``): the public API's
promotion rule for dtypes (``W``, ``b`` and ``sample_weight`` never reach a
kernel in another dtype than ``X``), and a ``ValueError`` naming the argument
for a shape that would make a kernel read out of bounds.

Nothing here imports CuPy at import time: ``load()`` does, so ``import
fastsoftmax`` stays free of optional libraries. docs/backends-cupy.md has the
kernel design.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np

from ._base import Backend, BackendUnavailableError, to_numpy

CUDA_DIR = Path(__file__).with_name("cuda")
CUDA_SOURCES = ("loss_gradient.cu", "rows.cu")
NVRTC_OPTIONS = ("--std=c++17",)
# What CuPy (13, 14) adds to those for a RawModule compiled by NVRTC, from its
# sources: cupy/cuda/compiler.py ``_compile_with_cache_cuda`` appends
# ``-ftz=true`` after the caller's options (on every compile: the kernels must
# be right with it), ``compile_using_nvrtc`` adds
# ``--device-as-default-execution-space`` (CuPy 14.2: on every non-jitify CUDA
# compile), and the arch is the device's (``-arch=sm_90`` on an H100/H200). ``-ftz=true`` flushes float32
# subnormal results to zero: a float32 exp below ~1.2e-38 counts as 0.
# tests/test_cuda_sources.py compiles with these (nvcc spells them the same,
# except the execution-space one, which nvcc lacks and which only matters to a
# function left unannotated: nvcc without it is the stricter check).
CUPY_NVRTC_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
# The float32 wide path casts X and dscores to float64 for X.T @ dscores in
# chunks of rows, so its extra memory stays bounded (~256 MiB of float64).
WIDE_CHUNK_BYTES = 1 << 28

# The kernels' template arguments for each dtype (see cuda/common.cuh).
FLOAT_TYPES = {"float32": "float", "float64": "double", "float16": "half_t"}
LABEL_TYPES = {
    "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
    "int64": "long long", "uint64": "unsigned long long",
}

# pyproject.toml's extras, by CUDA major version: cupy-cuda12x, cupy-cuda13x.
# "cuda" is an alias of "cuda12": a CUDA 12 build also runs on a CUDA 13 driver.
CUDA_EXTRAS = {12: "cuda12", 13: "cuda13"}

# Flag bits, as in cuda/common.cuh.
BAD_X, BAD_LABEL, BAD_WEIGHT, BAD_PARAM, BAD_WSUM, BAD_SCORE = 1, 2, 4, 8, 16, 32
POISON = BAD_LABEL | BAD_WEIGHT | BAD_WSUM

FUSED_BLOCK = 256  # FS_BLOCK in loss_gradient.cu
ROW_BLOCK = 256  # FS_ROW_BLOCK in rows.cu
_NULL = np.uint64(0)  # a null device pointer, passed by value


def _fits_registers(d, k, dtype):
    """Whether the fused kernel keeps ``(D, K)`` in registers without spilling.

    The limits are where ``nvcc -arch=sm_90 -ftz=true -Xptxas -v`` still reports
    no spills (tests/test_cuda_sources.py checks the corners): each thread holds
    W and b (in the input's arithmetic type), the row's K scores, and its partial
    dW, db, loss and weight sum in double (D*K + K + 2 of them, two registers each).
    """
    if dtype == "float16":
        return k <= 16 and d * k <= 32
    return k <= 24 and d * k <= 48


def loss_gradient_path(dtype, d, k):
    """Which implementation ``loss_gradient`` runs for ``X`` of ``dtype`` (a name)
    and ``W`` of shape ``(d, k)``.

    ``"fused"``: the one-pass CUDA kernel (any float dtype, ``(D, K)`` in
    registers); ``"wide"``: cuBLAS, one row kernel, cuBLAS (float32, float64);
    ``"reference"``: the Array-API reference on CuPy (float16 beyond the registers).
    Pure, so the tests route shapes without a GPU.

    Examples
    --------
    >>> loss_gradient_path("float32", 2, 3), loss_gradient_path("float32", 100, 3)
    ('fused', 'wide')
    """
    if dtype in FLOAT_TYPES and _fits_registers(d, k, dtype):
        return "fused"
    return "wide" if dtype in ("float32", "float64") else "reference"


def sum_rows(xp, a, axis=None):
    """Sum over the rows of ``a`` accumulated in float64; the result is float64.

    ``xp`` is ``cupy`` in the backend (``numpy`` in the tests: both accumulate
    in the ``dtype=`` asked for). A float32 sum would round at every one of the
    N additions (CuPy's ``f->f`` reduction); the caller casts back once.
    """
    return xp.sum(a, axis=axis, dtype=xp.float64)


def gemm_tn_f64(xp, X, G, chunk_bytes=WIDE_CHUNK_BYTES):
    """``X.T @ G`` summed over the N rows in float64, as the reference does it.

    float64 inputs: one product. float32 (or mixed): each chunk of rows is cast
    to float64 *before* its product (a float32 GEMM would add N products in
    float32) and the (D, K) chunk results are added in float64, so the extra
    memory is one chunk of float64 copies, not all of X.
    """
    if X.dtype == xp.float64 and G.dtype == xp.float64:
        return X.T @ G
    n = X.shape[0]
    step = max(1, chunk_bytes // (8 * (X.shape[1] + G.shape[1])))
    total = None
    for lo in range(0, n, step):
        part = X[lo:lo + step].astype(xp.float64).T @ G[lo:lo + step].astype(xp.float64)
        total = part if total is None else total + part
    return total


def wide_outputs(xp, X, G, rows, W, wsum, reg):
    """The wide path's sums over N, in float64: ``(loss, dW, db)`` from X, the
    unnormalised ``G = w_i (P - onehot)`` and the row losses ``w_i l_i``.

    Every sum over the rows accumulates in float64 (``gemm_tn_f64``,
    ``sum_rows``); the normalisation by ``wsum`` and the L2 term too. The caller
    casts to the input dtype. ``xp`` as for ``sum_rows``.
    """
    W64 = W.astype(xp.float64)
    dW = gemm_tn_f64(xp, X, G) / wsum + reg * W64
    db = sum_rows(xp, G, axis=0) / wsum
    value = sum_rows(xp, rows) / wsum + 0.5 * reg * sum_rows(xp, W64 * W64)
    return value, dW, db


def kernel_dtypes(y, sample_weight=None, **arrays):
    """The dtypes a kernel runs in for these arguments, after the public API's rules.

    The kernels read raw pointers, so the float arguments (``arrays``: X, W, b;
    or S) must share one dtype: the promotion of theirs (``numpy.result_type``,
    integers and bools as float64), as ``_validate.linear_inputs`` does;
    ``sample_weight`` follows it (``_validate.weight_array``). Labels must be an
    integer dtype the kernels are instantiated for. Returns ``(dtype,
    label_dtype)`` as names; a ``TypeError`` naming the argument otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> f32, f64 = np.zeros(1, np.float32), np.zeros(1)
    >>> kernel_dtypes(np.zeros(1, np.int32), X=f32, W=f64, b=f64)
    ('float64', 'int32')
    """
    dtypes = []
    for name, a in (*arrays.items(), ("sample_weight", sample_weight)):
        if a is None:
            continue
        dt = np.dtype(a.dtype)
        if dt.kind in "biu":
            dt = np.dtype(np.float64)
        elif dt.kind != "f" or dt.name not in FLOAT_TYPES:
            raise TypeError(f"{name} must be a real floating array, got dtype {dt}")
        if name != "sample_weight":
            dtypes.append(dt)
    label = np.dtype(y.dtype)
    if label.name not in LABEL_TYPES:
        raise TypeError(f"y must hold integer class labels, got dtype {label}")
    return np.result_type(*dtypes).name, label.name


def fused_kernel_names(dtype, label_dtype, d, k):
    """The two kernels of the fused loss_gradient for these dtypes and shape."""
    t, lab = FLOAT_TYPES[dtype], LABEL_TYPES[label_dtype]
    return (f"fused_loss_gradient<{t}, {lab}, {d}, {k}>", f"finalize_loss_gradient<{t}>")


def softmax_kernel_name(dtype):
    return f"softmax_rows<{FLOAT_TYPES[dtype]}>"


def cross_entropy_kernel_name(dtype, label_dtype):
    return f"cross_entropy_rows<{FLOAT_TYPES[dtype]}, {LABEL_TYPES[label_dtype]}>"


@functools.cache
def kernel_source(name):
    """A ``.cu`` file with its ``#include "..."`` of local headers inlined.

    Inlining (rather than an include path) makes the header part of the source
    text, which is what CuPy's kernel cache is keyed on.
    """
    lines = []
    for line in (CUDA_DIR / name).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#include \""):
            header = stripped.split("\"")[1]
            lines.append(kernel_source(header))
        elif stripped != "#pragma once":
            lines.append(line)
    return "\n".join(lines) + "\n"


def check_shapes(X=None, y=None, W=None, b=None, sample_weight=None, *, S=None):
    """``ValueError`` naming the argument unless the shapes agree (S or X: (N, D),
    y and sample_weight: (N,), W: (D, K), b: (K,)); a kernel would read past them.

    The public API checks the same (``_validate``); a direct call on the backend
    object gets the check here, O(1), before any pointer reaches a kernel.
    """
    lead, lead_name = (S, "S") if S is not None else (X, "X")
    if len(lead.shape) != 2:
        raise ValueError(f"{lead_name} must be 2-dimensional, got shape {tuple(lead.shape)}")
    n, d = lead.shape
    if W is not None:
        if len(W.shape) != 2 or W.shape[0] != d:
            raise ValueError(f"W must have shape (D, K) = ({d}, K), got {tuple(W.shape)}")
        if b is None or tuple(b.shape) != (W.shape[1],):
            got = None if b is None else tuple(b.shape)
            raise ValueError(f"b must have shape (K,) = ({W.shape[1]},), got {got}")
    for name, a in (("y", y), ("sample_weight", sample_weight)):
        if a is not None and tuple(a.shape) != (n,):
            raise ValueError(f"{name} must have shape (N,) = ({n},), got {tuple(a.shape)}")


def _group_size(k):
    """Threads per row in the row kernels: ~8 columns each, 1 to 256."""
    g = 1
    while g < ROW_BLOCK and g * 8 < k:
        g *= 2
    return g


def _one_line(exc):
    return " ".join(str(exc).split())


def _cuda_version(v):
    return f"{v // 1000}.{v % 1000 // 10}"


def _import_cupy():
    """CuPy, or ``BackendUnavailableError`` saying why it cannot run here."""
    try:
        import cupy
    except Exception as exc:
        if importlib.util.find_spec("cupy") is None:
            raise BackendUnavailableError(
                "CuPy is not installed; on a machine with an NVIDIA GPU install it with "
                "\"pip install 'fastsoftmax[cuda]'\""
            ) from None
        raise BackendUnavailableError(  # a broken install: missing shared libraries, ...
            f"CuPy is installed but cannot be imported (broken CuPy or CUDA install): "
            f"{_one_line(exc)}"
        ) from None
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
        reason = f"CuPy {cupy.__version__} is installed but CUDA cannot start: {_one_line(exc)}"
        try:
            driver, needed = runtime.driverGetVersion(), runtime.runtimeGetVersion()
        except Exception:
            driver = needed = None
        if driver == 0:
            reason += " (no NVIDIA driver is installed)"
        elif driver and needed and driver // 1000 < needed // 1000:
            fix = "update the driver"
            if driver // 1000 in CUDA_EXTRAS:  # a CuPy built for the driver's CUDA exists
                fix += (f", or use CuPy for CUDA {driver // 1000}: "
                        f"\"pip install 'fastsoftmax[{CUDA_EXTRAS[driver // 1000]}]'\"")
            reason += (f" (the NVIDIA driver is too old: it supports CUDA {_cuda_version(driver)}"
                       f", this CuPy needs CUDA {_cuda_version(needed)}; {fix})")
        raise BackendUnavailableError(reason) from None
    if count == 0:
        raise BackendUnavailableError(
            f"CuPy {cupy.__version__} is installed but there is no CUDA device"
        )
    return cupy


def _device_description(cupy):
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return (f"{name} (sm_{props['major']}{props['minor']}, CUDA runtime "
            f"{_cuda_version(runtime.runtimeGetVersion())}, driver "
            f"{_cuda_version(runtime.driverGetVersion())})")


class CupyBackend(Backend):
    """CuPy arrays on the current CUDA device; fused kernels for the hot ops."""

    def __init__(self, cupy, xp):
        super().__init__("cupy", xp, version=cupy.__version__,
                         device=_device_description(cupy))
        self._cupy = cupy
        self._modules = {}
        self._kernels = {}
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        self._sm_count = int(props["multiProcessorCount"])
        self._threads_per_sm = int(props["maxThreadsPerMultiProcessor"])
        self._regs_per_sm = int(props["regsPerMultiprocessor"])

    # -- arrays in and out -------------------------------------------------
    def owns(self, a):
        return isinstance(a, self._cupy.ndarray)

    def asarray(self, a):
        """``a`` on the current device: CuPy arrays as they are, CUDA arrays of
        other libraries through DLPack (no copy), anything else via the host."""
        if self.owns(a):
            return a
        dlpack_device = getattr(a, "__dlpack_device__", None)
        if dlpack_device is not None and dlpack_device()[0] == 2:  # kDLCUDA
            try:
                return self._cupy.from_dlpack(a)
            except (TypeError, RuntimeError, BufferError):
                pass  # e.g. a torch tensor that requires grad: take the copy below
        return self._cupy.asarray(to_numpy(a))

    def standard_normal(self, shape, *, seed, dtype):
        """Draws made on the device by CuPy's ``default_rng(seed)``.

        Deterministic for a seed, but not the numbers NumPy draws for it.
        """
        rng = self._cupy.random.default_rng(seed)
        return rng.standard_normal(shape, dtype=np.dtype(dtype))

    # -- kernels ---------------------------------------------------------
    def _kernel(self, source, names, index, block):
        """``(kernel, blocks_per_sm)`` for kernel ``names[index]`` of ``source``.

        One RawModule per set of template instances (CuPy caches the binary on
        disk); blocks per multiprocessor from the kernel's registers, so a
        grid-stride launch fills the GPU once and no more.
        """
        key = (source, names, index, block)
        hit = self._kernels.get(key)
        if hit is None:
            module = self._modules.get((source, names))
            if module is None:
                module = self._cupy.RawModule(code=kernel_source(source),
                                              options=NVRTC_OPTIONS,
                                              name_expressions=list(names))
                self._modules[(source, names)] = module
            kernel = module.get_function(names[index])
            regs = -(-int(kernel.num_regs) // 8) * 8 * block  # allocated per 8 registers
            per_sm = max(1, min(self._threads_per_sm // block, self._regs_per_sm // regs))
            hit = self._kernels[key] = (kernel, per_sm)
        return hit

    def _launch(self, source, names, index, block, work_blocks, args):
        kernel, per_sm = self._kernel(source, names, index, block)
        grid = int(max(1, min(work_blocks, per_sm * self._sm_count)))
        kernel((grid,), (block,), args)
        return grid

    @staticmethod
    def _aligned(*arrays):
        return all(a is None or a.data.ptr % 16 == 0 for a in arrays)

    def _raise_if_flagged(self, flag, mask=~0, **arrays):
        """Read the kernel's flag (one 4-byte copy, a sync) and word the error.

        The kernels only say *that* a value is bad; the generic check says which
        and how, exactly as every other backend does. A flag the generic check
        does not confirm (a score overflowing to inf from finite inputs) is not
        an input error, and the computed result stands.
        """
        if int(flag.get()[0]) & mask:
            self.check_values(**arrays)

    # -- row ops -------------------------------------------------------------
    def softmax(self, S, axis=-1):
        return self._softmax_rows(S, axis, 0) if self._row_kernel_fits(S, axis) \
            else super().softmax(S, axis)

    def log_softmax(self, S, axis=-1):
        return self._softmax_rows(S, axis, 1) if self._row_kernel_fits(S, axis) \
            else super().log_softmax(S, axis)

    def logsumexp(self, S, axis=-1):
        return self._softmax_rows(S, axis, 2) if self._row_kernel_fits(S, axis) \
            else super().logsumexp(S, axis)

    @staticmethod
    def _row_kernel_fits(S, axis):
        # Last axis only (other axes: the reference, which CuPy runs well enough);
        # float16 has no row kernel either.
        return (str(S.dtype) in ("float32", "float64") and axis % S.ndim == S.ndim - 1
                and S.size > 0)

    def _softmax_rows(self, S, axis, mode):
        cp = self._cupy
        k = S.shape[-1]
        S2 = cp.ascontiguousarray(S).reshape(-1, k)
        n = S2.shape[0]
        out = cp.empty((n,) if mode == 2 else (n, k), dtype=S.dtype)
        g = _group_size(k)
        self._launch("rows.cu", (softmax_kernel_name(str(S.dtype)),), 0, ROW_BLOCK,
                     -(-n // (ROW_BLOCK // g)),
                     (S2, out, np.int64(n), np.int32(k), np.int32(g), np.int32(mode)))
        return out.reshape(S.shape[:-1] if mode == 2 else S.shape)

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        return self._cross_entropy(S, y, reduction, sample_weight, False, check)[0]

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        return self._cross_entropy(S, y, reduction, sample_weight, True, check)

    def _score_arrays(self, S, y, w):
        """S, y, w as C-contiguous device arrays the row kernels can read: w in S's
        dtype (as ``_validate.weight_array`` casts it), labels of a kernel type,
        shapes that agree."""
        cp = self._cupy
        dtype, _ = kernel_dtypes(y, w, S=S)
        S, y = cp.ascontiguousarray(S, dtype=dtype), cp.ascontiguousarray(y)
        w = None if w is None else cp.ascontiguousarray(w, dtype=dtype)
        check_shapes(S=S, y=y, sample_weight=w)
        return S, y, w

    def _cross_entropy(self, S, y, reduction, w, need_grad, check):
        S, y, w = self._score_arrays(S, y, w)
        dtype = str(S.dtype)
        if dtype not in ("float32", "float64"):
            op = "cross_entropy_gradient" if need_grad else "cross_entropy"
            out = getattr(super(), op)(S, y, reduction=reduction, sample_weight=w, check=check)
            return out if need_grad else (out, None)
        cp = self._cupy
        n, k = S.shape
        mean = reduction == "mean"
        wsum = None
        if w is not None and (mean or check):
            wsum = sum_rows(cp, w)  # stays on the device: no sync
        scale = 1.0 / n if mean and w is None else 1.0
        rows = cp.empty(n, dtype=S.dtype)
        dS = cp.empty_like(S) if need_grad else None
        flag = cp.zeros(1, dtype=cp.uint32)
        g = _group_size(k)
        self._launch("rows.cu", (cross_entropy_kernel_name(dtype, str(y.dtype)),), 0,
                     ROW_BLOCK, -(-n // (ROW_BLOCK // g)), (
                         S, _NULL, y, _NULL if w is None else w,
                         _NULL if wsum is None else wsum, np.int32(mean), np.float64(scale),
                         rows, _NULL if dS is None else dS, np.int64(n), np.int32(k),
                         np.int32(g), flag))
        if check:  # -inf scores (masked classes) are legitimate here: not BAD_SCORE
            self._raise_if_flagged(flag, BAD_LABEL | BAD_WEIGHT | BAD_WSUM, y=y, n_classes=k,
                                   sample_weight=w)
        # "mean" rows are already scaled by 1/N or w_i/sum(w): the reduction is a
        # plain sum, accumulated in float64 and rounded once to S's dtype.
        value = rows if reduction == "none" else sum_rows(cp, rows).astype(S.dtype)
        return value, dS

    # -- the linear model ------------------------------------------------------
    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        # The fused pass costs the same with or without the gradients.
        return self.loss_gradient(X, y, W, b, reg=reg, sample_weight=sample_weight,
                                  check=check)[0]

    def _linear_arrays(self, X, y, W, b, w):
        """X, y, W, b, w as C-contiguous device arrays the kernels can read: one
        float dtype (``kernel_dtypes``), labels of a kernel type, shapes that agree."""
        cp = self._cupy
        dtype, _ = kernel_dtypes(y, w, X=X, W=W, b=b)
        X, W, b = (cp.ascontiguousarray(a, dtype=dtype) for a in (X, W, b))
        y = cp.ascontiguousarray(y)
        w = None if w is None else cp.ascontiguousarray(w, dtype=dtype)
        check_shapes(X, y, W, b, w)
        return X, y, W, b, w

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        X, y, W, b, w = self._linear_arrays(X, y, W, b, sample_weight)
        k = W.shape[1]
        path = loss_gradient_path(str(X.dtype), X.shape[1], k)
        if path == "reference":
            return super().loss_gradient(X, y, W, b, reg=reg, sample_weight=w, check=check)
        run = self._fused_loss_gradient if path == "fused" else self._wide_loss_gradient
        loss, dW, db, flag = run(X, y, W, b, w, float(reg))
        if check:
            self._raise_if_flagged(flag, X=X, W=W, b=b, y=y, n_classes=k, sample_weight=w)
        return loss, dW, db

    def _fused_loss_gradient(self, X, y, W, b, w, reg):
        cp = self._cupy
        n, d = X.shape
        k = W.shape[1]
        names = fused_kernel_names(str(X.dtype), str(y.dtype), d, k)
        kernel, per_sm = self._kernel("loss_gradient.cu", names, 0, FUSED_BLOCK)
        # Enough blocks to fill the GPU once, and at least ~4 rows per thread.
        nb = int(max(1, min(-(-n // (FUSED_BLOCK * 4)), per_sm * self._sm_count)))
        n_out = d * k + k + 2
        partials = cp.empty(n_out * nb, dtype=cp.float64)
        flag = cp.zeros(1, dtype=cp.uint32)
        loss = cp.empty((), dtype=X.dtype)
        dW = cp.empty((d, k), dtype=X.dtype)
        db = cp.empty((k,), dtype=X.dtype)
        vec = np.int32(self._aligned(X, y, w))
        kernel((nb,), (FUSED_BLOCK,), (X, y, _NULL if w is None else w, W, b, np.int64(n),
                                       vec, partials, flag))
        # Exactly one block per output (dW..., db..., loss): not a grid-stride kernel.
        finalize, _ = self._kernel("loss_gradient.cu", names, 1, FUSED_BLOCK)
        finalize((n_out - 1,), (FUSED_BLOCK,), (
            partials, np.int32(nb), np.int32(d), np.int32(k), W, b, np.float64(reg),
            np.float64(n), np.int32(w is not None), flag, loss, dW, db))
        return loss, dW, db, flag

    def _wide_loss_gradient(self, X, y, W, b, w, reg):
        """K (or D * K) too large for registers: cuBLAS, one row kernel, cuBLAS.

        ``S = X @ W`` (N x K), then the row kernel adds b and overwrites S with
        the unnormalised ``w_i (P - onehot)``; ``dW = X.T @ that``. Memory is
        O(N K); the normalisation and the L2 term are tiny ops on (D, K) arrays.
        """
        cp = self._cupy
        n, k = X.shape[0], W.shape[1]
        dtype = X.dtype
        S = X @ W
        rows = cp.empty(n, dtype=dtype)
        flag = cp.zeros(1, dtype=cp.uint32)
        g = _group_size(k)
        self._launch("rows.cu", (cross_entropy_kernel_name(str(dtype), str(y.dtype)),), 0,
                     ROW_BLOCK, -(-n // (ROW_BLOCK // g)), (
                         S, b, y, _NULL if w is None else w, _NULL, np.int32(0),
                         np.float64(1.0), rows, S, np.int64(n), np.int32(k), np.int32(g), flag))
        if w is None:
            wsum = float(n)
        else:
            wsum = sum_rows(cp, w)
            flag |= (~(wsum > 0)).astype(cp.uint32) * np.uint32(BAD_WSUM)
        value, dW, db = wide_outputs(cp, X, S, rows, W, wsum, reg)
        value = cp.where((flag[0] & np.uint32(POISON)) != 0, math.nan, value)
        return value.astype(dtype), dW.astype(dtype), db.astype(dtype), flag


def load():
    cupy = _import_cupy()
    import array_api_compat.cupy as xp

    return CupyBackend(cupy, xp)
