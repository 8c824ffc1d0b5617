"""Every CUDA source of the cupy backend compiles, warning-free, with nvcc.

This runs without a GPU (only ``nvcc`` is needed), so a syntax or type error in
a ``.cu`` file cannot land even where the GPU tests skip. The sources compiled
are exactly the text CuPy hands to NVRTC (``kernel_source``: headers inlined),
with the template instances the backend asks for, named by the backend's own
name builders, and with the options CuPy really compiles them with: the
backend's ``NVRTC_OPTIONS`` plus what CuPy appends (``CUPY_NVRTC_OPTIONS``:
``-ftz=true``, which changes the float32 code and its registers). nvcc has no
``--device-as-default-execution-space``; without it a device function calling an
unannotated one fails to compile, so nvcc is the stricter check there.

The fused kernel's register path is also assembled for sm_90 (an H100/H200) at
the corners of ``_fits_registers`` to show that every thread's registers still
hold W, b and its partial sums there (no more than a few words spilled), and the
kernels the benchmark and the row ops run must not spill at all.
"""

import re
import shutil
import subprocess

import pytest

from fastsoftmax.backends import cupy as cb

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA compiler) is not on PATH")

# CuPy's options where nvcc has them (see the docstring); all warnings are errors.
NO_NVCC_EQUIVALENT = {"--device-as-default-execution-space"}
CUPY_FLAGS = [opt for opt in (*cb.NVRTC_OPTIONS, *cb.CUPY_NVRTC_OPTIONS)
              if opt not in NO_NVCC_EQUIVALENT]
FLAGS = ["-arch=sm_90", *CUPY_FLAGS, "--Werror", "all-warnings"]


def _compile(tmp_path, source, names, *, mode="-ptx", extra=()):
    """Compile ``source`` (as the backend builds it) with ``names`` instantiated."""
    unit = tmp_path / "unit.cu"
    keep = "".join(f"    (void*)&{name},\n" for name in names)
    unit.write_text(cb.kernel_source(source)
                    + ("void* fastsoftmax_instances[] = {\n" + keep + "};\n" if names else ""))
    out = tmp_path / ("unit.ptx" if mode == "-ptx" else "unit.cubin")
    result = subprocess.run([NVCC, *FLAGS, mode, *extra, str(unit), "-o", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
    return result


def test_compile_flags_carry_cupys_options():
    assert "-ftz=true" in FLAGS and "--std=c++17" in FLAGS
    assert set(cb.CUPY_NVRTC_OPTIONS) - set(FLAGS) == NO_NVCC_EQUIVALENT


def test_sources_are_the_package_files():
    on_disk = sorted(p.name for p in cb.CUDA_DIR.glob("*.cu"))
    assert on_disk == sorted(cb.CUDA_SOURCES)
    for name in cb.CUDA_SOURCES:
        text = cb.kernel_source(name)
        assert not re.search(r"^\s*#include", text, re.M)  # common.cuh inlined
        assert "FS_POISON" in text


@pytest.mark.parametrize("source", cb.CUDA_SOURCES)
def test_each_source_compiles_to_ptx(tmp_path, source):
    _compile(tmp_path, source, [])


def test_fused_kernels_for_every_dtype_and_label_type(tmp_path):
    names = {n for t in cb.FLOAT_TYPES for lab in cb.LABEL_TYPES
             for n in cb.fused_kernel_names(t, lab, 2, 3)}
    _compile(tmp_path, "loss_gradient.cu", sorted(names))


def _register_path_corners(dtype):
    """(D, K) on the edge of the register path: the largest D for a few K."""
    corners = []
    for k in (1, 2, 3, 4, 8, 16, 32):
        ds = [d for d in range(1, 129) if cb._fits_registers(d, k, dtype)]
        if ds:
            corners.append((ds[-1], k))
    corners.append((1, max(k for k in range(1, 129) if cb._fits_registers(1, k, dtype))))
    return sorted(set(corners))


def _ptxas_usage(ptxas_report):
    """``{kernel: (registers, spill-store bytes)}`` from ``-Xptxas -v`` output."""
    usage, kernel, spills = {}, None, 0
    for line in ptxas_report.splitlines():
        name = re.search(r"Compiling entry function '(\w+)'", line)
        if name:
            kernel, spills = name.group(1), 0
        stores = re.search(r"(\d+) bytes spill stores", line)
        if stores:
            spills = int(stores.group(1))
        regs = re.search(r"Used (\d+) registers", line)
        if regs and kernel:
            usage[kernel] = (int(regs.group(1)), spills)
            kernel = None
    return usage


# ptxas may keep a few words in local memory to reach the next occupancy step
# (seen: 8 to 24 bytes at 128 registers); hundreds of bytes would mean the
# register arrays do not fit and the limits in _fits_registers are wrong.
SPILL_SLACK = 64


@pytest.mark.parametrize("dtype", list(cb.FLOAT_TYPES))
def test_register_path_fits_at_its_limits(tmp_path, dtype):
    corners = _register_path_corners(dtype)
    assert len(corners) >= 5
    names = [cb.fused_kernel_names(dtype, "int32", d, k)[0] for d, k in corners]
    report = _compile(tmp_path, "loss_gradient.cu", names, mode="-cubin",
                      extra=["-Xptxas", "-v"]).stderr
    usage = _ptxas_usage(report)
    assert len(usage) == len(names), report
    assert max(spills for _, spills in usage.values()) <= SPILL_SLACK, usage


# The instances the GPU benchmark times (N = 1e8, D = 2, K = 3: float32 with int32
# or int64 labels, float64 with int32) and every row-kernel instance: no spill.
NO_SPILL = [cb.fused_kernel_names("float32", lab, 2, 3)[0] for lab in ("int32", "int64")]
NO_SPILL += [cb.fused_kernel_names("float64", "int32", 2, 3)[0]]
ROW_INSTANCES = [cb.softmax_kernel_name(t) for t in ("float32", "float64")]
ROW_INSTANCES += [cb.cross_entropy_kernel_name(t, lab) for t in ("float32", "float64")
                  for lab in cb.LABEL_TYPES]


@pytest.mark.parametrize("source,names", [("loss_gradient.cu", NO_SPILL),
                                          ("rows.cu", ROW_INSTANCES)], ids=["fused", "rows"])
def test_benchmarked_and_row_kernels_do_not_spill_at_all(tmp_path, source, names):
    report = _compile(tmp_path, source, names, mode="-cubin",
                      extra=["-Xptxas", "-v,-warn-spills,-warn-lmem-usage,-Werror"]).stderr
    usage = _ptxas_usage(report)
    assert len(usage) == len(names), report
    assert all(spills == 0 for _, spills in usage.values()), usage


def test_benchmarked_float32_kernel_keeps_four_blocks_per_multiprocessor(tmp_path):
    # 64 registers x 256 threads x 4 blocks = the 64K registers of an sm_90 SM:
    # 1024 threads in flight per SM, each with 32 bytes of loads outstanding.
    # docs/backends-cupy.md quotes this figure; a change must update it there.
    name = cb.fused_kernel_names("float32", "int32", 2, 3)[0]
    report = _compile(tmp_path, "loss_gradient.cu", [name], mode="-cubin",
                      extra=["-Xptxas", "-v"]).stderr
    [(regs, spills)] = _ptxas_usage(report).values()
    assert regs <= 64 and spills == 0, report


def test_register_limits_are_monotone():
    # A shape inside the register path never has a smaller one outside it.
    for dtype in cb.FLOAT_TYPES:
        for d in range(1, 70):
            for k in range(1, 40):
                if cb._fits_registers(d, k, dtype):
                    assert cb._fits_registers(max(1, d - 1), k, dtype)
                    assert cb._fits_registers(d, max(1, k - 1), dtype)
