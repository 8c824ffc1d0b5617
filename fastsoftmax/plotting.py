"""Figures: the notebook's decision-boundary picture and the loss curve.

Needs matplotlib (the ``plot`` extra). Uses ``matplotlib.figure.Figure``
directly -- no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import numpy as np

from .backends import to_numpy

_MAX_SCATTER = 6000  # points drawn; more only darkens the picture and slows it


def _import_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib; install it with \"pip install 'fastsoftmax[plot]'\""
        ) from None
    return Figure


def _plane(X):
    """2-D coordinates of ``X`` and a map from the plane back to feature space.

    Two features: the features themselves (the notebook's picture). More: the
    plane of the first two principal components, which holds all of a
    ``make_spiral`` data set since its embedding is a linear isometry.
    """
    if X.shape[1] == 2:
        return X, lambda grid: grid, ("x1", "x2")
    mean = X.mean(axis=0)
    sample = X[:: max(1, X.shape[0] // 100_000)] - mean
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    basis = vt[:2]
    return (X - mean) @ basis.T, lambda grid: mean + grid @ basis, ("PC 1", "PC 2")


def plot_training(model, X, y, path, *, title=None):
    """Write a PNG: decision regions with the data (left) and the loss curve (right).

    Parameters
    ----------
    model : fitted estimator (``loss_history_``: one loss per evaluation)
    X, y : the training data (any backend's arrays)
    path : str or path-like
    title : str, optional
    """
    Figure = _import_figure()
    X = np.asarray(to_numpy(X), dtype=np.float64)
    y = np.asarray(to_numpy(y))
    coords, to_features, labels = _plane(X)

    h = 0.02  # the notebook's grid step
    lo = coords.min(axis=0) - 1
    hi = coords.max(axis=0) + 1
    xx, yy = np.meshgrid(np.arange(lo[0], hi[0], h), np.arange(lo[1], hi[1], h))
    grid = np.c_[xx.ravel(), yy.ravel()]
    regions = np.asarray(to_numpy(model.predict(to_features(grid).astype(model.W_.dtype))))
    codes = np.searchsorted(model.classes_, regions).reshape(xx.shape)
    y_codes = np.searchsorted(model.classes_, y)

    fig = Figure(figsize=(13, 5.5), layout="constrained")
    ax_data, ax_loss = fig.subplots(1, 2, width_ratios=[1.1, 1])
    k = len(model.classes_)
    colours = {"cmap": "Spectral", "vmin": 0, "vmax": max(1, k - 1)}  # regions = points
    ax_data.contourf(xx, yy, codes, levels=np.arange(k + 1) - 0.5, alpha=0.8, **colours)
    step = max(1, X.shape[0] // _MAX_SCATTER)
    ax_data.scatter(coords[::step, 0], coords[::step, 1], c=y_codes[::step], s=18,
                    edgecolors="k", linewidths=0.3, **colours)
    ax_data.set_xlim(xx.min(), xx.max())
    ax_data.set_ylim(yy.min(), yy.max())
    ax_data.set_xlabel(labels[0])
    ax_data.set_ylabel(labels[1])
    shown = "" if step == 1 else f" (every {step}th of {X.shape[0]:,} points)"
    ax_data.set_title(f"decision regions, accuracy {model.score(X, y):.2f}{shown}")

    history = np.asarray(model.loss_history_)
    ax_loss.plot(np.arange(len(history)), history, color="C0")
    ax_loss.set_xlabel("evaluation of loss and gradient"
                       + (" (one per step)" if getattr(model, "solver", "gd") == "gd" else ""))
    ax_loss.set_ylabel("loss (cross-entropy + L2)")
    ax_loss.set_title(f"training loss: {history[0]:.4f} -> {history[-1]:.4f}")
    ax_loss.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return path
