"""Export a training run to a model file pair (safetensors + JSON) that ``Watermarker`` loads.

Weights go out in fp16 when that changes no decoded bit on the run's
validation set (clean and under real JPEG at the validation quality, strength
set to the validation PSNR), else in fp32.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..model_files import ModelMetadata, save_model
from ..nets import build_from_config
from ..noise import RealJpeg
from ..pixels import from_uint8, quantize
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import ImageSource, train_val_paths, validation_images
from ..metrics import residual_scale_for_psnr
from .validation import fixed_messages


def load_run(run_dir: str | Path, which: str = "best"):
    """(encoder, decoder, config, checkpoint dict) of a run; ``which`` is ``best`` or ``last``."""
    run_dir = Path(run_dir)
    config = TrainConfig.load(run_dir / ckpt.CONFIG)
    path = run_dir / (ckpt.BEST if which == "best" else ckpt.LAST)
    if which == "best" and not ckpt.checkpoint_exists(path):
        path = run_dir / ckpt.LAST
    state = ckpt.load_checkpoint(path)
    encoder, decoder, _ = build_from_config(config.network)
    encoder.load_state_dict(state["encoder"])
    decoder.load_state_dict(state["decoder"])
    return encoder.eval(), decoder.eval(), config, state


def _run_validation_images(config: TrainConfig) -> torch.Tensor | None:
    """The run's own validation images (the same split as in training), or None when they are gone."""
    source = ImageSource(config.data.cache_dir, config.data.cache_side)
    try:
        _, paths = train_val_paths(config.data, config.seed, source)
        return validation_images(paths, source, config.network.image_size)
    except (ValueError, OSError):
        return None


@torch.inference_mode()
def _decoded_bits(encoder, decoder, images_u8, messages, quality: int, target_psnr: float) -> torch.Tensor:
    cover = from_uint8(images_u8)
    residual = encoder(cover, messages) - cover
    marked = quantize(cover + residual_scale_for_psnr(residual, target_psnr) * residual)
    return torch.cat([decoder(marked) > 0.5, decoder(RealJpeg(quality)(marked)) > 0.5], dim=1)


def fp16_is_lossless(encoder, decoder, config: TrainConfig, images_u8: torch.Tensor) -> bool:
    """True when fp16-rounded weights decode exactly the same bits as fp32 on the validation images."""
    half_e, half_d = copy.deepcopy(encoder), copy.deepcopy(decoder)
    for module in (half_e, half_d):
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.data = t.data.half().float()
    messages = fixed_messages(len(images_u8), config.network.message_length)
    args = (images_u8, messages, config.validation.quality, config.validation.target_psnr)
    return torch.equal(_decoded_bits(encoder, decoder, *args), _decoded_bits(half_e, half_d, *args))


def export_run(run_dir: str | Path, out: str | Path, name: str, fp16: str = "auto", description: str = "",
               which: str = "best") -> tuple[Path, bool]:
    """Write ``out/NAME.safetensors`` + ``.json``; returns (json path, whether fp16 was used)."""
    encoder, decoder, config, state = load_run(run_dir, which)
    use_fp16 = fp16 == "yes"
    if fp16 == "auto":
        images = _run_validation_images(config)
        use_fp16 = images is not None and fp16_is_lossless(encoder, decoder, config, images)
    metadata = ModelMetadata(
        name=name, description=description, training_noise=config.noise,
        training_data=config.data.train_dir,
        training={"steps": state["step"], "seed": config.seed, "method": config.method,
                  "target_psnr": config.target_psnr, "precision": config.precision,
                  "batch_size": config.batch_size,
                  **({"stage2_noise": config.stage2_noise} if config.method != "mbrs" else {})},
        metrics={"validation": state.get("metrics") or (state.get("history") or [{}])[-1]},
        residual_psnr=config.target_psnr,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = save_model(out, encoder, decoder, config.network, metadata, fp16=use_fp16)
    return files.json_path, use_fp16
