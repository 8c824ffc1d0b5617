"""What ``fastsoftmax bench`` shows: the terminal table, the JSON file and the plot."""

from __future__ import annotations

import json
import math

BUSY = 0.10  # other processes' share of the CPUs above which a timing is flagged


def fmt_time(seconds):
    """``1.23 ms``-style: three significant digits and a unit from ns to s."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_count(value):
    """``81.2M``-style: three significant digits and an SI prefix."""
    if value is None or not math.isfinite(value):
        return "-"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


def _fmt_ratio(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def shape_text(cell):
    return f"N={cell['n']:,} K={cell['k']} D={cell['d']} {cell['dtype']}"


_COLUMNS = (("row", 26, "<"), ("median", 10, ">"), ("min", 10, ">"), ("first call", 11, ">"),
            ("rows/s", 8, ">"), ("GB/s", 7, ">"), ("t/numpy", 8, ">"), ("t/floor", 8, ">"))


def _line(values):
    return "  " + " ".join(f"{v:{align}{width}}" for v, (_, width, align)
                           in zip(values, _COLUMNS)) + "  "


def format_block(cells, floor, op):
    """One (op, shape) block of the table: a header with the floor, a line per row."""
    if not cells:
        return ""
    head = f"{op}  {shape_text(cells[0])}"
    if floor is not None:
        read = floor["read_S_s"] if op in ("softmax", "cross_entropy_gradient") else \
            floor["read_X_s"]
        what = "S" if op in ("softmax", "cross_entropy_gradient") else "X"
        per = {"train": " per step", "fit": " per evaluation"}.get(op, "")
        head += (f"   floor{per} {fmt_time(max(read, floor['exp_s']))} = max(read {what} "
                 f"{fmt_time(read)}, exp N×K {fmt_time(floor['exp_s'])})")
    lines = [head, _line([c[0] for c in _COLUMNS]) + "check"]
    for c in cells:
        if c["status"] == "error":
            lines.append(_line([c["label"]] + ["-"] * 7) + f"ERROR {c['reason']}")
            continue
        check = c["check"] or {}
        if op == "fit":
            verdict = _fit_verdict(c, check)
        elif check.get("ok") is None:
            verdict = "unchecked"
        elif check["ok"]:
            verdict = "ok"
        else:
            verdict = (f"MISMATCH: {check['worst']} off by {check['max_rel_err']:.1e} "
                       f"(relative to the float64 numpy result; tolerance {check['tol']:.0e})")
        if (c.get("other_cpu") or 0) > BUSY:
            verdict += f"  (busy: others used {c['other_cpu']:.0%} of the CPUs)"
        lines.append(_line([c["label"], fmt_time(c["median_s"]), fmt_time(c["min_s"]),
                            fmt_time(c["warmup_s"]), fmt_count(c["rows_per_s"]),
                            f"{c['gb_per_s']:.3g}", _fmt_ratio(c["ratio_to_numpy"]),
                            _fmt_ratio(c["ratio_to_floor"])]) + verdict)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _fit_verdict(c, check):
    """A fit's line: its work, its objective, the gap to the best row and the optimum."""
    work = f"{c['evals']} evals" if c.get("evals") else f"{c.get('iters')} iterations"
    text = f"{work}, objective {c['objective']:.10g}, gap to best {c.get('gap', 0.0):.1e}"
    if check.get("ok") is False:
        text += f" (short of the best row's optimum; tolerance {check['tol']:.0e})"
    return text


def format_header(result):
    m, v = result["machine"], result["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("numpy", "numba", "scikit-learn", "torch", "jax",
                                              "cupy") if k in v)
    cfg = result["config"]
    lines = [f"fastsoftmax bench {v.get('fastsoftmax', '')} -- {result['created']}",
             f"machine: {m['cpu']}, {m['usable_cores']} usable cores "
             f"({m['logical_cores']} logical), Python {m['python']}, {m['platform']}",
             f"libraries: {libs}",
             f"load average at start: {_load(m)}",
             f"timing: median and min of {cfg['repeat']} timed repeats after a warm-up call "
             f"('first call'); t/numpy = median / numpy backend's median; t/floor = median / "
             f"max(read of the input, one exp pass over N×K)"]
    for row in result["rows"]:
        if row["available"]:
            lines.append(f"  {row['label']:<26} {row['version']:<14} {row['device']:<16} "
                         f"{row['description']}")
    return "\n".join(lines) + "\n"


def _load(machine):
    load = machine.get("load_average_at_start")
    return "unknown" if load is None else " / ".join(f"{v:.2f}" for v in load) + \
        " (1 / 5 / 15 min)"


def format_footer(result):
    lines = []
    if result["memory"]:
        lines.append("peak memory of one loss_gradient call above the RSS before it, in a "
                     "fresh process (kept: what the first call left resident):")
        for m in result["memory"]:
            shape = f"N={m['n']:,} K={m['k']} D={m['d']} {m['dtype']}" if m.get("n") else \
                f"N~{m['size']:,} K={m['k']} D={m['d']} {m['dtype']}"
            if m.get("error"):
                lines.append(f"  {m['label']:<26} {shape}  ERROR {m['error']}")
                continue
            bound = " (lower bound)" if m.get("lower_bound") else ""
            lines.append(f"  {m['label']:<26} {shape} {_mib(m['extra_bytes']):>10}{bound}"
                         f"   kept {_mib(m['retained_bytes'])}; data {_mib(m['data_bytes'])}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    bad = [c for c in result["cells"] if c["status"] == "mismatch"]
    if bad:
        lines.append(f"WARNING: {len(bad)} cell(s) disagree with the numpy backend: " + ", ".join(
            f"{c['label']} {c['op']} {shape_text(c)}" for c in bad))
    errors = [c for c in result["cells"] if c["status"] == "error"]
    if errors:
        lines.append(f"WARNING: {len(errors)} cell(s) failed")
    if result["interrupted"]:
        lines.append(f"interrupted: kept the {len(result['cells'])} cells measured so far")
    lines.append(f"{len(result['cells'])} cells in {result['elapsed_s']:.1f} s")
    return "\n".join(lines) + "\n"


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


def write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- the plot ----------------------------------------------------------------------

_MARKERS = "osD^v<>ph*"


def _panels(result):
    """``(op, k, d, dtype)`` -> cells, in the order they were measured."""
    panels = {}
    for c in result["cells"]:
        if c["median_s"] is not None:
            panels.setdefault((c["op"], c["k"], c["d"], c["dtype"]), []).append(c)
    return panels


def _layout(keys):
    """Panel -> (row, column): one column per op and one row per shape when there
    are several ops; a single op's shapes wrap three to a row."""
    ops = list(dict.fromkeys(key[0] for key in keys))
    shapes = list(dict.fromkeys(key[1:] for key in keys))
    if len(ops) > 1:
        return {key: (shapes.index(key[1:]), ops.index(key[0])) for key in keys}
    return {key: divmod(i, 3) for i, key in enumerate(keys)}


def _time_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda s, _: fmt_time(s).replace(".0 ", " ") if s > 0 else "")


def plot_result(result, path):
    """A PNG: per (op, shape), time vs N (top) and time relative to numpy (bottom).

    Log-log; one line per backend (solid) or peer (dashed), a fixed colour per
    row across panels; the floor as a dotted black line; a cell measured while
    other processes were busy has a hollow marker; a cell that disagrees with
    the float64 reference is crossed out in red.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogLocator, NullFormatter

    panels = _panels(result)
    labels = [r["label"] for r in result["rows"] if r["available"]]
    colours = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    markers = {lab: _MARKERS[i % len(_MARKERS)] for i, lab in enumerate(labels)}
    positions = _layout(list(panels))
    nrows = 1 + max((r for r, _ in positions.values()), default=0)
    ncols = 1 + max((c for _, c in positions.values()), default=0)
    fig = Figure(figsize=(5.6 * ncols + 3.4, 7.0 * nrows + 0.8), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[2.2, 1] * nrows)
    floors = {(f["n"], f["k"], f["d"], f["dtype"]): f for f in result["floors"]}
    bad_drawn = busy_drawn = False
    for (op, k, d, dtype), cells in panels.items():
        r, col = positions[(op, k, d, dtype)]
        ax = fig.add_subplot(grid[2 * r, col])
        ax_ratio = fig.add_subplot(grid[2 * r + 1, col], sharex=ax)
        for lab in labels:
            mine = sorted((c for c in cells if c["label"] == lab), key=lambda c: c["n"])
            if not mine:
                continue
            n = [c["n"] for c in mine]
            style = dict(color=colours[lab], marker=markers[lab], markersize=5,
                         linestyle="-" if lab.endswith("(backend)") else "--", linewidth=1.6)
            ax.plot(n, [c["median_s"] for c in mine], **style)
            ratios = [(c["n"], c["ratio_to_numpy"]) for c in mine
                      if c["ratio_to_numpy"] is not None]
            if ratios:
                ax_ratio.plot(*zip(*ratios), **style)
            busy = [c for c in mine if (c.get("other_cpu") or 0) > BUSY]
            if busy:
                busy_drawn = True
                ax.plot([c["n"] for c in busy], [c["median_s"] for c in busy], linestyle="none",
                        marker=markers[lab], markersize=7, color=colours[lab],
                        markerfacecolor="white")
            bad = [c for c in mine if c["status"] == "mismatch"]
            if bad:
                bad_drawn = True
                ax.plot([c["n"] for c in bad], [c["median_s"] for c in bad], "x", color="red",
                        markersize=13, markeredgewidth=2.5)
        passes = result["config"]["steps"] if op == "train" else 1
        key = "read_S_s" if op in ("softmax", "cross_entropy_gradient") else "read_X_s"
        fl = sorted({c["n"]: passes * max(floors[(c["n"], k, d, dtype)][key],
                                          floors[(c["n"], k, d, dtype)]["exp_s"])
                     for c in cells if (c["n"], k, d, dtype) in floors}.items())
        if fl:
            ax.plot(*zip(*fl), color="black", linestyle=":", linewidth=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_time_formatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.1)
        per = f" ({passes} steps)" if op == "train" else ""
        ax.set_title(f"{op}{per}\nK={k} classes, D={d} features, {dtype}", fontsize=11)
        ax.set_ylabel("median time per call")
        ax.tick_params(labelbottom=False)
        ax_ratio.set_yscale("log")
        ax_ratio.axhline(1.0, color="0.3", linewidth=1)
        lo, hi = ax_ratio.get_ylim()
        subs = (1.0, 2.0, 5.0) if hi / lo < 300 else (1.0,)
        ax_ratio.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax_ratio.yaxis.set_major_formatter(_plain_formatter())
        ax_ratio.yaxis.set_minor_formatter(NullFormatter())
        ax_ratio.grid(True, which="major", alpha=0.35)
        ax_ratio.set_ylabel("time / numpy backend\n(below 1: faster)")
        ax_ratio.set_xlabel("N (points)")
    handles = [Line2D([], [], color=colours[lab], marker=markers[lab],
                      linestyle="-" if lab.endswith("(backend)") else "--", label=lab)
               for lab in labels]
    handles.append(Line2D([], [], color="black", linestyle=":", linewidth=2,
                          label="floor: max(read input,\n  one exp pass over N×K)"))
    if busy_drawn:
        handles.append(Line2D([], [], color="0.4", marker="o", markerfacecolor="white",
                              linestyle="none",
                              label=f"hollow: other processes used\n  >{BUSY:.0%} of the CPUs"))
    if bad_drawn:
        handles.append(Line2D([], [], color="red", marker="x", linestyle="none",
                              markeredgewidth=2.5,
                              label="off the float64 numpy result\n  (see the check column)"))
    handles += [Line2D([], [], color="0.3", linestyle="-", label="solid: fastsoftmax backend"),
                Line2D([], [], color="0.3", linestyle="--", label="dashed: peer library")]
    fig.legend(handles=handles, loc="outside right center", fontsize=10, frameon=False)
    m = result["machine"]
    fig.suptitle(f"fastsoftmax bench, {result['created'][:10]}: {m['cpu']}, "
                 f"{m['usable_cores']} cores\nmedian of {result['config']['repeat']} timed "
                 f"repeats per point; lower is better", fontsize=12)
    fig.savefig(path, dpi=110)
    return path


def _plain_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")
