"""The MBRS paper's evaluation tables, reproduced on any folder of images (the native protocol).

Each image is centre-cropped and resized to the model's H x H; messages are
random bits seeded by ``(seed, image index)``; the watermarked image is
``cover + S * residual`` rounded to 8 bit (the paper's strength factor S, on
top of the model's own ``residual_psnr`` if it has one); every attack is a
noise layer of :mod:`mbrs_engine.noise`, seeded, applied to the 8-bit image
and rounded to 8 bit again; PSNR and SSIM are measured on the 8-bit images.
With ``target_psnr`` the single strength S is found by bisection so that the
mean PSNR over the images is that value (how the paper compares models).

Tables (layouts of the paper):

* ``1``: PSNR, SSIM and BER under real JPEG Q=50 (Table 1).
* ``2``: BER under Identity, Cropout 0.3, Dropout 0.3, Crop 3.5 %, Gaussian
  filter sigma=2 and JPEG Q=50 (Table 2).
* ``3``: BER under JPEG Q=10..90 for S in 0.6..2.4, with PSNR and SSIM (Table 3).
* ``6``: BER under JPEG Q=90..10 at one strength (Table 6: PSNR about 40).

Results come as Markdown (with the paper's MBRS numbers beside ours), CSV and
JSON, and are deterministic.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .metrics import bit_error_rate, psnr, ssim
from .noise import parse_noise
from .pixels import pil_to_tensor, quantize

TABLE_ATTACKS = {
    "1": ["RealJpeg(50)"],
    "2": ["Identity()", "Cropout(0.3)", "Dropout(0.3)", "Crop(0.035)", "GaussianBlur(2)", "RealJpeg(50)"],
    "3": [f"RealJpeg({q})" for q in (10, 30, 50, 70, 90)],
    "6": [f"RealJpeg({q})" for q in (90, 70, 50, 30, 10)],
}
TABLE_STRENGTHS = {"3": [0.6, 0.8, 1.0, 1.2, 1.4, 2.0, 2.4]}

#: The paper's published MBRS numbers (BER in %), for the side-by-side column.
PAPER = {
    "1": {"note": "128x128, L=64", "psnr": 36.49, "ssim": 0.9173, "RealJpeg(50)": 0.0092},
    "2": {"note": "diffusion, L=30, PSNR 33.5", "Identity()": 0.0, "Cropout(0.3)": 0.0027,
          "Dropout(0.3)": 0.0087, "Crop(0.035)": 4.15, "GaussianBlur(2)": 0.011, "RealJpeg(50)": 4.48},
    "6": {"note": "PSNR about 40", "RealJpeg(90)": 0.0, "RealJpeg(70)": 0.00063, "RealJpeg(50)": 0.081,
          "RealJpeg(30)": 5.37, "RealJpeg(10)": 28.54},
    "3": {"note": "strength sweep, 128x128, L=64",
          0.6: {"psnr": 46.48, "ssim": 0.9890, "RealJpeg(10)": 40.74, "RealJpeg(30)": 19.76, "RealJpeg(50)": 11.81,
                "RealJpeg(70)": 2.37, "RealJpeg(90)": 0.51},
          1.0: {"psnr": 42.04, "ssim": 0.9707, "RealJpeg(10)": 33.17, "RealJpeg(30)": 8.58, "RealJpeg(50)": 1.35,
                "RealJpeg(70)": 0.0098, "RealJpeg(90)": 0.00063},
          2.0: {"psnr": 36.02, "ssim": 0.9012, "RealJpeg(10)": 18.26, "RealJpeg(30)": 0.13,
                "RealJpeg(50)": 0.00024, "RealJpeg(70)": 0.0, "RealJpeg(90)": 0.0}},
}


@dataclass
class TableResult:
    table: str
    images: int
    seed: int
    target_psnr: float | None
    attacks: list[str]
    rows: list[dict] = field(default_factory=list)   # one per strength: strength, psnr, ssim, ber[attack]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["strength", "psnr", "ssim", *(f"ber {a}" for a in self.attacks)])
        for row in self.rows:
            writer.writerow([f"{row['strength']:.4f}", f"{row['psnr']:.3f}", f"{row['ssim']:.5f}",
                             *(f"{row['ber'][a]:.6f}" for a in self.attacks)])
        return out.getvalue()

    def to_markdown(self) -> str:
        paper = PAPER.get(self.table, {})
        head = f"Table {self.table} layout, {self.images} images, seed {self.seed}"
        if self.target_psnr is not None:
            head += f", strength set for a mean PSNR of {self.target_psnr} dB"
        lines = [head, "", "| | S | PSNR | SSIM | " + " | ".join(f"BER {a}" for a in self.attacks) + " |",
                 "|---" * (4 + len(self.attacks)) + "|"]
        for row in self.rows:
            lines.append(f"| ours | {row['strength']:.2f} | {row['psnr']:.2f} | {row['ssim']:.4f} | "
                         + " | ".join(f"{100 * row['ber'][a]:.4f}%" for a in self.attacks) + " |")
            ref = paper.get(row["strength"]) if self.table == "3" else paper
            if ref:
                cells = [f"{ref[a]}%" if a in ref else "" for a in self.attacks]
                lines.append(f"| paper | {row['strength'] if self.table == '3' else ''} | {ref.get('psnr', '')} | "
                             f"{ref.get('ssim', '')} | " + " | ".join(cells) + " |")
        if paper.get("note"):
            lines += ["", f"Paper: MBRS, {paper['note']} (its own model and test set)."]
        return "\n".join(lines) + "\n"


def native_batch(images, size: int) -> torch.Tensor:
    """Centre squares resized to size x size, as a float batch in [-1, 1]."""
    from .evaluate import native_view

    return torch.cat([pil_to_tensor(native_view(img.convert("RGB"), size)) for _, img in images])


def _messages(count: int, length: int, seed: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.random.default_rng([seed, i]).integers(0, 2, length)).float()
                        for i in range(count)])


def strength_for_psnr(covers: torch.Tensor, residuals: torch.Tensor, target: float, iterations: int = 30) -> float:
    """The strength S whose 8-bit images have a mean PSNR of ``target`` (bisection; PSNR falls as S grows)."""
    def mean_psnr(s: float) -> float:
        return psnr(quantize(covers + s * residuals), covers).clamp(max=100).mean().item()

    lo, hi = 1e-3, 1.0
    while mean_psnr(hi) > target and hi < 1e3:
        hi *= 2
    for _ in range(iterations):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if mean_psnr(mid) > target else (lo, mid)
    return (lo * hi) ** 0.5


def _attack(spec: str, marked: torch.Tensor, covers: torch.Tensor, seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return quantize(parse_noise(spec)(marked, covers))


def paper_table(wm, images, table: str = "1", target_psnr: float | None = None, strengths=None,
                seed: int = 0, batch_size: int = 32) -> TableResult:
    """Measure one of the paper's tables for the :class:`~mbrs_engine.Watermarker` ``wm`` on ``images``.

    ``images``: (name, PIL image) pairs.  ``strengths`` overrides the table's
    own (1.0, or Table 3's sweep); ``target_psnr`` replaces them by the one
    strength that reaches that mean PSNR.
    """
    if table not in TABLE_ATTACKS:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(TABLE_ATTACKS)}")
    if not images:
        raise ValueError("no images to evaluate")
    covers = native_batch(images, wm.image_size)
    messages = _messages(len(covers), wm.message_length, seed)
    residuals = torch.cat([wm.native_residual(covers[i:i + batch_size], messages[i:i + batch_size])
                           for i in range(0, len(covers), batch_size)])
    if target_psnr is not None:
        strengths = [strength_for_psnr(covers, residuals, target_psnr)]
    strengths = strengths or TABLE_STRENGTHS.get(table, [1.0])
    result = TableResult(table, len(covers), seed, target_psnr, TABLE_ATTACKS[table])
    for s in strengths:
        marked = quantize(covers + s * residuals)
        row = {"strength": float(s), "psnr": psnr(marked, covers).clamp(max=100).mean().item(),
               "ssim": ssim(marked, covers).mean().item(), "ber": {}}
        for a, spec in enumerate(result.attacks):
            attacked = _attack(spec, marked, covers, seed * 1000 + a)
            soft = torch.cat([wm.native_decode(attacked[i:i + batch_size])
                              for i in range(0, len(attacked), batch_size)])
            row["ber"][spec] = bit_error_rate(soft, messages).mean().item()
        result.rows.append(row)
    return result
