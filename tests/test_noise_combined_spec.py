"""The per-mini-batch Combined layer and the safe text spec parser."""
from __future__ import annotations

import ast
import io
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from mbrs_engine.noise import (BrightnessContrast, Chain, Combined, Crop, Dropout, GaussianBlur, Identity, Ladder,
                               NoiseLayer, NoiseSpecError, available_layers, parse_noise)
from mbrs_engine.noise import jpeg as jpeg_layers
from mbrs_engine.noise import spec as spec_module


def choices(layer: Combined, n: int) -> list[int]:
    return [layer.draw() for _ in range(n)]


def pool(**kwargs) -> Combined:
    return Combined([Identity(), Crop(0.5), GaussianBlur(1)], **kwargs)


# ---------------------------------------------------------------- Combined

def test_combined_seeded_sequence_is_reproducible_and_not_constant():
    a, b = choices(pool(seed=0), 60), choices(pool(seed=0), 60)
    assert a == b and len(set(a)) == 3
    assert choices(pool(seed=1), 60) != a


def test_combined_unseeded_follows_the_global_seed():
    torch.manual_seed(3)
    a = choices(pool(), 40)
    torch.manual_seed(3)
    assert choices(pool(), 40) == a


def test_combined_draws_do_not_touch_the_global_rng():
    layer = pool(seed=0)
    torch.manual_seed(0)
    choices(layer, 10)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after)


def test_combined_frequencies_roughly_uniform_and_weighted():
    counts = torch.bincount(torch.tensor(choices(pool(seed=0), 3000)), minlength=3).float() / 3000
    assert ((counts - 1 / 3).abs() < 0.04).all()  # std of each frequency is 0.009
    counts = torch.bincount(torch.tensor(choices(pool(seed=0, weights=[1, 0, 3]), 2000)), minlength=3)
    assert counts[1] == 0 and abs(counts[2].item() / 2000 - 0.75) < 0.04


def test_combined_forward_applies_the_drawn_layer():
    x = torch.rand(2, 3, 37, 53) * 2 - 1
    layer = Combined([Identity(), BrightnessContrast(brightness=0.5)], seed=0)
    assert layer.last_choice is None and layer.last_layer is None
    seen = set()
    for _ in range(20):
        out = layer(x)
        seen.add(layer.last_choice)
        assert layer.last_layer is layer.layers[layer.last_choice]
        assert torch.equal(out, layer.last_layer(x))
    assert seen == {0, 1}


def test_combined_state_dict_resumes_the_sequence():
    first = pool(seed=0)
    choices(first, 17)
    state = first.state_dict()
    assert state["_extra_state"].dtype == torch.uint8
    expected = choices(first, 30)

    resumed = pool(seed=99)
    resumed.load_state_dict(state)
    assert choices(resumed, 30) == expected

    # also nested in a model and through torch.save / torch.load(weights_only=True)
    model = nn.Module()
    model.noise = pool(seed=5)
    choices(model.noise, 7)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    expected = choices(model.noise, 20)
    other = nn.Module()
    other.noise = pool(seed=6)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert choices(other.noise, 20) == expected


def test_combined_needs_cover_and_errors():
    assert not pool().needs_cover
    assert Combined([Identity(), Dropout(0.3)]).needs_cover
    with pytest.raises(ValueError, match="non-empty"):
        Combined([])
    with pytest.raises(ValueError, match="noise layers"):
        Combined([Identity(), "Crop(0.1)"])
    with pytest.raises(ValueError, match="weights"):
        Combined([Identity(), Crop(0.1)], weights=[1])
    with pytest.raises(ValueError, match="weight"):
        Combined([Identity(), Crop(0.1)], weights=[1, -1])
    with pytest.raises(ValueError, match="positive"):
        Combined([Identity(), Crop(0.1)], weights=[0, 0])


def test_combined_spec():
    assert Combined([Identity(), Crop(0.035)]).spec() == "Combined([Identity(),Crop(0.035)])"
    assert (Combined([Identity(), Crop(0.5)], seed=3, weights=[1, 2]).spec()
            == "Combined([Identity(),Crop(0.5)], seed=3, weights=[1.0,2.0])")


# ---------------------------------------------------------------- parser

# ---------------------------------------------------------------- Chain

def test_chain_applies_every_layer_in_order():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    brighter, steeper = BrightnessContrast(brightness=0.1), BrightnessContrast(contrast=2.0)
    chained = Chain([brighter, steeper])(x)
    assert torch.equal(chained, steeper(brighter(x)))
    assert not torch.allclose(chained, brighter(steeper(x)))   # the order matters, and is kept
    assert not Chain([brighter, steeper]).needs_cover and Chain([steeper, Dropout(0.5)]).needs_cover


def test_chain_refuses_what_is_not_a_list_of_layers():
    for bad in ([], [1], "Identity()"):
        with pytest.raises(ValueError, match="Chain"):
            Chain(bad)


def test_reference_string():
    layer = parse_noise("Combined([JpegMask(50),Jpeg(50),Identity()])")
    assert isinstance(layer, Combined)
    kinds = [type(sub) for sub in layer.layers]
    assert kinds == [jpeg_layers.JpegMask, jpeg_layers.JpegSim, Identity]
    assert layer.layers[1].quality == 50


def test_readable_syntax():
    layer = parse_noise("jpeg-mask + real-jpeg(50) + identity")
    assert [type(sub) for sub in layer.layers] == [jpeg_layers.JpegMask, jpeg_layers.RealJpeg, Identity]
    assert layer.layers[1].quality == 50
    assert isinstance(parse_noise(" identity "), Identity)


@pytest.mark.parametrize("text, cls", [
    ("GF(2)", GaussianBlur), ("gf(2)", GaussianBlur), ("gaussian-blur(2)", GaussianBlur),
    ("noise(5)", "GaussianNoise"), ("CROP(0.035)", Crop), ("JpegReal(50)", "RealJpeg"),
    ("DiffJpeg(50)", "KorniaJpeg"), ("jpeg_ss(50)", "JpegSS"), ("JpegSim(50)", "JpegSim"),
    ("crop-resize(0.5)", "CropResize"), ("brightness-contrast(brightness=0.1)", "BrightnessContrast"),
])
def test_names_ignore_case_and_accept_aliases(text, cls):
    layer = parse_noise(text)
    assert type(layer).__name__ == (cls if isinstance(cls, str) else cls.__name__)


ROUND_TRIP = [
    "Identity()", "Crop(0.035)", "Crop(0.0225, fill=1.0)", "Cropout(0.3)", "Dropout(0.3)", "CropResize(0.5)",
    "Resize(0.5)", "Resize(0.5, back=True)", "GaussianBlur(2.0)", "GaussianBlur(2.0, kernel_size=9)",
    "GaussianNoise(5.0)", "BrightnessContrast(brightness=-0.1, contrast=1.2)",
    "Combined([Identity(),Crop(0.5)], seed=3, weights=[1.0,2.0])",
    "Combined([Identity(),Combined([Crop(0.1),Dropout(0.5)])])",
    "Chain([Ladder(),Jitter(1.0, 0.5, 0.01)])",
    "Chain([Ladder(caps=[0.7,1.0]),RealJpeg(30)])",
]
JPEG_ROUND_TRIP = [
    "Jpeg(50)", "RealJpeg(50)", "RealJpeg(90, subsampling='4:4:4')", 'RealJpeg(50, gradient="straight-through")',
    "JpegMask()", "JpegSS(50)", "KorniaJpeg(50)", "Combined([JpegMask(50),Jpeg(50),Identity()])",
    "JpegMask + RealJpeg(10) + Identity + GF(2) + Crop(0.0225, fill=1)",
    "Combined([Chain([Ladder(),RealJpeg(30)]),Identity()], weights=[2.0,1.0])",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_canonical_specs_round_trip_exactly(text):
    assert parse_noise(text).spec() == text


@pytest.mark.parametrize("text", JPEG_ROUND_TRIP)
def test_jpeg_specs_round_trip(text):
    spec = parse_noise(text).spec()
    assert parse_noise(spec).spec() == spec


def test_layer_passes_through_and_bad_types():
    layer = Crop(0.1)
    assert parse_noise(layer) is layer
    with pytest.raises(TypeError):
        parse_noise(5)
    with pytest.raises(NoiseSpecError, match="empty"):
        parse_noise("  ")


@pytest.mark.parametrize("text, bad, nearest", [
    ("Jpg(50)", "Jpg", "Jpeg"), ("Gausian_Blur(2)", "Gausian_Blur", "GaussianBlur"),
    ("Cropot(0.3)", "Cropot", "Cropout"), ("Combined([JpegMsk(),Identity()])", "JpegMsk", "JpegMask"),
])
def test_unknown_name_suggests_the_nearest(text, bad, nearest):
    with pytest.raises(NoiseSpecError, match="unknown noise layer") as info:
        parse_noise(text)
    assert f"did you mean {nearest}" in str(info.value)
    assert text[info.value.position:].startswith(bad)


@pytest.mark.parametrize("text, message", [
    ("Crop(2)", "p must be <= 1"),
    ("Crop()", "missing a required argument: 'p'"),
    ("Crop(0.1, q=2)", "unexpected keyword argument 'q'"),
    ("Crop(0.1, 0.2, 0.3)", "too many positional arguments"),
    ("Crop(p=0.1, p=0.2)", "given twice"),
    ("Crop(fill=1, 0.1)", "positional argument after keyword"),
    ("Crop('big')", "must be a number"),
    ("Crop(0.1,,)", "expected a value"),
    ("Crop(0.1", "expected ','"),
    ("Crop(0.1))", "unexpected"),
    ("Crop(0.1) Identity", "unexpected"),
    ("Combined([])", "non-empty"),
    ("Identity + ", "expected a noise layer name"),
    ("Crop(0.1 @)", "unexpected character '@'"),
    ("Crop('0.1)", "unterminated string"),
    ("Jpeg(500)", "usage: "),
    ("[" * 200 + "]" * 200, "expected a noise layer name"),
    ("Combined(" + "[" * 200 + "]" * 200 + ")", "nested deeper"),
])
def test_bad_specs_raise_noise_spec_error(text, message):
    with pytest.raises(NoiseSpecError, match=message.replace("(", r"\(")) as info:
        parse_noise(text)
    assert isinstance(info.value, ValueError) and info.value.position is not None


@pytest.mark.parametrize("text", [
    "__import__('os').system('x')",
    "Crop(__import__('os').system('x'))",
    "Crop(0.1); import os",
    "eval('1')",
    "Identity().__class__",
    "Crop(p=exec)",
    "Crop(0.1).__init__(0.2)",
    "lambda: 0",
])
def test_injection_is_rejected_and_never_executed(text, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(NoiseSpecError):
        parse_noise(text)
    assert calls == []


def test_parser_source_never_evaluates_code():
    tree = ast.parse(Path(spec_module.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert not names & {"eval", "exec", "compile", "__import__", "getattr", "globals", "vars"}
    assert not attributes & {"eval", "exec", "literal_eval", "import_module", "__dict__"}
    assert "ast" not in imported and "importlib" not in imported


def test_available_layers_describe_every_parseable_layer():
    layers = available_layers()
    expected = {"Identity", "JpegSim", "RealJpeg", "JpegMask", "JpegSS", "KorniaJpeg", "Crop", "Cropout",
                "Dropout", "CropResize", "Resize", "Jitter", "GaussianBlur", "GaussianNoise", "BrightnessContrast",
                "Combined", "Chain", "Ladder"}
    assert set(layers) == expected
    for name, line in layers.items():
        assert line.startswith(name + "(") and "\n" not in line and len(line) < 200
    assert layers["Crop"].startswith("Crop(p, fill=0.0)")
    assert layers["JpegMask"].startswith("JpegMask()")


def test_parsed_layers_are_noise_layers_that_run():
    x = torch.rand(2, 3, 37, 53) * 2 - 1
    for text in ROUND_TRIP + JPEG_ROUND_TRIP:
        layer = parse_noise(text)
        assert isinstance(layer, NoiseLayer)
        assert layer(x, x).shape[:2] == (2, 3)
