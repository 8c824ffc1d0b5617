"""Naive loop references: the maths written out element by element in plain
Python floats (double precision), with nothing shared with the library.

Slow on purpose; use on small inputs. Inputs are NumPy arrays or nested lists.
"""

import math


def scores(X, W, b):
    n, d, k = len(X), len(W), len(b)
    return [[b[j] + sum(X[i][t] * W[t][j] for t in range(d)) for j in range(k)]
            for i in range(n)]


def logsumexp_row(row):
    m = max(row)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(s - m) for s in row))


def softmax_row(row):
    lse = logsumexp_row(row)
    return [math.exp(s - lse) for s in row]


def cross_entropy_rows(S, y):
    return [logsumexp_row(S[i]) - S[i][int(y[i])] for i in range(len(S))]


def _factors(n, reduction, sample_weight):
    w = [1.0] * n if sample_weight is None else [float(v) for v in sample_weight]
    if reduction == "mean":
        total = sum(w)
        return [v / total for v in w]
    return w


def cross_entropy(S, y, reduction="mean", sample_weight=None):
    rows = cross_entropy_rows(S, y)
    c = _factors(len(S), reduction, sample_weight)
    weighted = [ci * li for ci, li in zip(c, rows)]
    return weighted if reduction == "none" else sum(weighted)


def cross_entropy_gradient(S, y, reduction="mean", sample_weight=None):
    c = _factors(len(S), reduction, sample_weight)
    dscores = []
    for i, row in enumerate(S):
        p = softmax_row(row)
        dscores.append([c[i] * (p[j] - (1.0 if j == int(y[i]) else 0.0))
                        for j in range(len(row))])
    return cross_entropy(S, y, reduction, sample_weight), dscores


def loss_gradient(X, y, W, b, reg=0.0, sample_weight=None):
    """``(loss, dW, db)`` of the linear softmax classifier, by loops."""
    n, d, k = len(X), len(W), len(b)
    S = scores(X, W, b)
    data, dscores = cross_entropy_gradient(S, y, "mean", sample_weight)
    penalty = 0.5 * reg * sum(W[t][j] ** 2 for t in range(d) for j in range(k))
    dW = [[sum(X[i][t] * dscores[i][j] for i in range(n)) + reg * W[t][j] for j in range(k)]
          for t in range(d)]
    db = [sum(dscores[i][j] for i in range(n)) for j in range(k)]
    return data + penalty, dW, db


def net_loss_gradient(X, y, W1, b1, W2, b2, reg=0.0, sample_weight=None):
    """``(loss, dW1, db1, dW2, db2)`` of the two-layer ReLU network, by loops."""
    n, d, h, k = len(X), len(W1), len(b1), len(b2)
    hidden = [[max(0.0, b1[u] + sum(X[i][t] * W1[t][u] for t in range(d))) for u in range(h)]
              for i in range(n)]
    S = scores(hidden, W2, b2)
    data, dscores = cross_entropy_gradient(S, y, "mean", sample_weight)
    penalty = 0.5 * reg * (sum(W1[t][u] ** 2 for t in range(d) for u in range(h))
                           + sum(W2[u][j] ** 2 for u in range(h) for j in range(k)))
    dW2 = [[sum(hidden[i][u] * dscores[i][j] for i in range(n)) + reg * W2[u][j]
            for j in range(k)] for u in range(h)]
    db2 = [sum(dscores[i][j] for i in range(n)) for j in range(k)]
    dhidden = [[sum(dscores[i][j] * W2[u][j] for j in range(k)) if hidden[i][u] > 0 else 0.0
                for u in range(h)] for i in range(n)]
    dW1 = [[sum(X[i][t] * dhidden[i][u] for i in range(n)) + reg * W1[t][u] for u in range(h)]
           for t in range(d)]
    db1 = [sum(dhidden[i][u] for i in range(n)) for u in range(h)]
    return data + penalty, dW1, db1, dW2, db2
