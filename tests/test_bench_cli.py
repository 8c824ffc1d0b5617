"""``fastsoftmax bench``: its JSON, its flags, its cross-check, Ctrl-C -- on tiny sizes.

Speed is never asserted here; what is checked is that every number the command
reports is the one it measured (ratios against the times they are made of,
the printed table against the JSON) and that a wrong row cannot pass.
"""

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax import cli
from fastsoftmax.bench import (
    PEERS,
    SCHEMA,
    BenchConfig,
    format_block,
    make_data,
    make_row,
    run_bench,
)
from fastsoftmax.bench._report import fmt_time
from fastsoftmax.bench._rows import NotebookPeer, _notebook_loss_gradient

PNG = b"\x89PNG\r\n\x1a\n"
# Runs from Python: no progress bar, short repeats, no pause between rows, every
# row in this process (timing quality is not under test here, the bookkeeping
# is); the command-line tests and test_workers_* run the rows in worker processes.
FAST = {"progress": False, "target_s": 0.002, "quiet_s": 0.0, "isolate": False}
CELL_FIELDS = {"op", "size", "n", "k", "d", "dtype", "row", "kind", "label", "device",
               "status", "reason", "warmup_s", "calls_per_repeat", "repeat", "times_s",
               "median_s", "min_s", "rows_per_s", "bytes", "gb_per_s", "ratio_to_numpy",
               "floor_s", "ratio_to_floor", "check", "other_cpu"}


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def installed_peers():
    return [name for name in PEERS if make_row("peer", name).available()]


def expected_labels():
    return ([f"{name} (backend)" for name in fs.available_backends()]
            + [f"{name} (peer)" for name in installed_peers()])


def check_cell_numbers(result):
    """Every derived number of every cell follows from the times it was measured with."""
    numpy_median = {}
    for c in result["cells"]:
        if c["label"] == "numpy (backend)":
            numpy_median[(c["op"], c["n"], c["k"], c["d"], c["dtype"])] = c["median_s"]
    steps = result["config"]["steps"]
    for c in result["cells"]:
        assert set(c) == CELL_FIELDS
        assert c["status"] == "ok", c
        times = c["times_s"]
        assert len(times) == c["repeat"] == result["config"]["repeat"]
        assert all(t > 0 for t in times) and c["warmup_s"] > 0 and c["calls_per_repeat"] >= 1
        assert c["median_s"] == pytest.approx(float(np.median(times)), rel=1e-12)
        assert c["min_s"] == min(times)
        passes = steps if c["op"] == "train" else 1
        assert c["rows_per_s"] == pytest.approx(passes * c["n"] / c["median_s"])
        assert c["gb_per_s"] == pytest.approx(c["bytes"] / c["median_s"] / 1e9)
        ref = numpy_median[(c["op"], c["n"], c["k"], c["d"], c["dtype"])]
        assert c["ratio_to_numpy"] == pytest.approx(c["median_s"] / ref, rel=1e-12)
        assert c["floor_s"] > 0
        assert c["ratio_to_floor"] == pytest.approx(c["median_s"] / c["floor_s"], rel=1e-12)
        floor = next(f for f in result["floors"]
                     if (f["n"], f["k"], f["d"], f["dtype"]) == (c["n"], c["k"], c["d"],
                                                                 c["dtype"]))
        read = floor["read_S_s"] if c["op"] in ("softmax", "cross_entropy_gradient") else \
            floor["read_X_s"]
        assert c["floor_s"] == pytest.approx(passes * max(read, floor["exp_s"]), rel=1e-12)
        check = c["check"]
        assert check["ok"] is True and 0 <= check["max_rel_err"] <= check["tol"]
        assert check["reference"] == "numpy backend, float64"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One real run of the command, as a user runs it, with JSON and a plot."""
    folder = tmp_path_factory.mktemp("bench")
    out = run("bench", "--sizes", "1e3", "--repeat", "2", "--json", str(folder / "out.json"),
              "--plot", str(folder / "out.png"), "--no-memory")
    return out, folder


def test_command_writes_json_with_every_backend_and_peer(cli_run):
    out, folder = cli_run
    assert out.returncode == 0, out.stderr
    result = json.loads((folder / "out.json").read_text())
    assert result["schema"] == SCHEMA and result["interrupted"] is False
    assert result["command"].startswith("fastsoftmax bench --sizes 1e3")
    machine = result["machine"]
    assert machine["cpu"] and machine["logical_cores"] >= 1 and machine["usable_cores"] >= 1
    assert machine["python"] and machine["memory_bytes"] > 0
    assert result["versions"]["numpy"] == np.__version__
    assert result["versions"]["fastsoftmax"] == fs.__version__
    assert result["config"]["sizes"] == [1000] and result["config"]["repeat"] == 2
    labels = [c["label"] for c in result["cells"]]
    assert labels == expected_labels()  # one cell each: one op, one shape
    assert all(c["n"] == 999 and c["k"] == 3 and c["d"] == 2 for c in result["cells"])
    rows = {r["label"]: r for r in result["rows"]}
    for name in PEERS:  # every peer is listed: run, or skipped with its reason
        row = rows[f"{name} (peer)"]
        assert row["available"] or row["reason"]
    check_cell_numbers(result)


def test_command_prints_the_numbers_it_wrote(cli_run):
    out, folder = cli_run
    result = json.loads((folder / "out.json").read_text())
    lines = out.stdout.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("loss_gradient ")):]
    for c in result["cells"]:
        line = next(line for line in lines if line.startswith(f"  {c['label']} "))
        fields = line.split()
        assert fmt_time(c["median_s"]) in line and fmt_time(c["min_s"]) in line
        assert f"{c['ratio_to_numpy']:.3g}" in fields
        assert fields[fields.index(f"{c['ratio_to_numpy']:.3g}") + 2] == "ok"  # check column
    assert "AMD" in out.stdout or result["machine"]["cpu"] in out.stdout
    assert out.stderr == ""  # no progress bar off a terminal, no warnings


def test_command_writes_a_png(cli_run):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    _, folder = cli_run
    data = (folder / "out.png").read_bytes()
    assert data[:8] == PNG and len(data) > 20_000


def test_all_ops_in_process_float32_and_float64():
    config = BenchConfig(ops=["loss_gradient", "softmax", "cross_entropy_gradient"],
                         sizes=[300], classes=[4], features=[3], repeat=2,
                         dtypes=["float32", "float64"], **FAST)
    result = run_bench(config)
    assert len(result["cells"]) == 3 * 2 * len(expected_labels())
    assert {(c["n"], c["k"], c["d"]) for c in result["cells"]} == {(300, 4, 3)}
    check_cell_numbers(result)
    assert [(f["n"], f["k"], f["d"], f["dtype"]) for f in result["floors"]] == [
        (300, 4, 3, "float32"), (300, 4, 3, "float64")]
    json.dumps(result)  # serialisable as it is


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "workers"])
def test_train_runs_the_same_fit_everywhere(isolate):
    config = BenchConfig(ops=["train"], sizes=[200], repeat=2, steps=20, backends=["numpy"],
                         peers=["notebook", "sklearn"], **{**FAST, "isolate": isolate})
    result = run_bench(config)
    assert result["config"]["isolate"] is isolate
    assert [c["label"] for c in result["cells"]] == ["numpy (backend)", "notebook (peer)",
                                                      "sklearn (peer)"]
    check_cell_numbers(result)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "workers"])
def test_fit_reports_evaluations_objectives_and_gaps(isolate):
    """``fit``: L-BFGS rows and scikit-learn reach one optimum; the notebook's 200 gradient
    steps stop short of it, and the gap says so. Rows without a fit (torch) sit it out."""
    pytest.importorskip("sklearn", reason="scikit-learn not installed")
    config = BenchConfig(ops=["fit"], sizes=[600], repeat=1, backends=["numpy", "numba"],
                         peers=["sklearn", "notebook", "torch-autograd"],
                         **{**FAST, "isolate": isolate})
    cells = {c["row"]: c for c in run_bench(config)["cells"]}
    assert set(cells) == {"numpy", "numba", "sklearn", "notebook"}
    X, y = fs.make_spiral(200, 3, shuffle=False, seed=0, backend="numpy")
    for name in ("numpy", "numba", "sklearn"):
        c = cells[name]
        assert c["status"] == "ok" and c["check"]["ok"] and c["gap"] <= 1e-9, c
        assert c["iters"] >= 1 and c["median_s"] > 0
        # each reports the objective at its weights: the optimum, as the numpy backend finds it
        model = fs.SoftmaxClassifier(reg=1e-3, backend="numpy").fit(X, y)
        assert c["objective"] == pytest.approx(model.loss_history_[-1], rel=1e-9)
    assert cells["numpy"]["evals"] == cells["numba"]["evals"] >= cells["numpy"]["iters"]
    assert "evals" not in cells["sklearn"]  # scikit-learn does not expose them
    notebook = cells["notebook"]
    assert notebook["evals"] == 200 and notebook["gap"] > 1e-6 and not notebook["check"]["ok"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_starts_where_the_classifier_starts(dtype):
    """The peers' and the reference's fits start from SoftmaxClassifier's own W."""
    data = make_data(300, 3, 2, dtype, seed=5)
    model = fs.SoftmaxClassifier(solver="gd", tol=0, max_iter=1, random_state=5,
                                 backend="numpy").fit(data.X, data.y)
    first = fs.loss(data.X, data.y, data.W0, np.zeros(3, dtype), reg=data.reg,
                    backend="numpy")
    assert model.loss_history_[0] == float(first)


class ForgetsRegularisation(NotebookPeer):
    """The notebook's code with a classic slip: the L2 term left out of loss and gradient."""

    name = "no-reg"

    def _prepare_loss_gradient(self, data):
        X, y, W, b = data.X, data.y, data.W, data.b
        return lambda: _notebook_loss_gradient(X, y, W, b, 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cross_check_flags_a_wrong_row(dtype):
    config = BenchConfig(sizes=[2000], repeat=1, dtypes=[dtype], backends=["numpy"],
                         peers=["notebook"], extra_rows=[ForgetsRegularisation()],
                         **FAST)
    result = run_bench(config)
    cells = {c["label"]: c for c in result["cells"]}
    wrong = cells["no-reg (peer)"]
    assert wrong["status"] == "mismatch" and wrong["check"]["ok"] is False
    assert wrong["check"]["max_rel_err"] > 10 * wrong["check"]["tol"]
    assert wrong["check"]["errors"]["loss"] > wrong["check"]["tol"]
    assert wrong["median_s"] > 0  # still timed, and shown as wrong
    assert cells["notebook (peer)"]["status"] == "ok"
    assert cells["numpy (backend)"]["status"] == "ok"
    block = format_block(result["cells"], result["floors"][0], "loss_gradient")
    line = next(line for line in block.splitlines() if "no-reg" in line)
    assert "MISMATCH" in line
    assert "MISMATCH" not in block.replace(line, "")
    assert result["config"]["extra_rows"] == ["no-reg (peer)"]


def test_reference_is_float64_for_float32_cells():
    """numpy's own float32 result is checked against float64 -- it is not its own yardstick."""
    result = run_bench(BenchConfig(sizes=[500], repeat=1, dtypes=["float32"],
                                   backends=["numpy"], peers=[], **FAST))
    (cell,) = result["cells"]
    assert cell["check"]["ok"] is True and 0 < cell["check"]["max_rel_err"] < 1e-5


def test_memory_sees_the_allocations_of_the_call():
    n = 200_001
    result = run_bench(BenchConfig(sizes=[n], repeat=1, backends=["numpy"], peers=["notebook"],
                                   memory=True, **FAST))
    assert [m["label"] for m in result["memory"]] == ["numpy (backend)", "notebook (peer)"]
    for m in result["memory"]:
        assert m["error"] is None, m
        assert m["n"] == n and m["op"] == "loss_gradient"
        assert m["data_bytes"] == n * 2 * 8 + n * 4
        # The scores alone are an N x K float64 array that both must hold at their peak.
        assert m["extra_bytes"] > n * 3 * 8
        assert m["baseline_bytes"] > m["data_bytes"]
        assert "clear_refs" in m["method"] or m["lower_bound"] is not None


def test_quick_and_defaults():
    args = cli.build_parser().parse_args(["bench", "--quick"])
    config = cli_config(args)
    assert config.sizes == [1_000, 10_000, 100_000, 1_000_000]
    assert config.memory is False and config.ops == ["loss_gradient"]
    assert config.backends is None and config.peers is None and config.repeat == 7
    config = cli_config(cli.build_parser().parse_args(["bench"]))
    assert config.sizes == [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    assert config.memory is True
    config = cli_config(cli.build_parser().parse_args(
        ["bench", "--quick", "--sizes", "1e4,1_000,1e4", "--ops", "all", "--memory",
         "--dtype", "float32,float64", "--classes", "10,3", "--features", "16",
         "--backends", "numpy", "--peers", "none", "--repeat", "3"]))
    assert config.sizes == [1_000, 10_000] and config.memory is True
    assert config.ops == ["loss_gradient", "softmax", "cross_entropy_gradient", "train", "fit"]
    assert config.dtypes == ["float32", "float64"] and config.classes == [3, 10]
    assert config.features == [16] and config.backends == ["numpy"] and config.peers == []
    assert config.repeat == 3


def cli_config(args):
    from fastsoftmax.bench._cli import config_from_args

    return config_from_args(args)


BAD = [
    (["--sizes", "0"], "argument --sizes: size must be a whole number from 1"),
    (["--sizes", "1.5"], "argument --sizes: size must be a whole number"),
    (["--sizes", "ten"], "argument --sizes: expected size like 1e6, got 'ten'"),
    (["--sizes", "1e3,,1e4"], "argument --sizes: expected a comma-separated list"),
    (["--sizes", "inf"], "argument --sizes"),
    (["--sizes", "1e10"], "argument --sizes: size must be a whole number from 1 to 2**31-1"),
    (["--classes", "1"], "argument --classes: class count must be a whole number from 2"),
    (["--features", "1"], "argument --features"),
    (["--backends", "tpu"], "argument --backends: unknown backend 'tpu'"),
    (["--peers", "matlab"], "argument --peers: unknown peer 'matlab'"),
    (["--dtype", "float16"], "argument --dtype: unknown dtype 'float16'"),
    (["--ops", "fit"], "argument --ops: unknown op 'fit'"),
    (["--repeat", "0"], "argument --repeat: must be >= 1"),
    (["--repeat", "many"], "argument --repeat: expected an integer"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
    (["--backends", "none", "--peers", "none"], "nothing to run"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flags_one_line_exit_2(args, words, capsys):
    assert cli.main(["bench", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsoftmax: error: "), err
    assert words in lines[0]


def test_bad_output_paths_fail_before_measuring(tmp_path, capsys):
    for flag in ("--json", "--plot"):
        path = str(tmp_path / "no" / "such" / "dir" / "out")
        assert cli.main(["bench", "--sizes", "1e3", flag, path]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and "no directory" in err


@pytest.mark.parametrize("args", [["--sizes", "-5"], ["--peers", "jax"]])
def test_bad_flags_in_a_real_process(args):
    out = run("bench", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("fastsoftmax: error: argument ")


def test_unusable_backend_named_explicitly():
    unusable = [n for n in fs.list_backends() if n not in fs.available_backends()]
    if not unusable:
        pytest.skip("every backend is usable on this machine")
    out = run("bench", "--backends", unusable[0], "--sizes", "1e3")
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("fastsoftmax: error: ")


def test_help_lists_bench_and_its_flags(capsys):
    out = run("--help")
    assert out.returncode == 0 and "bench" in out.stdout
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--ops", "--sizes", "--classes", "--features", "--dtype", "--backends",
                 "--peers", "--repeat", "--quick", "--memory", "--json", "--plot", "--seed"):
        assert flag in text


def test_building_the_parser_imports_no_peer():
    code = ("import sys, json; import fastsoftmax.cli as c; c.build_parser(); "
            "print(json.dumps([m for m in ('sklearn', 'torch', 'jax', 'matplotlib', 'tqdm', "
            "'numba') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def processes_with(marker):
    """Pids of this user's processes whose environment holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_workers_refuse_different_data():
    from fastsoftmax.bench._worker import Worker

    worker = Worker(make_row("backend", "numpy"))
    try:
        assert worker.ready()
        task = {"cmd": "cell", "size": 300, "k": 3, "d": 2, "dtype": "float64", "seed": 0,
                "reg": 1e-3, "steps": 200, "sha": "0" * 40, "op": "loss_gradient",
                "repeat": 1, "target_s": 0.001, "quiet_s": 0.0, "ref_dir": None,
                "ref_keys": []}
        with pytest.raises(RuntimeError, match="the worker's spiral differs from the parent's"):
            worker.cell(task)
    finally:
        worker.close()
    assert worker.proc.returncode == 0


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="looks for leftover processes in /proc")
def test_ctrl_c_keeps_what_was_measured(tmp_path):
    path = tmp_path / "partial.json"
    marker = f"FASTSOFTMAX_TEST_RUN={os.getpid()}-{tmp_path.name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastsoftmax", "bench", "--sizes", "1e3,1e7", "--repeat",
         "20", "--backends", "numpy", "--peers", "notebook", "--json", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", marker.split("=")[0]: marker.split("=")[1]})
    try:
        for line in proc.stdout:  # wait until the first block (N=999) is printed
            if line.startswith("  notebook (peer)") and " ok" in line:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    result = json.loads(path.read_text())
    assert result["interrupted"] is True
    done = [c for c in result["cells"] if c["n"] == 999]
    assert [c["label"] for c in done] == ["numpy (backend)", "notebook (peer)"]
    assert all(c["status"] == "ok" and c["median_s"] > 0 for c in result["cells"])
    assert "interrupted: kept the" in stdout
    assert not math.isnan(result["elapsed_s"])
    assert processes_with(marker) == []  # the row workers were ended too


def test_docs_cli_lists_every_command_and_flag():
    """docs/cli.md documents every command and every flag the parser has."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "cli.md")
    if not os.path.exists(path):
        pytest.skip("docs/ is not shipped with this installation")
    text = open(path).read()
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"## `fastsoftmax {name}`" in text
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, (name, flag)
