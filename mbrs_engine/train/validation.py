"""Validation of a model during training: quality at strength 1 and BER under real libjpeg at a target PSNR.

Everything is deterministic (fixed images, fixed seeded messages) and measured
on the 8-bit images, as a user would save them.  The strength factor of each
image is set so that its watermarked 8-bit image reaches ``target_psnr`` (the
paper adjusts the strength to a PSNR before comparing BERs); the selection
criterion of the best checkpoint is ``ber_jpeg`` at that PSNR.
"""
from __future__ import annotations

import torch

from ..metrics import bit_error_rate, psnr, residual_scale_for_psnr, ssim
from ..noise import RealJpeg
from ..pixels import from_uint8, quantize


def fixed_messages(count: int, length: int, seed: int = 1234) -> torch.Tensor:
    return torch.randint(0, 2, (count, length), generator=torch.Generator().manual_seed(seed)).float()


@torch.inference_mode()
def validate(encoder, decoder, images_u8: torch.Tensor, messages: torch.Tensor, quality: int,
             target_psnr: float, device: torch.device, residual_psnr: float | None = None,
             batch_size: int = 16) -> dict:
    """Mean PSNR/SSIM at strength 1, BER clean and under JPEG(quality), and BER under JPEG at ``target_psnr``.

    ``residual_psnr``: for models trained with a fixed residual energy, strength 1
    means the residual rescaled to this PSNR (as the trainer saw it).
    """
    was_training = encoder.training, decoder.training
    encoder.eval(), decoder.eval()
    jpeg = RealJpeg(quality)
    sums: dict[str, float] = {}
    for start in range(0, len(images_u8), batch_size):
        cover = from_uint8(images_u8[start:start + batch_size]).to(device)
        msg = messages[start:start + batch_size].to(device)
        residual = encoder(cover, msg).float() - cover
        if residual_psnr is not None:
            residual = residual_scale_for_psnr(residual, residual_psnr) * residual
        marked = quantize(cover + residual)
        at_target = quantize(cover + residual_scale_for_psnr(residual, target_psnr) * residual)
        batch = {
            "psnr": psnr(marked, cover), "ssim": ssim(marked, cover),
            "ber_clean": bit_error_rate(decoder(marked).float(), msg),
            "ber_jpeg_s1": bit_error_rate(decoder(jpeg(marked)).float(), msg),
            "psnr_target": psnr(at_target, cover),
            "ber_jpeg": bit_error_rate(decoder(jpeg(at_target)).float(), msg),
        }
        for k, v in batch.items():
            sums[k] = sums.get(k, 0.0) + v.clamp(max=100.0).sum().item()
    encoder.train(was_training[0]), decoder.train(was_training[1])
    return {k: v / len(images_u8) for k, v in sums.items()}
