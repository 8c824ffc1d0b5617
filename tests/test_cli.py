"""The command line, run as a user runs it: in a subprocess."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax as fs


def run(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True,
                          text=True, env=full_env, timeout=300)


def test_train_defaults_reproduce_the_notebook_output():
    out = run("train", "--seed", "0")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    iterations = [line for line in lines if line.startswith("iteration")]
    assert [line.split(":")[0] for line in iterations] == [f"iteration {i}"
                                                           for i in range(0, 200, 10)]
    losses = [float(line.split("loss ")[1]) for line in iterations]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert abs(losses[0] - np.log(3)) < 0.01 and 0.72 < losses[-1] < 0.80
    accuracy = [line for line in lines if line.startswith("training accuracy:")]
    assert len(accuracy) == 1 and re.fullmatch(r"training accuracy: 0\.\d\d", accuracy[0])
    assert out.stderr == ""


def test_train_matches_the_library_for_the_same_seed():
    out = run("train", "--seed", "3", "--json", "--backend", "numpy")
    result = json.loads(out.stdout)
    X, y = fs.make_spiral(shuffle=False, seed=3, backend="numpy")
    model = fs.SoftmaxClassifier(solver="gd", tol=0, random_state=3, backend="numpy").fit(X, y)
    assert result["final_loss"] == model.loss_history_[-1]
    assert result["accuracy"] == model.score(X, y)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_train_lbfgs_reaches_the_libraries_optimum(backend):
    out = run("train", "--solver", "lbfgs", "--seed", "2", "--json", "--backend", backend,
              "--tol", "1e-6")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    X, y = fs.make_spiral(shuffle=False, seed=2, backend="numpy")
    model = fs.SoftmaxClassifier(tol=1e-6, backend="numpy").fit(X, y)
    assert result["solver"] == "lbfgs" and result["tol"] == 1e-6 and result["converged"]
    assert result["n_iter"] == model.n_iter_ and result["n_evals"] == model.n_evals_
    assert result["n_evals"] == len(result["loss_history"])
    assert result["objective"] == pytest.approx(model.loss_history_[-1], rel=1e-12)
    gd = json.loads(run("train", "--seed", "2", "--json", "--backend", backend).stdout)
    assert gd["solver"] == "gd" and gd["n_iter"] == 200 and not gd["converged"]
    assert gd["objective"] > result["objective"]  # 200 steps stop short of the optimum
    text = run("train", "--solver", "lbfgs", "--seed", "2", "--backend", backend, "--tol", "1e-6")
    assert f"L-BFGS: {model.n_iter_} iterations" in text.stdout and "converged" in text.stdout


def test_train_json_is_exactly_one_object():
    out = run("train", "--json", "--seed", "1", "--iters", "30", "--n-per-class", "20",
              "--classes", "4", "--features", "3", "--dtype", "float32")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # fails on any extra line
    assert result["n_samples"] == 80 and result["n_classes"] == 4
    assert result["n_features"] == 3 and result["dtype"] == "float32"
    assert len(result["loss_history"]) == 30 and result["seed"] == 1
    assert 0 <= result["accuracy"] <= 1 and result["final_loss"] == result["loss_history"][-1]
    assert 0 <= result["first_step_seconds"] <= result["train_seconds"]
    assert result["backend"] in fs.available_backends()


def test_train_without_seed_reports_the_one_it_drew():
    a = json.loads(run("train", "--json", "--iters", "2").stdout)
    again = json.loads(run("train", "--json", "--iters", "2", "--seed", str(a["seed"])).stdout)
    assert again["loss_history"] == a["loss_history"]


def test_train_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot test needs matplotlib")
    path = tmp_path / "spiral.png"
    out = run("train", "--seed", "0", "--plot", str(path), "--print-every", "0")
    assert out.returncode == 0, out.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    assert "iteration" not in out.stdout


def test_plot_with_more_features(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot test needs matplotlib")
    path = tmp_path / "spiral5d.png"
    out = run("train", "--seed", "0", "--features", "5", "--plot", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["plot"] == str(path) and path.exists()


def test_backend_flag_and_env_var():
    out = run("train", "--json", "--iters", "2", "--backend", "array_api_strict")
    assert json.loads(out.stdout)["backend"] == "array_api_strict"
    out = run("train", "--json", "--iters", "2", env={"FASTSOFTMAX_BACKEND": "numpy"})
    assert json.loads(out.stdout)["backend"] == "numpy"


def test_backends_command():
    out = run("backends")
    assert out.returncode == 0
    for name in fs.list_backends():
        assert re.search(rf"^{name}\s+(yes|no)", out.stdout, re.M)
    rows = json.loads(run("backends", "--json").stdout)
    assert [r["name"] for r in rows] == fs.list_backends()
    assert {r["name"] for r in rows if r["available"]} == set(fs.available_backends())


BAD = [
    (["train", "--iters", "0"], "argument --iters: must be >= 1"),
    (["train", "--iters", "ten"], "argument --iters: expected an integer"),
    (["train", "--lr", "0"], "argument --lr: must be a finite number > 0"),
    (["train", "--reg", "-1"], "argument --reg: must be a finite number >= 0"),
    (["train", "--noise", "nan"], "argument --noise"),
    (["train", "--dtype", "float16"], "argument --dtype: invalid choice"),
    (["train", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_flags_one_line_exit_2(args, words):
    out = run(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsoftmax: error: "), out.stderr
    assert words in lines[0]


def test_unusable_backend_one_line_exit_2():
    for name in fs.list_backends():
        if name not in fs.available_backends():
            out = run("train", "--backend", name)
            assert out.returncode == 2 and out.stdout == ""
            assert len(out.stderr.splitlines()) == 1
            assert out.stderr.startswith("fastsoftmax: error: ")
            return
    pytest.skip("every backend is usable on this machine")


def test_bad_env_var_one_line_exit_2():
    out = run("train", env={"FASTSOFTMAX_BACKEND": "nope"})
    assert out.returncode == 2
    assert out.stderr.strip() == ("fastsoftmax: error: unknown backend 'nope' (from "
                                  "$FASTSOFTMAX_BACKEND); known backends: auto, "
                                  + ", ".join(fs.list_backends()))


def one_line_error(out, status=2):
    """The contract of every CLI error: nothing on stdout, one line on stderr."""
    assert out.returncode == status, (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsoftmax: error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize("where,words", [
    ("no/such/dir.png", "argument --plot: cannot write "),
    (".", "argument --plot: "),  # the directory itself
    ("out.xyz", "argument --plot: cannot write a .xyz plot"),
])
def test_unwritable_plot_path_one_line_exit_2_before_any_work(tmp_path, where, words):
    pytest.importorskip("matplotlib", reason="the plot test needs matplotlib")
    path = tmp_path / where
    out = run("train", "--iters", "2", "--plot", str(path))
    assert out.stdout == ""  # refused before the data were even made
    assert words in one_line_error(out)
    if where == ".":
        assert "is a directory; give a file name in it" in out.stderr


def test_plot_without_extension_reports_the_file_it_wrote(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot test needs matplotlib")
    out = run("train", "--iters", "2", "--plot", str(tmp_path / "spiral"), "--seed", "0")
    assert out.returncode == 0, out.stderr
    written = tmp_path / "spiral.png"
    assert out.stdout.splitlines()[-1] == f"wrote {written}"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "spiral").exists()


@pytest.mark.parametrize("flags", [["--lr", "1e308"], ["--reg", "1e308"],
                                   ["--lr", "1e308", "--json"]])
def test_diverging_run_is_one_line_exit_1(flags, backend):
    out = run("train", "--seed", "0", "--backend", backend.name, *flags)
    line = one_line_error(out, status=1)  # valid flags, a failed run: 1, not 2
    assert "training diverged at step 1 (loss inf); " in line
    assert "try a smaller --reg" in line
    assert "Warning" not in out.stderr
    assert "Traceback" not in out.stderr
    if "--json" in flags:
        assert out.stdout == ""


def test_noise_that_overflows_the_spiral_is_refused():
    out = run("train", "--noise", "1e308")
    assert out.stdout == ""
    assert "noise must be at most 2.81e+306 for float64" in one_line_error(out)


def test_problem_too_big_for_the_memory_is_one_line_before_any_work():
    out = run("train", "--n-per-class", "1000000000", "--classes", "2", "--backend", "numpy")
    assert out.stdout == ""
    line = one_line_error(out)
    assert "--n-per-class 1000000000 x --classes 2 x --features 2 needs about" in line


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout == f"fastsoftmax {fs.__version__}\n"


def test_progress_on_request_goes_to_stderr_and_leaves_stdout_alone():
    plain = run("train", "--seed", "0", "--iters", "30", "--backend", "numpy")
    shown = run("train", "--seed", "0", "--iters", "30", "--backend", "numpy", "--progress")
    assert plain.stderr == "" and "training" in shown.stderr and "step" in shown.stderr
    iterations = [line for line in shown.stdout.splitlines() if line.startswith("iteration")]
    assert iterations == [line for line in plain.stdout.splitlines()
                          if line.startswith("iteration")] and len(iterations) == 3


def test_first_run_is_quick_and_quiet_on_a_fresh_install(tmp_path):
    """The README's first command does not wait for a Numba compile it does not need."""
    out = run("train", "--seed", "0", "--json",
              env={"NUMBA_CACHE_DIR": str(tmp_path), "FASTSOFTMAX_BACKEND": ""})
    assert out.returncode == 0 and out.stderr == ""
    assert json.loads(out.stdout)["backend"] == "numpy"
    assert os.listdir(tmp_path) == []  # nothing compiled, nothing cached


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("train", "backends"):
        assert cmd in out.stdout


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "fastsoftmax")
    if not os.path.exists(exe):
        pytest.skip("the fastsoftmax console script is not installed in this environment")
    out = subprocess.run([exe, "backends", "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)
