"""Soft-decision decoding of the payload's BCH code: CRC-aided ordered-statistics decoding (OSD).

The decoder network gives a confidence with every bit, and the wrong bits are
mostly the unsure ones.  Hard-decision BCH decoding throws that away and stops
at ``t`` errors.  OSD (Fossorier and Lin, 1995) uses it: it takes the ``k``
most reliable bits that are linearly independent for the code (the "most
reliable basis"), trusts them and re-encodes; a codeword whose basis bits hold
up to ``order`` errors is then that re-encoding with ``order`` basis bits
flipped.

Most of those flip patterns give codewords that the payload's own checks
(the CRC, the version bits, the zero padding: linear equations over the data
bits, see ``checks``) reject.  So the patterns are not listed one by one:
each basis row has a check signature (what flipping it does to the checks),
and a pattern passes when its rows' signatures XOR to what the re-encoding
lacks.  Patterns are split into a left half (the ``ceil(order / 2)``
lowest flipped rows) and a right half (the rest, all higher), and the halves
are paired by signature through a table of right halves bucketed by it (meet
in the middle).  At k = 128
and order 6 that examines every one of the 4.8e9 patterns of up to six flips
while building only about 350,000 half patterns and the few thousand pairs
whose signatures match.  The survivors are ranked by how much confidence they
contradict.

The detection bound of :mod:`mbrs_engine.payload` does not depend on how the
codeword was found: for a uniform random word, the expected number of
codewords with a valid CRC within Hamming distance ``d`` is
``V(n, d) * 2^-(r + 16)``.  So a codeword found by OSD at distance ``d`` from
the hard decisions gets the same p-value as one BCH corrected with ``d``
errors, and the false-positive guarantee stands, however deep the search.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

#: Flip patterns of up to this many bits in the most reliable basis are searched.
DEFAULT_ORDER = 6
#: At most this many signature bits bucket the right halves (a table of 2^20 counts; the rest are compared after).
_MATCH_BITS = 20
#: Searches beyond order 2 need this many check bits, or the pairs that match would not fit in memory.
MIN_CHECK_BITS_DEEP = 16
#: Long codes get a lower order, so that the half patterns stay below this many (order 6 up to k = 133,
#: 4 up to k = 893, then 2).
MAX_HALF_PATTERNS = 400_000


def search_order(k: int, order: int = DEFAULT_ORDER) -> int:
    """The order searched for a basis of k bits: ``order``, lowered in steps of 2 until it is affordable."""
    while order > 2 and sum(math.comb(k, s) for s in range((order + 1) // 2 + 1)) > MAX_HALF_PATTERNS:
        order -= 2
    return order


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


@lru_cache(maxsize=8)
def _half_patterns(k: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The halves of the flip patterns of at most ``order`` rows of k, which depend on k and order only.

    Returns (left, right, full, table_bits, right_size): ``left`` every set of
    at most ceil(order / 2) rows, padded with k (no row), ascending in each set;
    ``right`` the indices into ``left`` of the sets of 1 to floor(order / 2)
    rows (a right half); ``full`` those of the left sets with ceil(order / 2)
    rows (only they take a right half); ``table_bits`` the signature bits to
    bucket right halves by.
    """
    left_size, right_size = (order + 1) // 2, order // 2
    sets, counts = [], []
    for s in range(left_size + 1):
        combos = list(itertools.combinations(range(k), s))
        combos = np.array(combos, dtype=np.int64).reshape(len(combos), s)
        sets.append(np.pad(combos, ((0, 0), (0, left_size - s)), constant_values=k))
        counts.append(np.full(len(combos), s))
    left, count = np.concatenate(sets), np.concatenate(counts)
    right = np.flatnonzero((count >= 1) & (count <= right_size))
    table_bits = min(_MATCH_BITS, max(1, len(right).bit_length()))
    return left, right, np.flatnonzero(count == left_size), table_bits, right_size


def _pack(bits: np.ndarray) -> np.ndarray:
    """Rows of at most 62 bits -> int64."""
    weights = np.left_shift(np.int64(1), np.arange(bits.shape[-1], dtype=np.int64))
    return (bits.astype(np.int64) * weights).sum(-1)


def _matching_patterns(row_sig: np.ndarray, need: int, k: int, order: int) -> np.ndarray:
    """Every set of at most ``order`` rows whose signatures XOR to ``need``: (count, order) padded with k.

    Each set is split once: its lowest rows on the left, and rows on the right
    only once the left half is full.
    """
    left, right, full, table_bits, right_size = _half_patterns(k, order)
    sig = np.append(row_sig, 0)                                  # index k: no row
    left_sig = np.zeros(len(left), np.int64)
    for column in left.T:
        left_sig ^= sig[column]
    alone = np.pad(left[left_sig == need], ((0, 0), (0, right_size)), constant_values=k)
    if not len(right) or not len(full):
        return alone
    # Right halves bucketed by their signature's low bits; each full left half takes its bucket, then
    # keeps the right halves that lie above it.
    mask = (1 << table_bits) - 1
    bucket = (left_sig[right] & mask).astype(np.int32)
    by_bucket = right[_grouped(bucket)]
    size = np.bincount(bucket, minlength=mask + 1)
    start = np.cumsum(size) - size
    want = (left_sig[full] ^ need) & mask
    count = size[want]
    li = np.repeat(full, count)
    ri = by_bucket[np.repeat(start[want] - np.cumsum(count) + count, count) + np.arange(count.sum())]
    keep = (left[ri, 0] > left[li, -1]) & ((left_sig[li] ^ left_sig[ri]) == need)   # above; all check bits
    return np.concatenate([alone, np.concatenate([left[li[keep]], left[ri[keep], :right_size]], axis=1)])


def _grouped(values: np.ndarray) -> np.ndarray:
    """The order that sorts non-negative ints below 2^32: a radix sort in two 16-bit passes (numpy's stable sort
    of 16-bit keys is a radix sort, about 10x faster than its sorts of wider ones)."""
    low = np.argsort((values & 0xFFFF).astype(np.uint16), kind="stable")
    return low[np.argsort((values[low] >> 16).astype(np.uint16), kind="stable")]


def osd_candidates(soft: np.ndarray, generator: np.ndarray, checks: np.ndarray, target: np.ndarray,
                   order: int = DEFAULT_ORDER) -> Iterator[tuple[np.ndarray, int]]:
    """Codewords c with ``checks @ c = target`` (mod 2) near the soft word, best first.

    Yields (codeword bits, Hamming distance to the hard decisions) for every
    codeword that differs from the re-encoded most reliable basis in at most
    ``order`` basis bits (see :func:`search_order` for long codes) and satisfies the checks, the one contradicting the
    least confidence first.  ``soft``: the n code bits as values in [0, 1]
    (bit = value > 0.5; 0.5 is no information); ``generator``: the code's
    (k, n) generator matrix (see :func:`generator_matrix`); ``checks``: (m, n)
    0/1 matrix of linear checks every wanted codeword passes, m <= 62, at
    least :data:`MIN_CHECK_BITS_DEEP` rows for ``order`` > 2; ``target``: m bits.
    """
    checks = np.asarray(checks, dtype=np.uint8).reshape(-1, generator.shape[1])
    if order < 0 or checks.shape[0] > 62 or (order > 2 and checks.shape[0] < MIN_CHECK_BITS_DEEP):
        raise ValueError(f"osd_candidates: {checks.shape[0]} check bits; order {order} needs "
                         f"{MIN_CHECK_BITS_DEEP if order > 2 else 0} to 62")
    soft = np.clip(np.asarray(soft, dtype=np.float64), 1e-6, 1 - 1e-6)
    hard = (soft > 0.5).astype(np.uint8)
    weight = np.abs(np.log(soft / (1 - soft)))          # |log-likelihood ratio|
    by_trust = np.argsort(-weight, kind="stable")
    reduced, pivots = _reduce(generator, by_trust)
    k = len(pivots)
    hard_p, weight_p = hard[by_trust], weight[by_trust]
    base = ((hard_p[pivots] @ reduced) % 2).astype(np.uint8)
    checks_p = checks[:, by_trust].astype(np.int64)
    row_sig = _pack((reduced @ checks_p.T) % 2)
    need = int(_pack((checks_p @ base + np.asarray(target, dtype=np.int64)) % 2))
    patterns = _matching_patterns(row_sig, need, k, search_order(k, order))
    n_bits = reduced.shape[1]
    rows = np.vstack([np.packbits(reduced, axis=1), np.zeros((1, (n_bits + 7) // 8), np.uint8)])  # row k: none
    flips = np.bitwise_xor.reduce(rows[patterns], axis=1)
    wrong = np.unpackbits(flips ^ np.packbits(base ^ hard_p), axis=1, count=n_bits).astype(np.float32)
    cost, distance = wrong @ weight_p.astype(np.float32), wrong.sum(axis=1)
    unpermute = np.empty_like(by_trust)
    unpermute[by_trust] = np.arange(len(by_trust))
    for i in np.argsort(cost, kind="stable"):
        candidate = base ^ np.unpackbits(flips[i], count=n_bits)
        yield candidate[unpermute], int(distance[i])
