"""Networks: the reference's exact parameter counts, shapes, the diffusion variant at other sizes, errors; the
tiny test model."""
import pytest
import torch

from mbrs_engine.nets import (PRESETS, ArchitectureError, NetworkConfig, build_from_config, build_networks,
                              count_parameters, valid_message_lengths)


@pytest.mark.parametrize("preset, encoder_params, decoder_params", [
    ("faithful", 561_292, 20_244_099),
    ("diffusion", 552_652, 5_246_497),
])
def test_reference_parameter_counts(preset, encoder_params, decoder_params):
    encoder, decoder, adversary = build_from_config(PRESETS[preset])
    assert count_parameters(encoder) == encoder_params
    assert count_parameters(decoder) == decoder_params
    assert count_parameters(adversary) == 113_153


def test_interface_call_matches_faithful_preset():
    encoder, decoder, _ = build_networks(image_size=128, message_length=64, channels=64, blocks=4, diffusion=False)
    assert count_parameters(encoder) == 561_292 and count_parameters(decoder) == 20_244_099


@pytest.mark.parametrize("size, length, diffusion", [(32, 16, False), (64, 64, False), (16, 16, False),
                                                      (32, 30, True), (64, 100, True), (128, 30, True)])
def test_shapes_round_trip(size, length, diffusion):
    torch.manual_seed(0)
    encoder, decoder, adversary = build_networks(size, length, channels=16, blocks=2, diffusion=diffusion)
    image = torch.rand(2, 3, size, size) * 2 - 1
    message = torch.randint(0, 2, (2, length)).float()
    encoded = encoder(image, message)
    assert encoded.shape == image.shape
    assert decoder(encoded).shape == (2, length)
    assert adversary(encoded).shape == (2,)


def test_encoder_output_depends_on_message():
    torch.manual_seed(0)
    encoder, _, _ = build_networks(32, 16, channels=16, blocks=1)
    encoder.eval()
    image = torch.zeros(1, 3, 32, 32)
    a = encoder(image, torch.zeros(1, 16))
    b = encoder(image, torch.ones(1, 16))
    assert not torch.allclose(a, b)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder, decoder, _ = build_networks(32, 16, channels=16, blocks=1, diffusion=True)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    loss = decoder(encoder(image, torch.randint(0, 2, (2, 16)).float())).pow(2).mean()
    loss.backward()
    for name, p in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert p.grad is not None, name


def test_invalid_pair_names_nearest_valid_ones():
    with pytest.raises(ArchitectureError) as err:
        build_networks(image_size=128, message_length=100)
    text = str(err.value)
    assert "Nearest valid L for H=128: 16, 64." in text
    assert "diffusion=True" in text
    assert "80, 160" in text   # nearest H for L=100 (h=10)


def test_invalid_image_size_for_diffusion():
    with pytest.raises(ArchitectureError, match="16·2\\^k"):
        NetworkConfig(image_size=100, message_length=30, diffusion=True)


def test_valid_message_lengths():
    assert valid_message_lengths(128) == [1, 4, 16, 64, 256, 1024, 4096, 16384]
    assert valid_message_lengths(400) == [625, 2500, 10000, 40000, 160000]


@pytest.mark.parametrize("bad", [dict(channels=12), dict(message_length=0), dict(image_size=-8),
                                 dict(blocks=1.5)])
def test_bad_config_values(bad):
    with pytest.raises(ArchitectureError):
        NetworkConfig(**{**dict(image_size=32, message_length=16), **bad})


def test_config_dict_round_trip():
    cfg = PRESETS["diffusion"]
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ArchitectureError, match="unknown"):
        NetworkConfig.from_dict({**cfg.to_dict(), "colour": 3})


# ---------------------------------------------------------------- BatchNorm folding


def test_fold_batchnorm_equals_eval_network_and_leaves_the_original():
    from mbrs_engine.nets.folding import fold_batchnorm

    torch.manual_seed(0)
    config = NetworkConfig(image_size=32, message_length=16, channels=16, blocks=2)
    encoder, decoder, _ = build_from_config(config)
    for net in (encoder, decoder):  # running statistics that are not the identity
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.2, 0.2)
    x, bits = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randint(0, 2, (2, 16)).float()
    folded_encoder, folded_decoder = fold_batchnorm(encoder), fold_batchnorm(decoder)
    with torch.no_grad():
        assert torch.allclose(folded_encoder(x, bits), encoder.eval()(x, bits), atol=1e-5)
        assert torch.allclose(folded_decoder(x), decoder.eval()(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded_decoder.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded_encoder.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in decoder.modules())  # the original keeps them
    assert set(build_from_config(config)[1].state_dict()) == set(decoder.state_dict())


# ---------------------------------------------------------------- periodic grids (the tiled layout)


def _processor_with_statistics():
    """A message processor in eval mode whose BatchNorms are not the identity: 4 x 4 cells of 8 pixels, 16
    channels (so that each squeeze-excitation gate has two hidden units: with one, a negative one gates by a
    constant)."""
    torch.manual_seed(0)
    config = NetworkConfig(image_size=32, message_length=16, channels=16, blocks=2)
    processor = build_from_config(config)[0].message_processor.eval()
    for module in processor.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return processor


def _periodic_grid(period: int, rows: int, cols: int) -> torch.Tensor:
    one = torch.randint(0, 2, (period, period), generator=torch.Generator().manual_seed(1)).float()
    return one.repeat(-(-rows // period), -(-cols // period))[:rows, :cols][None, None]


def test_compact_axis_stands_each_pixel_in_for_one_of_the_same_phase_and_keeps_the_borders():
    from mbrs_engine.nets.periodic import compact_axis

    for n, period, margin in [(200, 40, 11), (544, 136, 11), (728, 136, 11), (90, 40, 11), (57, 40, 9)]:
        m, index, counts = compact_axis(n, period, margin)
        assert m == n if n <= period + 2 * margin else (period + 2 * margin <= m < 2 * period + 2 * margin)
        assert (m - n) % period == 0 and int(counts.sum()) == n and int(index.max()) < m
        assert torch.equal(index % period, torch.arange(n) % period)
        assert torch.equal(index[:margin], torch.arange(margin))  # the first border is itself
        assert torch.equal(index[n - margin:], torch.arange(m - margin, m))  # the last border is the compact one's


@pytest.mark.parametrize("rows, cols", [(3, 3), (10, 13), (17, 9), (25, 40), (26, 43)])
def test_a_periodic_grid_s_features_from_one_period_and_the_borders_are_the_full_ones(rows, cols):
    processor, grid = _processor_with_statistics(), _periodic_grid(5, rows, cols)
    with torch.no_grad():
        full, periodic = processor.grid_features(grid), processor.grid_features(grid, period=5)
    assert periodic.shape == full.shape == (1, 16, rows * 8, cols * 8)
    assert torch.allclose(periodic, full, atol=1e-5 * float(full.abs().max()))


def test_periodic_features_need_the_whole_reach_of_the_borders_and_the_full_map_s_gate(monkeypatch):
    """Both halves of the method matter: a margin short of the layers' reach (by the three pixel-level
    convolutions; the last pixels of the reach change the features by less than float rounding with these
    weights), or the gates averaging the compact map instead of the full one, give other features (so the test
    above can fail)."""
    from mbrs_engine.nets import periodic

    # 26 x 43 cells: part of a period at the bottom and the right, so the compact map over-represents its phases
    processor, grid = _processor_with_statistics(), _periodic_grid(5, 26, 43)
    assert periodic.reach(processor.body, 8) == 8 + 3  # one 3x3 convolution of cells, three of pixels
    with torch.no_grad():
        full = processor.grid_features(grid)
        reach = periodic.reach
        monkeypatch.setattr(periodic, "reach", lambda body, cell: reach(body, cell) - 3)
        short = processor.grid_features(grid, period=5)
        monkeypatch.undo()
        monkeypatch.setattr(periodic.torch, "einsum", lambda spec, x, w: x.mean((2, 3)))  # the compact map's own
        own = processor.grid_features(grid, period=5)
    tolerance = 1e-5 * float(full.abs().max())
    assert not torch.allclose(short, full, atol=tolerance) and not torch.allclose(own, full, atol=tolerance)


def _tiny_bit_accuracy(encoder, decoder) -> float:
    """Bits read right from 64 fresh 32 x 32 crops marked by the tiny model and rounded to 8 bits."""
    from tiny_model import _pool

    covers, message = _pool(32, 64, seed=7), torch.randint(0, 2, (64, 256), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        marked = torch.round((encoder(covers, message.float()) + 1) * 127.5) / 127.5 - 1
        return float(((decoder(marked) > 0.5) == message.bool()).float().mean())


def test_the_saved_tiny_model_is_the_tiny_training_s_and_reads_its_bits():
    """The suite's tiny model (tests/fixtures/tiny-model) was trained with today's settings and config, and
    carries its bits: after a change to either, ``python tests/tiny_model.py`` saves it again."""
    from dataclasses import asdict

    from mbrs_engine.model_files import load_model
    from tiny_model import CONFIG, FIXTURE, TinyTraining

    model = load_model(FIXTURE / "tiny.json")
    assert model.config == CONFIG
    assert {k: v for k, v in model.metadata.training.items() if k != "seconds"} == asdict(TinyTraining())
    assert _tiny_bit_accuracy(model.encoder, model.decoder) > 0.99


@pytest.mark.slow
def test_the_tiny_training_still_learns_to_carry_the_bits():
    from tiny_model import train_tiny_model

    encoder, decoder, _, _ = train_tiny_model()
    assert _tiny_bit_accuracy(encoder, decoder) > 0.99
