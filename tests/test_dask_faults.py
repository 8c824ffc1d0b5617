"""Faults on a real cluster: a worker killed in the middle of a fit.

The cluster here is the module's own (its workers get killed), not the
session's ``dask_client``.
"""

import os
import signal
import threading

import numpy as np
import pytest

import fastsoftmax as fs

pytest.importorskip("dask.array", reason="the dask tests need dask[array]")
distributed = pytest.importorskip("distributed", reason="the dask tests need distributed")


@pytest.fixture(scope="module")
def client():
    from fastsoftmax.distributed import local_cluster

    with local_cluster(2, threads_per_worker=1) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _kill_one_worker(client):
    """SIGKILL a worker process (its nanny starts a new, empty one)."""
    pid = next(iter(client.run(os.getpid).values()))
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("when", ["between", "during"])
@pytest.mark.parametrize("solver", ["gd", "lbfgs"])
def test_a_worker_killed_mid_fit_changes_nothing(client, solver, when):
    X, y = fs.make_spiral(600, 3, seed=1, backend="dask", chunks=150)
    # Persisted: the killed worker's blocks are lost and must be recomputed
    # from the generator's tasks -- the same bits, so the same fit.
    X, y = client.persist([X, y])
    kw = dict(solver=solver, max_iter=10, tol=0, random_state=0, backend="dask")
    calm = fs.SoftmaxClassifier(**kw).fit(X, y)
    killed = []

    def kill(i, loss):
        if i == 3:  # between two evaluations, or a moment into the next one
            if when == "between":
                killed.append(_kill_one_worker(client))
            else:
                threading.Timer(0.01, lambda: killed.append(_kill_one_worker(client))).start()

    hit = fs.SoftmaxClassifier(**kw).fit(X, y, callback=kill)
    client.wait_for_workers(2, timeout=60)
    assert killed and killed[0] not in client.run(os.getpid).values()
    assert hit.loss_history_ == calm.loss_history_
    assert np.array_equal(hit.W_, calm.W_) and np.array_equal(hit.b_, calm.b_)


def _die():
    os._exit(1)


def test_a_task_that_kills_every_worker_is_one_line_of_error():
    import dask

    from fastsoftmax.distributed import dask_client

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with pytest.raises(ConnectionError) as info, dask_client("local", workers=1) as c:
            c.submit(_die, pure=False).result()
    message = str(info.value)
    assert "\n" not in message and "lost a worker each of the 1 times" in message
