"""Soft-decision payload decoding: OSD beyond the BCH radius, erasures, their p-values, and crop erasure maps."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mbrs_engine import payload as P
from mbrs_engine.nets import NetworkConfig
from mbrs_engine.soft_decoding import _grouped, _matching_patterns, generator_matrix, osd_candidates
from mbrs_engine.frames import Frame, erased_cells

LAYOUT = P.layout_for(256)


def code_order(mask: np.ndarray) -> np.ndarray:
    return P._code_order(mask, None)[:LAYOUT.code_bits]


def confident(bits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft values on the right side of 1/2, with varied confidence."""
    margin = rng.uniform(0.2, 0.5, len(bits))
    return np.where(bits == 1, 0.5 + margin, 0.5 - margin)


def test_generator_matrix_encodes_like_bch():
    G = P._generator(LAYOUT)
    rng = np.random.default_rng(0)
    for _ in range(5):
        data = rng.integers(0, 2, LAYOUT.data_bits, dtype=np.uint8)
        assert np.array_equal((data @ G) % 2, np.concatenate([data, P._bch_encode(LAYOUT, data)]))
    assert np.array_equal(generator_matrix(lambda d: d[:1] ^ d[1:2], 2), [[1, 0, 1], [0, 1, 1]])


def sent_codeword(text: str) -> np.ndarray:
    return P.unscramble_soft(P.encode_text(text, 256).astype(float))[:LAYOUT.code_bits].astype(np.uint8)


def test_osd_ranks_the_sent_codeword_first():
    G = P._generator(LAYOUT)
    rng = np.random.default_rng(1)
    sent = sent_codeword("osd")
    soft = confident(sent, rng)
    weak = rng.choice(len(sent), 30, replace=False)
    soft[weak] = np.where(sent[weak] == 1, 0.45, 0.55)        # 30 errors, all of them unsure
    checks, target = P._format_checks(LAYOUT)
    candidates = list(osd_candidates(soft, G, checks, target))
    assert np.array_equal(candidates[0][0], sent) and candidates[0][1] == 30
    assert all(np.array_equal(checks @ c % 2, target) for c, _ in candidates)    # well formed, every one
    assert all(np.array_equal(c[LAYOUT.data_bits:], P._bch_encode(LAYOUT, c[:LAYOUT.data_bits]))
               for c, _ in candidates[:20])                                       # BCH codewords


def test_format_checks_accept_exactly_the_well_formed_codewords():
    checks, target = P._format_checks(LAYOUT)
    assert checks.shape == (20, LAYOUT.code_bits)       # version 2 + padding 2 + CRC 16
    for text in ["", "a", "© Jane 2026", "x" * LAYOUT.capacity]:
        sent = sent_codeword(text)
        assert np.array_equal(checks @ sent % 2, target)
        for bit in (0, 1, 50, LAYOUT.checked_bits - 1, LAYOUT.data_bits - 1):
            broken = sent.copy()
            broken[bit] ^= 1
            assert not np.array_equal(checks @ broken % 2, target)
    assert not checks[:, LAYOUT.data_bits:].any()       # the parity is BCH's business


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 5])
def test_flip_patterns_are_every_matching_set_once(order):
    """The meet-in-the-middle search lists exactly the sets a brute force finds, each once."""
    rng = np.random.default_rng(order)
    k = 14
    row_sig = rng.integers(0, 2**6, k)
    need = int(np.bitwise_xor.reduce(row_sig[[1, 5, 9][:order]], initial=0))
    expected = {combo for size in range(order + 1) for combo in itertools.combinations(range(k), size)
                if np.bitwise_xor.reduce(row_sig[list(combo)], initial=0) == need}
    patterns = _matching_patterns(row_sig, need, k, order)
    found = [tuple(int(i) for i in sorted(row) if i < k) for row in patterns]
    assert len(found) == len(set(found)) and set(found) == expected and expected


def test_grouping_sorts_wide_keys():
    values = np.random.default_rng(3).integers(0, 1 << 20, 5000)
    order = _grouped(values)
    assert sorted(order.tolist()) == list(range(5000)) and np.all(np.diff(values[order]) >= 0)


def test_six_errors_among_the_trusted_bits_are_found():
    """24 errors, six of them confident enough to sit in the most reliable basis: beyond order 2."""
    G = P._generator(LAYOUT)
    rng = np.random.default_rng(7)
    sent = sent_codeword("deep search")
    soft = np.where(sent == 1, 0.5 + rng.uniform(0.2, 0.5, len(sent)), 0.5 - rng.uniform(0.2, 0.5, len(sent)))
    wrong = rng.choice(len(sent), 24, replace=False)
    soft[wrong[:18]] = np.where(sent[wrong[:18]] == 1, 0.45, 0.55)
    soft[wrong[18:]] = np.where(sent[wrong[18:]] == 1, 0.1, 0.9)      # confident and wrong
    word = np.zeros(256)
    word[:LAYOUT.code_bits] = soft
    perm, mask = P._scrambler(None, 256)
    received = np.where(mask.astype(bool), 1.0 - word[perm], word[perm])     # code order -> embedded order
    shallow = list(osd_candidates(soft, G, *P._format_checks(LAYOUT), order=2))
    assert not any(np.array_equal(c, sent) for c, _ in shallow)
    result = P.decode_payload(received)
    assert result.message == "deep search" and result.soft_decoded and result.bit_errors_corrected == 24


def test_deep_search_needs_check_bits():
    G = P._generator(LAYOUT)
    with pytest.raises(ValueError, match="check bits"):
        next(osd_candidates(np.full(LAYOUT.code_bits, 0.6), G, np.zeros((4, LAYOUT.code_bits)), np.zeros(4)))


@pytest.mark.parametrize("errors", [20, 24])
def test_unsure_errors_beyond_the_bch_radius_are_corrected(errors):
    rng = np.random.default_rng(errors)
    bits = P.encode_text("© Jane 2026", 256)
    soft = confident(bits, rng)
    perm, _ = P._scrambler(None, 256)
    wrong = rng.choice(np.flatnonzero(perm < LAYOUT.code_bits), errors, replace=False)   # not the spare bits
    soft[wrong] = np.where(bits[wrong] == 1, 0.4, 0.6)
    hard_only = P.decode_payload(soft, soft_decoding=False)
    assert not hard_only.detected                               # beyond t = 14
    result = P.decode_payload(soft)
    assert result.message == "© Jane 2026" and result.soft_decoded
    assert result.p_value == pytest.approx(P.p_value(LAYOUT, result.bit_errors_corrected))
    assert result.bit_errors_corrected <= errors and result.p_value < P.DEFAULT_THRESHOLD


def test_confident_errors_far_beyond_the_radius_are_not_read():
    rng = np.random.default_rng(3)
    bits = P.encode_text("far", 256)
    soft = confident(bits, rng)
    wrong = rng.choice(256, 60, replace=False)
    soft[wrong] = 1.0 - soft[wrong]
    result = P.decode_payload(soft)
    assert result.message is None and not result.detected


def test_erasures_are_ignored_and_counted_in_the_p_value():
    rng = np.random.default_rng(4)
    bits = P.encode_text("cropped", 256)
    soft = confident(bits, rng)
    erased = erased_cells(Frame(0.8), 16).reshape(-1)            # the outer ring of the 16 x 16 grid
    soft[erased] = 1.0 - soft[erased]                           # what a crop leaves there: confident nonsense
    kept = np.flatnonzero(~erased)
    wrong = rng.choice(kept, 6, replace=False)
    soft[wrong] = np.where(bits[wrong] == 1, 0.4, 0.6)
    assert P.decode_payload(soft).message is None
    result = P.decode_payload(soft, erased=erased)
    assert result.message == "cropped" and result.soft_decoded
    n_erased = int(code_order(erased).sum())
    assert result.erased_bits == n_erased and 56 <= n_erased <= 60
    assert result.bit_errors_corrected == 6
    assert result.p_value == pytest.approx(P.p_value(LAYOUT, 6, erased=n_erased))


def test_p_value_with_erasures():
    n, k = LAYOUT.code_bits - 60, LAYOUT.data_bits
    expected = sum(math.comb(n, i) for i in range(4)) / 2.0 ** (n - k + 16)
    assert P.p_value(LAYOUT, 3, erased=60) == pytest.approx(expected, rel=1e-12)
    assert P.p_value(LAYOUT, 3, erased=0) == P.p_value(LAYOUT, 3)


@pytest.mark.parametrize("trials", [pytest.param(400, marks=pytest.mark.slow), 60])
@pytest.mark.parametrize("area", [1.0, 0.6])
def test_random_words_are_not_detected(area, trials):
    """Under the null the detection rate of the full search stays below the threshold (checked at a loose 1 %)."""
    rng = np.random.default_rng(5)
    erased = erased_cells(Frame(area), 16).reshape(-1) if area < 1 else None
    threshold = 1e-2
    detected = sum(P.decode_payload(rng.random(256), erased=erased, threshold=threshold).detected
                   for _ in range(trials))
    assert detected <= trials * threshold + 4 * np.sqrt(trials * threshold)
    assert not any(P.decode_payload(rng.random(256), erased=erased).detected for _ in range(trials // 4))


def test_bad_erasure_flags():
    with pytest.raises(P.PayloadError, match="erasure flags"):
        P.decode_payload(np.zeros(256), erased=np.zeros(100, bool))


def test_erased_cells_follow_the_crop_geometry():
    centre = erased_cells(Frame(0.8), 16)
    assert (~centre).sum() == 14 * 14 and centre[0].all() and centre[:, -1].all() and not centre[1:15, 1:15].any()
    assert not erased_cells(Frame(1.0), 16).any()
    corner = erased_cells(Frame(0.64, "top-left"), 16)        # side 0.8: the image covers 12.8 of 16 cells
    assert not corner[:12, :12].any() and corner[13:].all() and corner[:, 13:].all()
    assert erased_cells(Frame(0.6), 16).sum() > centre.sum()


def test_watermarker_erases_only_for_crops_of_plain_models():
    from mbrs_engine import Watermarker
    from mbrs_engine.nets import build_from_config

    for cfg, expect in [(NetworkConfig(64, 64, channels=8, blocks=1), True),
                        (NetworkConfig(64, 30, channels=8, blocks=1, diffusion=True), False)]:
        encoder, decoder, _ = build_from_config(cfg)
        wm = Watermarker(encoder, decoder, cfg)
        assert wm.erased_bits(Frame()) is None
        mask = wm.erased_bits(Frame(0.7))
        assert (mask is not None) == expect
        if expect:
            assert mask.shape == (64,) and mask.reshape(8, 8)[0].all()


def test_the_correction_is_described():
    bits = P.encode_text("hi", 256)
    assert P.decode_payload(bits.astype(float)).describe_correction() == "0 bit error(s) corrected"
    erased = erased_cells(Frame(0.8), 16).reshape(-1)
    text = P.decode_payload(bits.astype(float), erased=erased).describe_correction()
    assert text.startswith("0 bit error(s) corrected by soft decoding, ") and "bits outside the crop" in text
    assert P.decode_payload(np.random.default_rng(0).random(256)).describe_correction().startswith("the error corr")


def test_long_codes_search_a_lower_order():
    from mbrs_engine.soft_decoding import search_order

    assert [search_order(k) for k in (40, 128, 133, 134, 893, 894)] == [6, 6, 6, 4, 4, 2]
    assert search_order(128, order=3) == 3 and search_order(900, order=5) == 1
    rng = np.random.default_rng(9)
    for length in (625, 1024):                           # k = 320 and 528: order 4, in a fraction of a second
        bits = P.encode_text("long", length)
        soft = np.where(bits == 1, 0.9, 0.1)
        assert P.decode_payload(soft).message == "long"
        assert not P.decode_payload(rng.random(length)).detected
