"""Soft-decision payload decoding: OSD beyond the BCH radius, erasures, their p-values, and crop erasure maps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mbrs_engine import payload as P
from mbrs_engine.nets import NetworkConfig
from mbrs_engine.soft_decoding import generator_matrix, osd_candidates
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


def test_osd_ranks_the_sent_codeword_first():
    G = P._generator(LAYOUT)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 2, LAYOUT.data_bits, dtype=np.uint8)
    sent = (data @ G) % 2
    soft = confident(sent, rng)
    weak = rng.choice(len(sent), 30, replace=False)
    soft[weak] = np.where(sent[weak] == 1, 0.45, 0.55)        # 30 errors, all of them unsure
    candidate, distance = next(osd_candidates(soft, G))
    assert np.array_equal(candidate, sent) and distance == 30


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


def test_random_words_with_erasures_are_not_detected():
    """Under the null the detection rate stays below the threshold (checked at a loose 1 %)."""
    rng = np.random.default_rng(5)
    erased = erased_cells(Frame(0.6), 16).reshape(-1)
    trials, threshold = 400, 1e-2
    detected = sum(P.decode_payload(rng.random(256), erased=erased, threshold=threshold).detected
                   for _ in range(trials))
    assert detected <= trials * threshold + 4 * np.sqrt(trials * threshold)
    assert not any(P.decode_payload(rng.random(256), erased=erased).detected for _ in range(100))


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
