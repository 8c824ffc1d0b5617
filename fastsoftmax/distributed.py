"""Connect to a Dask cluster, or start a safe local one, for the ``dask`` backend.

A Dask scheduler runs whatever a connected client sends it: anyone who can
reach its port can run code as the user of every worker. So the local cluster
started here listens on the loopback interface only (scheduler, nannies,
workers and the dashboard), and a remote scheduler should be reached over ``tls://`` with
certificates (``docs/dask.md`` shows the set-up).

Nothing here is imported by ``import fastsoftmax``.
"""

from __future__ import annotations

import contextlib

import numpy as np

# Every worker thread runs one block at a time on one core: the kernels and the
# BLAS they call must not start thread pools of their own on top (2 workers x
# 2 Numba threads on 2 cores would oversubscribe).
WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def local_cluster(n_workers=2, *, threads_per_worker=1, memory_limit="auto", **kwargs):
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1 only.

    Parameters
    ----------
    n_workers : int, default 2
    threads_per_worker : int, default 1
        Each thread runs one block at a time with a single-threaded kernel.
    memory_limit : str, float or "auto"
        Per worker, as for ``LocalCluster`` (``"auto"``: the machine's memory
        split between the workers).
    **kwargs
        Passed on to ``LocalCluster`` (e.g. ``security=`` and ``protocol="tls"``).

    Returns
    -------
    distributed.LocalCluster
        Close it (or use it as a context manager) when done.
    """
    from distributed import LocalCluster

    from . import _validate

    n_workers = _validate.int_param(n_workers, "n_workers", 1)
    threads_per_worker = _validate.int_param(threads_per_worker, "threads_per_worker", 1)
    env = {**WORKER_ENV, **kwargs.pop("env", {})}
    # The scheduler's HTTP server (dashboard, health) on a free loopback port too:
    # the default ":8787" means every interface.
    kwargs.setdefault("dashboard_address", "127.0.0.1:0")
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                        processes=True, host="127.0.0.1", memory_limit=memory_limit,
                        env=env, **kwargs)


def _security(scheduler, tls_ca_file, tls_cert, tls_key):
    files = {"tls_ca_file": tls_ca_file, "tls_client_cert": tls_cert,
             "tls_client_key": tls_key}
    given = {k: v for k, v in files.items() if v is not None}
    if not given:
        return None  # Client then reads Dask's configuration (distributed.comm.tls.*)
    if not scheduler.startswith("tls://"):
        raise ValueError("the TLS certificate options need a tls:// scheduler address, "
                         f"got {scheduler!r}")
    missing = [k for k in files if k not in given]
    if missing:
        raise ValueError(f"TLS needs a CA file, a certificate and a key; missing: "
                         f"{', '.join(missing)}")
    from distributed.security import Security

    return Security(**given, require_encryption=True)


@contextlib.contextmanager
def dask_client(scheduler="local", *, workers=2, threads_per_worker=1, memory_limit="auto",
                tls_ca_file=None, tls_cert=None, tls_key=None, timeout=30):
    """A ``distributed.Client`` for the ``dask`` backend, closed on exit.

    Parameters
    ----------
    scheduler : str, default "local"
        ``"local"`` starts :func:`local_cluster` (``workers`` processes of
        ``threads_per_worker`` threads, loopback only) and stops it on exit;
        ``"tcp://HOST:PORT"`` or ``"tls://HOST:PORT"`` joins a running cluster
        (left running on exit).
    tls_ca_file, tls_cert, tls_key : str, optional
        PEM files for a ``tls://`` scheduler. Without them a ``tls://``
        address uses Dask's own security configuration
        (``distributed.comm.tls.ca-file``, ``.client.cert``, ``.client.key``).
    timeout : float
        Seconds to wait for a remote scheduler.

    Yields
    ------
    distributed.Client
        Also the default client, so Dask computations in the block run on it.
    """
    from distributed import Client

    if scheduler == "local":
        if any(v is not None for v in (tls_ca_file, tls_cert, tls_key)):
            raise ValueError("the TLS certificate options are for a tls:// scheduler, "
                             "not the local cluster (which listens on 127.0.0.1 only)")
        with local_cluster(workers, threads_per_worker=threads_per_worker,
                           memory_limit=memory_limit) as cluster, Client(cluster) as client:
            with _lost_workers_in_one_line():
                yield client
        return
    if not scheduler.startswith(("tcp://", "tls://")):
        raise ValueError(f"scheduler must be 'local', tcp://HOST:PORT or tls://HOST:PORT, "
                         f"got {scheduler!r}")
    security = _security(scheduler, tls_ca_file, tls_cert, tls_key)
    try:
        client = Client(scheduler, security=security, timeout=timeout)
    except OSError as exc:  # TimeoutError included: say where and why, in one line
        raise OSError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client, _lost_workers_in_one_line():
        yield client


@contextlib.contextmanager
def _lost_workers_in_one_line():
    """A computation the scheduler gave up on, as one ``ConnectionError`` line.

    The scheduler recomputes whatever a dead worker held and retries its tasks
    elsewhere; only when the same task has killed ``allowed-failures`` workers
    does it give up, with ``KilledWorker``.
    """
    from distributed.scheduler import KilledWorker

    try:
        yield
    except KilledWorker as exc:
        raise ConnectionError(
            f"the Dask cluster lost a worker each of the {exc.allowed_failures + 1} times it "
            f"ran task {exc.task!r} (the last was {exc.last_worker.address}); a worker "
            f"died running it (killed, or over its memory limit: try smaller chunks)"
        ) from None


# -- the data of the commands (make-data, train --backend dask) --------------

def write_spiral(path, *, n_per_class, n_classes, n_features, noise, seed, dtype,
                 chunk_rows=None, shuffle=False, overwrite=False):
    """``fastsoftmax make-data``: generate a spiral on Dask and store it at ``path``.

    ``y`` is stored as the smallest unsigned integer type for ``n_classes``
    labels (``uint8`` up to 256). Returns ``(N, number of blocks)``.
    """
    from ._dask_data import MAKE_DATA_CHUNK_ROWS, save_zarr
    from .datasets import make_spiral

    n = n_per_class * n_classes
    rows = chunk_rows or min(MAKE_DATA_CHUNK_ROWS, n)
    X, y = make_spiral(n_per_class, n_classes, n_features=n_features, noise=noise, seed=seed,
                       shuffle=shuffle, dtype=dtype, backend="dask", chunks=rows)
    # Out of core the labels are read on every pass: the smallest type that holds
    # K labels (uint8 up to 256 classes) reads 4x less than int32.
    y = y.astype(np.min_scalar_type(n_classes - 1))
    attrs = {"n_per_class": n_per_class, "n_classes": n_classes, "n_features": n_features,
             "noise": noise, "seed": seed, "dtype": dtype, "chunk_rows": rows,
             "shuffle": shuffle}
    save_zarr(path, X, y, attrs=attrs, overwrite=overwrite)
    return n, X.numblocks[0]


def training_data(data, *, n_per_class, n_classes, n_features, noise, seed, dtype,
                  chunk_rows=None, persist=False):
    """``fastsoftmax train --backend dask``: ``(X, y)`` from a store (``data``) or
    a generated spiral, optionally persisted in the workers' memory."""
    import dask

    from ._dask_data import load_zarr
    from .datasets import make_spiral

    if data is not None:
        X, y = load_zarr(data, chunks=chunk_rows)
        if np.dtype(X.dtype).name != dtype:
            X = X.astype(dtype)
    else:
        # Class-major, as the one-process `train` (the order is immaterial to a full batch).
        X, y = make_spiral(n_per_class, n_classes, n_features=n_features, noise=noise,
                           shuffle=False, seed=seed, dtype=dtype, backend="dask",
                           chunks=chunk_rows)
    if persist:
        X, y = dask.persist(X, y)
    return X, y
