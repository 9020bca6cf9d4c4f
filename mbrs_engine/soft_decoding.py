"""Soft-decision decoding of the payload's BCH code: ordered-statistics decoding (OSD).

The decoder network gives a confidence with every bit, and the wrong bits are
mostly the unsure ones.  Hard-decision BCH decoding throws that away and stops
at ``t`` errors.  OSD (Fossorier and Lin, 1995) uses it: it takes the ``k``
most reliable bits that are linearly independent for the code (the "most
reliable basis"), trusts them, re-encodes, and then also tries every pattern
of up to ``order`` flips among them.  Each candidate is a codeword; they are
ranked by how much confidence they contradict, and the caller keeps the first
whose CRC and format hold.

The detection bound of :mod:`mbrs_engine.payload` does not depend on how the
codeword was found: for a uniform random word, the expected number of
codewords with a valid CRC within Hamming distance ``d`` is
``V(n, d) * 2^-(r + 16)``.  So a codeword found by OSD at distance ``d`` from
the hard decisions gets the same p-value as one BCH corrected with ``d``
errors, and the false-positive guarantee stands.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

#: Flip patterns of up to this many bits in the most reliable basis (order 2: 1 + k + k(k-1)/2 candidates).
DEFAULT_ORDER = 2
#: How many candidates (cheapest first) the caller gets to check for CRC and format.
MAX_CHECKED = 16


def generator_matrix(encode: Callable[[np.ndarray], np.ndarray], k: int) -> np.ndarray:
    """(k, n) systematic generator matrix [I | P] of a linear code, from its encoder (k data bits -> parity)."""
    eye = np.eye(k, dtype=np.uint8)
    return np.stack([np.concatenate([row, encode(row)]) for row in eye]).astype(np.uint8)


def _reduce(generator: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian elimination over GF(2) taking ``columns`` in order: (row-reduced matrix, pivot columns).

    The pivot columns are the first k linearly independent columns in that
    order; the reduced matrix spans the same code and is the identity on them.
    """
    m = generator[:, columns].copy()
    k, n = m.shape
    pivots = []
    row = 0
    for col in range(n):
        if row == k:
            break
        ones = np.nonzero(m[row:, col])[0]
        if ones.size == 0:
            continue
        r = row + ones[0]
        if r != row:
            m[[row, r]] = m[[r, row]]
        others = np.nonzero(m[:, col])[0]
        others = others[others != row]
        m[others] ^= m[row]
        pivots.append(col)
        row += 1
    return m, np.asarray(pivots)


def osd_candidates(soft: np.ndarray, generator: np.ndarray, order: int = DEFAULT_ORDER,
                   limit: int = MAX_CHECKED) -> Iterator[tuple[np.ndarray, int]]:
    """Codewords near the soft word, best first: (codeword bits, Hamming distance to the hard decisions).

    ``soft``: the n code bits as values in [0, 1] (bit = value > 0.5; 0.5 is
    no information); ``generator``: the code's (k, n) generator matrix (see
    :func:`generator_matrix`).  At most ``limit`` candidates are yielded.
    """
    soft = np.clip(np.asarray(soft, dtype=np.float64), 1e-6, 1 - 1e-6)
    hard = (soft > 0.5).astype(np.uint8)
    weight = np.abs(np.log(soft / (1 - soft)))          # |log-likelihood ratio|
    by_trust = np.argsort(-weight, kind="stable")
    reduced, pivots = _reduce(generator, by_trust)
    hard_p, weight_p = hard[by_trust], weight[by_trust]
    base = ((hard_p[pivots] @ reduced) % 2).astype(np.uint8)
    # The cost of a candidate base ^ f (f a sum of rows of ``reduced``) is sum(weight * (base ^ f != hard)),
    # = cost0 + f . v with v = weight * (1 - 2 * (base != hard)); for f = r_a ^ r_b that is
    # cost0 + u_a + u_b - 2 * (r_a * v) . r_b: no candidate needs to be built to rank them all.
    rows = reduced.astype(np.float32)
    v = (weight_p * (1.0 - 2.0 * (base != hard_p))).astype(np.float32)
    cost0 = float(weight_p @ (base != hard_p))
    u = rows @ v
    k = len(pivots)
    first, second = np.full(k + 1, -1), np.full(k + 1, -1)   # flipped rows of each candidate (-1: none)
    first[1:] = np.arange(k)
    costs = [np.array([cost0]), cost0 + u]
    if order >= 2:
        a, b = np.triu_indices(k, 1)
        first, second = np.concatenate([first, a]), np.concatenate([second, b])
        # einsum, not BLAS: with OMP_WAIT_POLICY=PASSIVE (see mbrs_engine) waking BLAS threads costs ~15 ms here
        cross = np.einsum("an,bn->ab", rows * v, rows)
        costs.append(cost0 + u[a] + u[b] - 2.0 * cross[a, b])
    cost = np.concatenate(costs if order >= 1 else costs[:1])
    unpermute = np.empty_like(by_trust)
    unpermute[by_trust] = np.arange(len(by_trust))
    for i in np.argsort(cost, kind="stable")[:limit]:
        candidate = base.copy()
        for row in (first[i], second[i]):
            if row >= 0:
                candidate ^= reduced[row]
        yield candidate[unpermute], int(np.count_nonzero(candidate != hard_p))
