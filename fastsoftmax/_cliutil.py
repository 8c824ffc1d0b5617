"""What ``fastsoftmax``'s commands share: flag parsers, output-path and memory checks.

A lower module than both ``cli`` and ``bench._cli`` (each imports it, it
imports neither), so that the commands' front ends do not import each other.
Everything here runs before any work: a mistake found after a long run costs
the run.
"""

from __future__ import annotations

import argparse
import math
import os


class UsageError(Exception):
    """A mistake on the command line, reported in one line with exit status 2."""


def int_at_least(minimum):
    """An argparse ``type``: an integer ``>= minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def float_at_least(minimum, *, strict=False):
    """An argparse ``type``: a finite number ``>= minimum`` (``>`` with ``strict``)."""
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


def plot_formats():
    """The file extensions matplotlib can write (``png``, ``pdf``, ``svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def output_path(path, flag, *, plot=False):
    """The path a ``--json``/``--plot`` flag will write, checked before any work.

    Refuses, with a ``UsageError`` naming ``flag``: a directory (name the file
    inside it), a missing or read-only folder, a read-only existing file and,
    for a plot, a format matplotlib cannot write. A plot path without an
    extension gets ``.png`` -- matplotlib would add it anyway; this way the
    path reported is the path written.

    Returns
    -------
    str
        The path to write, as the user gave it (plus ``.png`` where added).
    """
    if not path:
        raise UsageError(f"argument {flag}: expected a file name, got an empty one")
    if os.path.isdir(path):
        raise UsageError(f"argument {flag}: {path} is a directory; give a file name in it, "
                         f"such as {os.path.join(path, 'out.png' if plot else 'out.json')}")
    if plot:
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        if not ext:
            path += ".png"
            if os.path.isdir(path):
                raise UsageError(f"argument {flag}: {path} is a directory")
        else:
            formats = plot_formats()
            if ext not in formats:
                raise UsageError(f"argument {flag}: cannot write a .{ext} plot; use one of "
                                 f".{', .'.join(sorted(formats))}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"argument {flag}: cannot write {path}: no directory {folder}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"argument {flag}: cannot write {path}: the file is read-only")
    if not os.path.exists(path) and not os.access(folder, os.W_OK):
        raise UsageError(f"argument {flag}: cannot write {path}: {folder} is not writable")
    return path


def meminfo(key):
    """A ``/proc/meminfo`` field in bytes (``MemAvailable``, ``MemTotal``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n_bytes):
    """``12.3 GiB``."""
    return f"{n_bytes / 2**30:.1f} GiB"


def fits_in_memory(need, share=0.8):
    """``(fits, available)``: whether ``need`` bytes fit in ``share`` of the free memory.

    Unknown free memory (no ``/proc/meminfo``) counts as fitting.
    """
    available = meminfo("MemAvailable")
    return available is None or need <= share * available, available
