"""Payload coding: layout, text round trips, error correction, keys, the p-value and its false-positive rate."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from mbrs_engine import payload as P

LENGTHS = [58, 60, 64, 100, 128, 256, 400, 625, 1024]


def flip(bits: np.ndarray, count: int, seed: int) -> np.ndarray:
    out = bits.astype(np.float64).copy()
    idx = np.random.default_rng(seed).choice(len(bits), count, replace=False)
    out[idx] = 1.0 - out[idx]
    return out


@pytest.mark.parametrize("length", LENGTHS)
def test_layout_is_consistent(length):
    layout = P.layout_for(length)
    assert layout.code_bits + layout.spare_bits == length and layout.spare_bits >= 0
    assert layout.code_bits <= 2**layout.bch_m - 1
    assert layout.data_bits % 8 == 0
    assert P.VERSION_BITS + layout.length_bits + 8 * layout.capacity + P.CRC_BITS <= layout.data_bits
    assert 2**layout.length_bits > layout.capacity >= P.MIN_CAPACITY
    assert layout.ecc_bits <= layout.bch_m * layout.bch_t
    assert layout.ecc_bits + P.CRC_BITS >= P.MIN_CHECK_BITS
    assert P.p_value(layout, 0, hypotheses=1000) < P.DEFAULT_THRESHOLD
    assert P.capacity(length) == layout.capacity


def test_documented_layouts():
    big = P.layout_for(256)
    assert (big.bch_m, big.bch_t, big.ecc_bits, big.data_bits, big.capacity) == (9, 14, 126, 128, 13)
    small = P.layout_for(64)
    assert (small.bch_m, small.bch_t, small.capacity) == (7, 3, 2)
    assert "capacity 13 bytes" in big.describe()


def test_too_short_models_carry_raw_bits_only():
    assert P.min_message_length() == 58
    with pytest.raises(P.PayloadUnsupportedError, match="raw bits only"):
        P.capacity(30)
    with pytest.raises(P.PayloadUnsupportedError, match="at least 58"):
        P.encode_text("a", 16)
    with pytest.raises(P.PayloadError):
        P.layout_for(0)


@pytest.mark.parametrize("length", LENGTHS)
def test_round_trip_clean(length):
    cap = P.capacity(length)
    for text in ["", "a", "Zé" if cap >= 3 else "é", "x" * cap]:
        bits = P.encode_text(text, length)
        assert bits.shape == (length,) and set(np.unique(bits)) <= {0, 1}
        result = P.decode_payload(bits.astype(float))
        assert result.detected and result.message == text
        assert result.bit_errors_corrected == 0 and result.crc_ok
        assert np.array_equal(result.corrected_bits, bits)


def test_non_ascii_round_trip():
    for text in ["héllo wörld", "日本語", "🙂 ok", "Ωμέγα"]:
        result = P.decode_payload(P.encode_text(text, 256).astype(float))
        assert result.message == text


@pytest.mark.parametrize("length", [64, 128, 256, 625])
def test_corrects_up_to_t_errors(length):
    layout = P.layout_for(length)
    bits = P.encode_text("ok", length)
    for seed in range(10):
        result = P.decode_payload(flip(bits, layout.bch_t, seed))
        assert result.message == "ok"
        assert result.bit_errors_corrected <= layout.bch_t
        assert np.array_equal(result.corrected_bits[:layout.code_bits], bits[:layout.code_bits]) or \
            result.bit_errors_corrected < layout.bch_t  # errors that hit spare bits are not counted


def test_beyond_t_errors_never_yields_a_wrong_message():
    layout = P.layout_for(256)
    bits = P.encode_text("secret plans", 256)
    for seed in range(30):              # 15 to 44 errors
        result = P.decode_payload(flip(bits, layout.bch_t + 1 + seed % 30, seed))
        assert result.message in (None, "secret plans")


def test_soft_values_are_thresholded_at_one_half():
    bits = P.encode_text("soft", 256)
    soft = np.where(bits == 1, 0.51, 0.49)
    assert P.decode_payload(soft).message == "soft"
    assert P.decode_payload(soft * 3 - 1).message == "soft"  # clipped to [0, 1] first


def test_too_long_is_an_error_never_truncation():
    cap = P.capacity(256)
    with pytest.raises(P.PayloadTooLongError, match=f"at most {cap}"):
        P.encode_text("x" * (cap + 1), 256)
    with pytest.raises(P.PayloadTooLongError, match="multibyte"):
        P.encode_text("é" * (cap // 2 + 1), 256)
    assert isinstance(P.PayloadTooLongError("x"), ValueError)
    with pytest.raises(P.PayloadError, match="text"):
        P.encode_text(b"bytes", 256)


def test_secret_key():
    bits = P.encode_text("keyed", 256, key="s3cret")
    assert not np.array_equal(bits, P.encode_text("keyed", 256))
    assert P.decode_payload(bits.astype(float), key="s3cret").message == "keyed"
    for wrong in (None, "s3cret ", "other"):
        result = P.decode_payload(bits.astype(float), key=wrong)
        assert not result.detected and result.message is None
    with pytest.raises(P.PayloadError, match="non-empty"):
        P.encode_text("x", 256, key="")


def test_format_is_stable():
    """The bits of a message must never change between versions (files watermarked today must stay readable)."""
    digest = lambda b: hashlib.sha256(b.tobytes()).hexdigest()  # noqa: E731
    assert digest(P.encode_text("MBRS", 256)) == "72a2faf3c0b5c1c17f57636085b96bc9618ec318ceed5933ecdcda6389bd0c30"
    assert digest(P.encode_text("MBRS", 256, key="secret")) == \
        "fc8b06b6a056d9f3af244396fcabedfd31acbc8d8d641c08ca08cf9cc228a259"
    assert "".join(map(str, P.encode_text("é", 64))) == \
        "1111101011100010110001110011000001111010111100111110101010111111"


def test_scrambler_is_a_permutation_and_mask():
    perm, mask = P._scrambler("k", 256)
    assert sorted(perm.tolist()) == list(range(256))
    assert 90 < mask.sum() < 166
    bits = np.random.default_rng(0).integers(0, 2, 256)
    back = P.unscramble_soft(P.scramble(bits, "k").astype(float), "k")
    assert np.array_equal(back, bits)


def test_p_value_formula():
    layout = P.layout_for(256)
    n, r = layout.code_bits, layout.ecc_bits
    for e in (0, 1, 5, 14):
        expected = sum(math.comb(n, i) for i in range(e + 1)) / 2.0 ** (r + 16)
        assert P.p_value(layout, e) == pytest.approx(expected, rel=1e-12)
        assert P.p_value(layout, e, hypotheses=5) == pytest.approx(5 * expected, rel=1e-12)
    assert P.p_value(layout, 14) < 1e-15  # at L=256 even a full correction is far below 1e-6
    small = P.layout_for(64)
    assert P.p_value(small, 3, hypotheses=5) > P.DEFAULT_THRESHOLD > P.p_value(small, 2, hypotheses=5)


def test_a_decode_above_the_threshold_returns_no_message():
    layout = P.layout_for(64)
    bits = P.encode_text("ok", 64)
    soft = flip(bits, 3, seed=1)
    result = P.decode_payload(soft)
    assert result.bit_errors_corrected == 3 and result.message == "ok"
    result = P.decode_payload(soft, hypotheses=5)
    assert result.crc_ok and not result.detected and result.message is None
    assert result.p_value == pytest.approx(P.p_value(layout, 3, 5))


def _bch_acceptance(length: int, trials: int, seed: int, decoded: int = 2000) -> tuple[np.ndarray, int]:
    """Counts of random words the BCH decoder accepts with e corrections (index e), and detections by the
    whole decoder (soft decoding included) among the first ``decoded`` words."""
    layout = P.layout_for(length)
    rng = np.random.default_rng(seed)
    counts = np.zeros(layout.bch_t + 1, dtype=int)
    detections = 0
    for i in range(trials):
        soft = rng.integers(0, 2, length).astype(float)
        corrected = P._bch_correct(layout, soft[:layout.code_bits].astype(np.uint8))
        if corrected is not None:
            counts[corrected[1]] += 1
        if i < decoded:
            detections += P.decode_payload(soft).detected
    return counts, detections


@pytest.mark.parametrize("length", [58, 64])
def test_false_positive_rate_matches_the_bound(length):
    """Random words: BCH accepts e corrections at rate C(n, e) / 2^r exactly, and nothing is detected."""
    layout = P.layout_for(length)
    trials = 6000
    counts, detections = _bch_acceptance(length, trials, seed=length)
    for e, count in enumerate(counts):
        rate = math.comb(layout.code_bits, e) / 2.0**layout.ecc_bits
        sigma = math.sqrt(trials * rate * (1 - rate))
        assert abs(count - trials * rate) <= 4 * sigma + 1, (e, count, trials * rate)
    assert detections == 0  # the bound: at most trials * 1e-6 expected
