"""Text payloads: UTF-8 text <-> the L raw bits a model carries, with a CRC, BCH error correction
and a detection test with a stated false-positive bound.

Layout (a deterministic function of L alone, see :func:`layout_for`)::

    data (D bits, D = 8 * data bytes):
        version (2 bits, = 1) | length (ceil(log2(C + 1)) bits) | text field (8 * C bits) | zeros | CRC-16
    then BCH parity (m * t bits, bchlib, over the data bytes), then zero spare bits up to L.

C is the capacity in UTF-8 bytes (= characters for ASCII text).  The CRC is
CRC-16/CCITT-FALSE (``binascii.crc_hqx`` with initial value 0xFFFF) over the
D - 16 bits before it, packed into bytes most significant bit first.  The BCH
code is the shortest primitive one that covers L (field order
m = max(5, bit length of L), length 2^m - 1, shortened) with t chosen so that
about half the L bits are parity (t = floor(L / 2 / m)), lowered until the
text field holds at least :data:`MIN_CAPACITY` bytes; a layout also needs at
least :data:`MIN_CHECK_BITS` parity + CRC bits.  Too-small L raise
:class:`PayloadUnsupportedError` (such a model carries raw bits only).

Before embedding, the L bits are whitened and scrambled: XOR with a mask and a
permutation, both drawn from SHA-256 in counter mode, seeded by a fixed public
string (no key) or by the secret key.  Without the right key the BCH decoder
and the CRC see random bits, so the message cannot be read.

Detection test.  Under the null hypothesis (the image carries no watermark of
this model and key) the decoded hard bits are taken to be uniform and
independent.  The BCH decoder then corrects ``e`` or fewer errors with
probability ``V(n, e) / 2^r`` exactly (n = code bits, r = parity bits,
``V(n, e) = sum_{i<=e} C(n, i)``: the decoding balls of the 2^(n-r) codewords
are disjoint), and the decoded data's CRC then matches with probability
``2^-16``.  So::

    p_value = min(1, N * V(n, e) * 2^-(r + 16))

where N is the number of synchronisation hypotheses tried (Bonferroni).  The
version, length and padding checks only lower the true probability, so this is
an upper bound.

Soft decoding and erasures.  When hard-decision BCH fails, ordered-statistics
decoding (:mod:`mbrs_engine.soft_decoding`) looks for a codeword using the
decoder's confidences and may land further than ``t`` from the hard bits.  The
bound above holds for any codeword at distance ``e``, however it was found: the
expected number of codewords with a valid CRC within ``e`` of a uniform random
word is ``V(n, e) * 2^-(r + 16)``.  Bits known in advance to carry nothing (the
part of a presumed original frame that a crop removed, fixed by the
synchronisation hypothesis before looking at the bits) can be declared
*erased*: they are ignored, and with ``n'`` code bits left the bound becomes
``V(n', e) * 2^-(n' - k + 16)`` with ``e`` counted on those ``n'`` bits
(k = n - r data bits).  ``detected = crc holds and payload well formed and p_value <
threshold`` (default 1e-6): the false-positive rate is at most the threshold.
A decoded message is returned only when detected.
"""
from __future__ import annotations

import binascii
import hashlib
import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import bchlib

from .soft_decoding import generator_matrix, osd_candidates

FORMAT_VERSION = 1
VERSION_BITS = 2
CRC_BITS = 16
#: Target share of the L bits given to BCH parity.
PARITY_FRACTION = 0.5
#: The smallest text capacity (UTF-8 bytes) a layout must offer.
MIN_CAPACITY = 2
#: The fewest parity + CRC bits a layout may have: then an error-free payload has p <= 2^-30, detectable
#: at the default threshold even when the p-value is multiplied by up to 1000 hypotheses.
MIN_CHECK_BITS = 30
#: Soft decoding looks at most this many candidates (cheapest first) for one under the threshold.
MAX_CHECKED = 16
#: Default significance level of the detection test (the false-positive bound per image).
DEFAULT_THRESHOLD = 1e-6
_MIN_M, _MAX_M = 5, 15
_PUBLIC_SEED = b"mbrs-studio/payload/v1/public"
_KEYED_SEED = b"mbrs-studio/payload/v1/key\x00"


class PayloadError(ValueError):
    """A text payload that cannot be coded for this model."""


class PayloadTooLongError(PayloadError):
    """The text does not fit the model's capacity (never truncated)."""


class PayloadUnsupportedError(PayloadError):
    """The model's message is too short for a text payload with BCH and CRC: raw bits only."""


@dataclass(frozen=True)
class PayloadLayout:
    """Where everything sits in the L bits of one model."""

    message_length: int  # L
    bch_m: int
    bch_t: int
    ecc_bits: int  # r
    data_bits: int  # D, a multiple of 8
    capacity: int  # C, text bytes
    length_bits: int

    @property
    def code_bits(self) -> int:
        """n: the bits the BCH code protects (data + parity)."""
        return self.data_bits + self.ecc_bits

    @property
    def spare_bits(self) -> int:
        return self.message_length - self.code_bits

    @property
    def checked_bits(self) -> int:
        """Bits covered by the CRC (everything in the data before it)."""
        return self.data_bits - CRC_BITS

    def describe(self) -> str:
        padding = self.checked_bits - VERSION_BITS - self.length_bits - 8 * self.capacity
        return (f"L={self.message_length}: version {VERSION_BITS} + length {self.length_bits} + text "
                f"{8 * self.capacity} + padding {padding}"
                f" + CRC {CRC_BITS} = {self.data_bits} data bits; BCH(m={self.bch_m}, t={self.bch_t}) "
                f"{self.ecc_bits} parity bits; {self.spare_bits} spare; capacity {self.capacity} bytes, "
                f"corrects up to {self.bch_t} bit errors")


@dataclass
class DecodeResult:
    """Outcome of reading a payload (and, from :class:`~mbrs_engine.watermarker.Watermarker`, an image)."""

    message: str | None  # the text, only when detected
    detected: bool
    p_value: float
    corrected_bits: np.ndarray  # L bits after error correction (the hard bits when it failed)
    soft: np.ndarray  # L values in [0, 1] as decoded
    bit_errors_corrected: int | None  # distance of the decoded codeword from the hard bits; None if none found
    crc_ok: bool
    hypotheses: int = 1  # synchronisation hypotheses the p-value is corrected for
    frame: str = "full"  # the hypothesis that gave this result
    threshold: float = DEFAULT_THRESHOLD
    erased_bits: int = 0  # code bits ignored as carrying nothing (outside the frame of a crop hypothesis)
    soft_decoded: bool = False  # found by soft-decision (ordered-statistics) decoding, not by BCH alone
    model: str | None = None  # the model that read it (set by Watermarker.decode)
    # where in the image it was read (set by Watermarker.decode when detected): polygons of image pixels, the
    # tiles of the lattice found (four corners each) or the image's own rectangle (the whole-frame layout)
    outlines: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def describe_correction(self) -> str:
        """One line on what the error correction did, for people."""
        if self.bit_errors_corrected is None:
            return "the error correction found no codeword"
        text = f"{self.bit_errors_corrected} bit error(s) corrected"
        if self.soft_decoded:
            text += " by soft decoding"
        if self.erased_bits:
            text += f", {self.erased_bits} bits outside the crop ignored"
        return text + ("" if self.crc_ok else ", but the CRC failed")


# ---------------------------------------------------------------- layout


def _length_bits(capacity: int) -> int:
    return max(capacity, 0).bit_length()


def _text_capacity(data_bits: int) -> int:
    """Largest C with version + length + 8C + CRC <= data_bits (-1 when even C = 0 does not fit)."""
    c = max((data_bits - VERSION_BITS - CRC_BITS) // 8, -1)
    while c >= 0 and VERSION_BITS + _length_bits(c) + 8 * c + CRC_BITS > data_bits:
        c -= 1
    return c


@lru_cache(maxsize=None)
def _bch(t: int, m: int) -> "bchlib.BCH":
    import bchlib  # here, not at the top: loading a model's networks (a GPU training machine) needs no BCH
    return bchlib.BCH(t, m=m)


def _try_layout(L: int) -> PayloadLayout | None:
    m = min(max(_MIN_M, L.bit_length()), _MAX_M)
    n_max = min(L, 2**m - 1)
    for t in range(max(1, int(PARITY_FRACTION * n_max) // m), 0, -1):
        try:
            ecc_bits = _bch(t, m).ecc_bits
        except RuntimeError:  # beyond what bchlib supports for this field: try a smaller t
            continue
        data_bits = 8 * ((n_max - ecc_bits) // 8)
        capacity = _text_capacity(data_bits)
        if capacity >= MIN_CAPACITY and ecc_bits + CRC_BITS >= MIN_CHECK_BITS:
            return PayloadLayout(L, m, t, ecc_bits, data_bits, capacity, _length_bits(capacity))
    return None


@lru_cache(maxsize=1)
def min_message_length() -> int:
    """The smallest L that takes a text payload."""
    return next(L for L in range(1, 4096) if _try_layout(L) is not None)


@lru_cache(maxsize=None)
def layout_for(message_length: int) -> PayloadLayout:
    """The payload layout of a model carrying ``message_length`` bits."""
    if isinstance(message_length, bool) or not isinstance(message_length, int) or message_length < 1:
        raise PayloadError(f"message length must be a positive integer, got {message_length!r}")
    layout = _try_layout(message_length)
    if layout is None:
        raise PayloadUnsupportedError(
            f"this model carries only {message_length} bits, too few for a text payload with error correction "
            f"(at least {min_message_length()} needed): it supports raw bits only (embed_bits / decode_bits)")
    return layout


def capacity(message_length: int) -> int:
    """How many UTF-8 bytes of text fit (= characters for ASCII; é takes 2, 日 3, emoji 4)."""
    return layout_for(message_length).capacity


# ---------------------------------------------------------------- scrambling


def _key_bytes(key: str | bytes | None) -> bytes | None:
    """The key as bytes (None: no key); a clear error for empty or non-text keys."""
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise PayloadError("the secret key must be a non-empty string")
    return bytes(key)


def _key_seed(key: bytes | None) -> bytes:
    if key is None:
        return hashlib.sha256(_PUBLIC_SEED).digest()
    return hashlib.sha256(_KEYED_SEED + key).digest()


def _stream(seed: bytes, label: bytes, nbytes: int) -> np.ndarray:
    """``nbytes`` pseudo-random bytes: SHA-256(seed | label | counter) blocks."""
    blocks = (hashlib.sha256(seed + label + i.to_bytes(4, "big")).digest() for i in range(-(-nbytes // 32)))
    return np.frombuffer(b"".join(blocks), dtype=np.uint8)[:nbytes]


def _scrambler(key: str | bytes | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(permutation, XOR mask) of ``n`` bits for a key; deterministic across platforms and versions."""
    return _cached_scrambler(_key_bytes(key), n)


@lru_cache(maxsize=64)
def _cached_scrambler(key: bytes | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    seed = _key_seed(key)
    mask = np.unpackbits(_stream(seed, b"mask", -(-n // 8)))[:n]
    sort_keys = _stream(seed, b"perm", 8 * n).view(">u8")
    perm = np.argsort(sort_keys, kind="stable")
    return perm, mask


def scramble(bits: np.ndarray, key: str | bytes | None = None) -> np.ndarray:
    """Codeword order to embedded order: ``out[i] = bits[perm[i]] ^ mask[i]``."""
    perm, mask = _scrambler(key, len(bits))
    return (np.asarray(bits, dtype=np.uint8)[perm] ^ mask).astype(np.uint8)


def unscramble_soft(soft: np.ndarray, key: str | bytes | None = None) -> np.ndarray:
    """Embedded order back to codeword order, for soft values in [0, 1]."""
    perm, mask = _scrambler(key, len(soft))
    out = np.empty(len(soft), dtype=np.float64)
    out[perm] = np.where(mask.astype(bool), 1.0 - soft, soft)
    return out


# ---------------------------------------------------------------- bit fields


def _int_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _bits_int(bits: np.ndarray) -> int:
    return int("".join(map(str, bits.tolist())) or "0", 2)


def _crc_bits(bits: np.ndarray) -> np.ndarray:
    crc = binascii.crc_hqx(np.packbits(bits).tobytes(), 0xFFFF)
    return np.array(_int_bits(crc, CRC_BITS), dtype=np.uint8)


def _data_bits(layout: PayloadLayout, text_bytes: bytes) -> np.ndarray:
    head = _int_bits(FORMAT_VERSION, VERSION_BITS) + _int_bits(len(text_bytes), layout.length_bits)
    body = np.unpackbits(np.frombuffer(text_bytes, dtype=np.uint8))
    checked = np.zeros(layout.checked_bits, dtype=np.uint8)
    checked[:len(head)] = head
    checked[len(head):len(head) + len(body)] = body
    return np.concatenate([checked, _crc_bits(checked)])


def _bch_encode(layout: PayloadLayout, data_bits: np.ndarray) -> np.ndarray:
    ecc = _bch(layout.bch_t, layout.bch_m).encode(np.packbits(data_bits).tobytes())
    return np.unpackbits(np.frombuffer(ecc, dtype=np.uint8))[:layout.ecc_bits]


def _codeword(layout: PayloadLayout, data_bits: np.ndarray) -> np.ndarray:
    spare = np.zeros(layout.spare_bits, dtype=np.uint8)
    return np.concatenate([data_bits, _bch_encode(layout, data_bits), spare])


def encode_text(text: str, message_length: int, key: str | bytes | None = None) -> np.ndarray:
    """The L bits (uint8 0/1, embedded order) that carry ``text``; raises if it does not fit."""
    if not isinstance(text, str):
        raise PayloadError(f"the message must be text, got {type(text).__name__}")
    layout = layout_for(message_length)
    raw = text.encode("utf-8")
    if len(raw) > layout.capacity:
        extra = "" if len(raw) == len(text) else f" ({len(text)} characters, some of them multibyte)"
        raise PayloadTooLongError(
            f"message too long: {len(raw)} UTF-8 bytes{extra}, this model holds at most {layout.capacity} "
            f"(ASCII characters take 1 byte, accented letters 2, most other scripts 3, emoji 4)")
    return scramble(_codeword(layout, _data_bits(layout, raw)), key)


# ---------------------------------------------------------------- decoding


def p_value(layout: PayloadLayout, errors: int, hypotheses: int = 1, erased: int = 0) -> float:
    """Null probability that a codeword with a valid CRC lies within ``errors`` of a random word, times
    ``hypotheses``; with ``erased`` code bits ignored, distances count the other ``n - erased`` bits."""
    n = layout.code_bits - erased
    volume = sum(math.comb(n, i) for i in range(errors + 1))
    return min(1.0, hypotheses * math.ldexp(float(volume), -(n - layout.data_bits + CRC_BITS)))


@lru_cache(maxsize=None)
def _generator(layout: PayloadLayout) -> np.ndarray:
    return generator_matrix(lambda data: _bch_encode(layout, data), layout.data_bits)


def _format_syndrome(layout: PayloadLayout, data_bits: np.ndarray) -> np.ndarray:
    """The version bits, the padding after the text field and the CRC mismatch: all 0 but the version's
    low bit for a well-formed payload (the length field and UTF-8 are checked by :func:`_parse_text`)."""
    checked = data_bits[:layout.checked_bits]
    padding = checked[VERSION_BITS + layout.length_bits + 8 * layout.capacity:]
    return np.concatenate([checked[:VERSION_BITS], padding, _crc_bits(checked) ^ data_bits[layout.checked_bits:]])


@lru_cache(maxsize=None)
def _format_checks(layout: PayloadLayout) -> tuple[np.ndarray, np.ndarray]:
    """(checks, target): a codeword c is well formed (version, padding, CRC) iff ``checks @ c = target`` mod 2.

    The syndrome is affine in the data bits (the CRC is linear up to its
    initial value), so it is M d + s(0) with M's columns s(e_i) + s(0).
    """
    zero = _format_syndrome(layout, np.zeros(layout.data_bits, np.uint8))
    eye = np.eye(layout.data_bits, dtype=np.uint8)
    checks = np.zeros((len(zero), layout.code_bits), np.uint8)
    checks[:, :layout.data_bits] = np.stack([_format_syndrome(layout, row) ^ zero for row in eye], axis=1)
    wanted = np.zeros(len(zero), np.uint8)
    wanted[:VERSION_BITS] = _int_bits(FORMAT_VERSION, VERSION_BITS)
    return checks, wanted ^ zero


def _bch_correct(layout: PayloadLayout, code: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Corrected (data + parity) bits and the number of corrected errors, or None when decoding fails."""
    bch = _bch(layout.bch_t, layout.bch_m)
    data = bytearray(np.packbits(code[:layout.data_bits]).tobytes())
    ecc = bytearray(np.packbits(code[layout.data_bits:layout.code_bits]).tobytes())
    ecc += bytes(bch.ecc_bytes - len(ecc))  # bchlib sizes the buffer for m * t bits, which may exceed ecc_bits
    errors = bch.decode(data, ecc)
    if errors < 0:
        return None
    bch.correct(data, ecc)
    corrected = np.concatenate([np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8)),
                                np.unpackbits(np.frombuffer(bytes(ecc), dtype=np.uint8))[:layout.ecc_bits]])
    return corrected, errors


def _parse_text(layout: PayloadLayout, data_bits: np.ndarray) -> tuple[bool, str | None]:
    """(CRC holds, text if the payload is also well formed)."""
    checked = data_bits[:layout.checked_bits]
    if not np.array_equal(_crc_bits(checked), data_bits[layout.checked_bits:]):
        return False, None
    version = _bits_int(checked[:VERSION_BITS])
    length = _bits_int(checked[VERSION_BITS:VERSION_BITS + layout.length_bits])
    start = VERSION_BITS + layout.length_bits
    end = start + 8 * length
    if version != FORMAT_VERSION or length > layout.capacity or checked[end:].any():
        return True, None
    try:
        return True, np.packbits(checked[start:end]).tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return True, None


def _as_soft(soft, message_length: int) -> np.ndarray:
    arr = np.asarray(soft, dtype=np.float64).reshape(-1)
    if arr.shape != (message_length,):
        raise PayloadError(f"expected {message_length} soft bits, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise PayloadError("soft bits must be finite numbers")
    return np.clip(arr, 0.0, 1.0)


def _code_order(mask: np.ndarray, key: str | bytes | None) -> np.ndarray:
    """A per-bit flag in embedded order moved to codeword order (the permutation only, no XOR)."""
    perm, _ = _scrambler(key, len(mask))
    out = np.zeros(len(mask), dtype=bool)
    out[perm] = mask
    return out


def _check_erased(erased, message_length: int) -> np.ndarray:
    if erased is None:
        return np.zeros(message_length, dtype=bool)
    arr = np.asarray(erased, dtype=bool).reshape(-1)
    if arr.shape != (message_length,):
        raise PayloadError(f"expected {message_length} erasure flags, got {arr.size}")
    return arr


def decode_payload(soft, key: str | bytes | None = None, hypotheses: int = 1,
                   threshold: float = DEFAULT_THRESHOLD, erased=None, soft_decoding: bool = True) -> DecodeResult:
    """Read a text payload from L soft bits (embedded order, values in [0, 1], bit = value > 0.5).

    ``erased``: L flags (embedded order) of bits known to carry nothing, fixed
    before looking at the bits.  Hard-decision BCH is tried first (when
    nothing is erased), then ordered-statistics decoding unless
    ``soft_decoding`` is False.
    """
    arr = np.asarray(soft)
    layout = layout_for(int(arr.size))
    soft_bits = _as_soft(arr, layout.message_length)
    erased = _code_order(_check_erased(erased, layout.message_length), key)[:layout.code_bits]
    hard = (soft_bits > 0.5).astype(np.uint8)
    code_soft = unscramble_soft(soft_bits, key)[:layout.code_bits]
    code = (code_soft > 0.5).astype(np.uint8)
    result = DecodeResult(None, False, 1.0, hard, soft_bits.astype(np.float32), None, False,
                          hypotheses=hypotheses, threshold=threshold, erased_bits=int(erased.sum()))
    corrected = None if erased.any() else _bch_correct(layout, code)
    if corrected is not None:
        _take(result, layout, key, *corrected)
        if result.detected:
            return result
    if soft_decoding:
        code_soft[erased] = 0.5
        candidates = osd_candidates(code_soft, _generator(layout), *_format_checks(layout))
        for candidate, _ in itertools.islice(candidates, MAX_CHECKED):
            if _parse_text(layout, candidate[:layout.data_bits])[1] is None:
                continue
            distance = int(np.count_nonzero((candidate != code) & ~erased))
            if p_value(layout, distance, hypotheses, result.erased_bits) < threshold:
                result.soft_decoded = True
                _take(result, layout, key, candidate, distance)
                break
    return result


def _take(result: DecodeResult, layout: PayloadLayout, key, code_bits: np.ndarray, errors: int) -> None:
    """Fill ``result`` from a decoded codeword at ``errors`` from the hard bits (its CRC may not hold)."""
    crc_ok, text = _parse_text(layout, code_bits[:layout.data_bits])
    result.bit_errors_corrected = errors
    result.corrected_bits = scramble(np.concatenate([code_bits, np.zeros(layout.spare_bits, np.uint8)]), key)
    result.crc_ok = crc_ok
    if crc_ok:
        result.p_value = p_value(layout, errors, result.hypotheses, result.erased_bits)
    if text is not None and result.p_value < result.threshold:
        result.message, result.detected = text, True
