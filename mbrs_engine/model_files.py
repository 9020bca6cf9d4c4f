"""Model files: weights as safetensors plus a JSON description, the model registry and the default model.

A model ``NAME`` is two files side by side:

* ``NAME.safetensors``: every tensor of the encoder (``encoder.*``) and the
  decoder (``decoder.*``) state dicts, BatchNorm running statistics included;
  float32, or float16 with ``fp16=True`` (loaded back as float32).
* ``NAME.json``: ``format`` / ``format_version``, ``name``, ``description``,
  ``network`` (:meth:`NetworkConfig.to_dict`), ``weights`` (file name, SHA-256,
  dtype, size), ``training`` (noise spec, data description, anything else the
  trainer records), ``metrics`` (measured quality and robustness),
  ``licence`` and ``residual_psnr`` (null, or the PSNR in dB that the native
  residual is rescaled to at strength 1: models trained with a fixed residual
  energy, see the trainer's ``target_psnr``) and ``embed_psnr`` (null, or the
  PSNR in dB of the saved image at strength 1 when embedding is refined, see
  :mod:`mbrs_engine.refinement`; null keeps the unrefined image's PSNR).

Loading never unpickles anything (safetensors and JSON only) and allocates
nothing a file did not earn: the network sizes are bounded
(:data:`mbrs_engine.nets.config.MAX_SIZES`, ``MAX_PARAMETERS``), the weights
file may not be larger than those parameters need, its SHA-256 is checked
(mandatory for shipped models, checked whenever present otherwise), and the
tensor names, shapes and dtypes in its header must be exactly those of the
described network (:func:`mbrs_engine.nets.state_shapes`, built on the meta
device) before the networks are built with
:func:`mbrs_engine.nets.build_from_config` and the weights loaded strictly.

Where models are found (:func:`list_models`, :func:`resolve_model`): the
shipped ones in the ``mbrs_assets`` package (the repository's ``assets/models``,
installed as package data), then the user's models folder
(``$MBRS_MODELS_DIR``, else ``<platformdirs user data dir>/models``).  The
default model is ``default`` unless the user picked another with
:func:`set_default_model` (stored in ``<user config dir>/config.json``, or
``$MBRS_CONFIG_DIR/config.json``).
"""
from __future__ import annotations

import hashlib
import math
import importlib.resources
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from .imageio import atomic_write
from .nets import ArchitectureError, NetworkConfig, build_from_config, state_shapes
from .payload import PayloadError, capacity

FORMAT = "mbrs-studio-model"
FORMAT_VERSION = 1
DEFAULT_MODEL = "default"
APP_NAME = "mbrs-studio"
DEFAULT_LICENCE = "MIT (weights released with MBRS Studio)"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PREFIXES = ("encoder.", "decoder.")
_DTYPES = {"F32", "F16", "I64"}  # what save_model writes (BatchNorm's num_batches_tracked is int64)
_HEADER_ALLOWANCE = 1 << 20  # bytes of safetensors header a model file may carry beyond its tensors


class ModelFileError(ValueError):
    """A model that cannot be found, read or trusted."""


class ModelWarning(UserWarning):
    """A model that loads but deserves a warning (no checksum)."""


class NoDefaultModelError(ModelFileError):
    """No default model is installed yet."""


@dataclass
class ModelMetadata:
    """What the JSON file says about a model besides its architecture."""

    name: str = "model"
    description: str = ""
    training_noise: str | None = None
    training_data: str | None = None
    training: dict = field(default_factory=dict)  # anything else the trainer records (steps, seed, ...)
    metrics: dict = field(default_factory=dict)  # measured quality and robustness
    licence: str = DEFAULT_LICENCE
    residual_psnr: float | None = None  # strength 1 = the native-size residual rescaled to this PSNR (dB)
    embed_psnr: float | None = None  # strength 1 = a refined embedding saved at this PSNR (dB); null: as unrefined


@dataclass
class ModelFiles:
    json_path: Path
    weights_path: Path


@dataclass
class LoadedModel:
    encoder: nn.Module
    decoder: nn.Module
    config: NetworkConfig
    metadata: ModelMetadata
    files: ModelFiles
    source: str  # "shipped", "user" or "path"


@dataclass
class ModelInfo:
    """One line of ``mbrs models``."""

    name: str
    source: str
    json_path: Path
    image_size: int | None
    message_length: int | None
    capacity: int | None  # text bytes; None when the model carries raw bits only
    metrics: dict
    description: str = ""
    is_default: bool = False
    error: str | None = None  # why the JSON could not be read


# ---------------------------------------------------------------- saving


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ModelFileError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' "
                             f"(starting with a letter or digit, at most 100 characters)")
    return name


def _model_paths(path: str | os.PathLike, name: str) -> ModelFiles:
    """``dir/NAME.*`` for a folder, else the path with its .json/.safetensors suffix replaced."""
    path = Path(path)
    if path.is_dir():
        stem = path / check_name(name)
    elif path.suffix in (".json", ".safetensors"):
        stem = path.with_suffix("")
    else:
        stem = path
    return ModelFiles(stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.safetensors")


def state_tensors(encoder: nn.Module, decoder: nn.Module, fp16: bool = False) -> dict[str, torch.Tensor]:
    """Both state dicts (parameters and buffers) under ``encoder.`` / ``decoder.`` prefixes."""
    tensors = {}
    for prefix, module in zip(_PREFIXES, (encoder, decoder)):
        for key, value in module.state_dict().items():
            value = value.detach().cpu()
            if fp16 and value.is_floating_point():
                value = value.half()
            tensors[prefix + key] = value.contiguous()
    return tensors


def save_model(path: str | os.PathLike, encoder: nn.Module, decoder: nn.Module, network_config: NetworkConfig,
               metadata: ModelMetadata | None = None, *, fp16: bool = False) -> ModelFiles:
    """Write ``NAME.safetensors`` and ``NAME.json`` (``path``: a folder, or the stem/either file name)."""
    metadata = metadata or ModelMetadata()
    files = _model_paths(path, metadata.name)
    if not files.json_path.parent.is_dir():
        raise ModelFileError(f"cannot save the model: the folder '{files.json_path.parent}' does not exist")
    blob = save_safetensors(state_tensors(encoder, decoder, fp16), metadata={"format": FORMAT})
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": metadata.name,
        "description": metadata.description,
        "network": network_config.to_dict(),
        "weights": {"file": files.weights_path.name, "sha256": hashlib.sha256(blob).hexdigest(),
                    "dtype": "float16" if fp16 else "float32", "bytes": len(blob)},
        "training": {"noise": metadata.training_noise, "data": metadata.training_data, **metadata.training},
        "metrics": metadata.metrics,
        "licence": metadata.licence,
        "residual_psnr": metadata.residual_psnr,
        "embed_psnr": metadata.embed_psnr,
    }
    atomic_write(files.weights_path, lambda fh: fh.write(blob))
    text = json.dumps(description, indent=2, ensure_ascii=False) + "\n"
    atomic_write(files.json_path, lambda fh: fh.write(text.encode("utf-8")))
    return files


# ---------------------------------------------------------------- reading


def read_model_json(json_path: str | os.PathLike) -> dict:
    """The parsed and checked JSON description of a model."""
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"model description '{json_path}' not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read the model description '{json_path}': {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"'{json_path}' is not an MBRS Studio model description (format {FORMAT!r} expected)")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"'{json_path}' has model format version {data.get('format_version')!r}; "
                             f"this version of MBRS Studio reads version {FORMAT_VERSION}")
    for key in ("network", "weights"):
        if not isinstance(data.get(key), dict):
            raise ModelFileError(f"'{json_path}' lacks its '{key}' section")
    return data


def network_config(data: dict, json_path: Path) -> NetworkConfig:
    try:
        return NetworkConfig.from_dict(data["network"])
    except (ArchitectureError, TypeError) as exc:
        raise ModelFileError(f"'{json_path}': invalid network configuration: {exc}") from None


def metadata_from_json(data: dict) -> ModelMetadata:
    training = dict(data.get("training") or {})
    return ModelMetadata(name=str(data.get("name", "model")), description=str(data.get("description", "")),
                         training_noise=training.pop("noise", None), training_data=training.pop("data", None),
                         training=training, metrics=dict(data.get("metrics") or {}),
                         licence=str(data.get("licence", "")), residual_psnr=_optional_float(data, "residual_psnr"),
                         embed_psnr=_optional_float(data, "embed_psnr"))


def _optional_float(data: dict, key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(f"'{key}' must be a number or null, got {value!r}")
    return float(value)


def _read_weights(data: dict, json_path: Path, require_checksum: bool,
                  expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The checked tensors of the weights file: no larger than ``expected`` shapes need, matching the
    SHA-256, and holding exactly those names and shapes (checked on the header, before any tensor is read)."""
    weights = data["weights"]
    weights_path = json_path.parent / str(weights.get("file", json_path.with_suffix(".safetensors").name))
    if weights_path.parent != json_path.parent:
        raise ModelFileError(f"'{json_path}': the weights file must sit beside the description")
    most = sum(8 * math.prod(shape) for shape in expected.values()) + _HEADER_ALLOWANCE  # 8: the widest dtype
    try:
        if weights_path.stat().st_size > most:
            raise ModelFileError(f"the weights '{weights_path}' are larger ({weights_path.stat().st_size:,} bytes) "
                                 f"than the network in '{json_path.name}' can need ({most:,} bytes)")
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read the weights '{weights_path}': {exc.strerror or exc}") from None
    expected_sha = weights.get("sha256")
    if expected_sha is None:
        if require_checksum:
            raise ModelFileError(f"'{json_path}' has no SHA-256 for its weights, which a shipped model must have")
        warnings.warn(f"'{json_path}' has no SHA-256 for its weights: they are loaded unchecked",
                      ModelWarning, stacklevel=3)
    elif hashlib.sha256(blob).hexdigest() != str(expected_sha).lower():
        raise ModelFileError(f"the weights '{weights_path}' do not match the SHA-256 in '{json_path.name}' "
                             f"(corrupted or replaced file)")
    _check_header(_safetensors_header(blob, weights_path), expected, weights_path, json_path)
    try:
        return load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"cannot read the weights '{weights_path}': {exc}") from None


def _safetensors_header(blob: bytes, where: Path) -> dict:
    """The JSON header of a safetensors blob (8-byte little-endian length, then the JSON), tensors only."""
    size = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else -1
    if not 0 < size <= min(len(blob) - 8, _HEADER_ALLOWANCE):
        raise ModelFileError(f"cannot read the weights '{where}': not a safetensors file")
    try:
        header = json.loads(blob[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"cannot read the weights '{where}': not a safetensors file") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"cannot read the weights '{where}': not a safetensors file")
    header.pop("__metadata__", None)
    return header


def _check_header(header: dict, expected: dict[str, tuple[int, ...]], where: Path, json_path: Path) -> None:
    """Every tensor of the described network, and nothing else, with its shape and a known dtype."""
    def refuse(what: str):
        raise ModelFileError(f"the weights '{where}' do not fit the network in '{json_path.name}': {what}")

    for name, entry in header.items():
        if name not in expected:
            refuse(f"unexpected tensor {name!r}")
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
            refuse(f"tensor {name!r} has an unsupported dtype")
        if tuple(entry.get("shape") or ()) != expected[name]:
            refuse(f"tensor {name!r} has shape {tuple(entry.get('shape') or ())}, the network needs "
                   f"{expected[name]}")
    missing = [name for name in expected if name not in header]
    if missing:
        refuse(f"missing tensor {missing[0]!r}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))


def _load_state(module: nn.Module, prefix: str, tensors: dict[str, torch.Tensor], where: Path) -> None:
    state = {k[len(prefix):]: v.float() if v.is_floating_point() else v
             for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFileError(f"the weights '{where}' do not fit the network in its description: "
                             f"{' '.join(line.strip() for line in first[:3])}") from None


def load_model_files(json_path: str | os.PathLike, source: str = "path",
                     require_checksum: bool | None = None) -> LoadedModel:
    """Load a model from its JSON path; the networks come back in eval mode."""
    json_path = Path(json_path)
    data = read_model_json(json_path)
    config = network_config(data, json_path)
    try:
        expected = state_shapes(config)
    except ArchitectureError as exc:
        raise ModelFileError(f"'{json_path}': invalid network configuration: {exc}") from None
    tensors = _read_weights(data, json_path, source == "shipped" if require_checksum is None else require_checksum,
                            expected)
    encoder, decoder, _ = build_from_config(config)
    _load_state(encoder, "encoder.", tensors, json_path)
    _load_state(decoder, "decoder.", tensors, json_path)
    files = ModelFiles(json_path, json_path.parent / str(data["weights"].get("file")))
    return LoadedModel(encoder.eval(), decoder.eval(), config, metadata_from_json(data), files, source)


def load_model(name_or_path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a model by name (``mbrs models``), by path (.json, .safetensors or a folder), or the default."""
    json_path, source = resolve_model(name_or_path)
    return load_model_files(json_path, source)


# ---------------------------------------------------------------- registry


def shipped_models_dir() -> Path:
    """``assets/models`` as installed (package ``mbrs_assets``), or in the source tree."""
    try:
        return Path(os.fspath(importlib.resources.files("mbrs_assets"))) / "models"
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parent.parent / "assets" / "models"


def user_models_dir() -> Path:
    env = os.environ.get("MBRS_MODELS_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_data_dir(APP_NAME)) / "models"


def user_config_path() -> Path:
    env = os.environ.get("MBRS_CONFIG_DIR")
    if env:
        return Path(env) / "config.json"
    import platformdirs
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.json"


def _read_user_config() -> dict:
    path = user_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read the settings file '{path}': {exc}") from None
    return data if isinstance(data, dict) else {}


def default_model_name() -> str:
    """The user's chosen default model, else ``default`` (the shipped one)."""
    name = _read_user_config().get("default_model")
    return name if isinstance(name, str) and name else DEFAULT_MODEL


#: The highest clean raw bit error rate a trained model's recorded validation may show for it to become the
#: default model: far inside what the payload's error correction takes (BCH corrects about 5 % of the bits).
MAX_DEFAULT_BER = 0.02


def unfit_as_default(json_path: str | os.PathLike) -> str | None:
    """Why the model should not become the default (its messages would not read back), or None.

    Shipped models are fit.  A trained model is fit when the validation its
    file records (``metrics.validation``, written by ``mbrs export`` and the
    app) has a clean raw bit error rate of at most :data:`MAX_DEFAULT_BER`.
    """
    json_path = Path(json_path)
    if _shipped_source(json_path) == "shipped":
        return None
    validation = (read_model_json(json_path).get("metrics") or {}).get("validation") or {}
    ber = _number(validation.get("ber_clean"))
    if ber is None:
        return "it was never validated (the run stopped before its first validation)"
    if ber > MAX_DEFAULT_BER:
        return (f"its validation reads {100 * ber:.1f} % of the bits wrong without any attack (at most "
                f"{100 * MAX_DEFAULT_BER:g} % for messages to read back): train it longer")
    return None


def set_default_model(name: str | None) -> None:
    """Make ``name`` the default model (None: back to the shipped ``default``)."""
    if name is not None:
        find_model(check_name(name))
    config = _read_user_config()
    if name is None:
        config.pop("default_model", None)
    else:
        config["default_model"] = name
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config, indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _model_dirs() -> list[tuple[str, Path]]:
    return [("shipped", shipped_models_dir()), ("user", user_models_dir())]


def _json_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.glob("*.json") if p.is_file())
    except OSError:
        return []


def find_model(name: str) -> tuple[Path, str]:
    """(JSON path, source) of the model called ``name``: shipped first, then the user's."""
    check_name(name)
    for source, folder in _model_dirs():
        candidate = folder / f"{name}.json"
        if candidate.is_file():
            return candidate, source
    installed = ", ".join(info.name for info in list_models()) or "none"
    raise ModelFileError(f"no model named '{name}' (installed: {installed}; see `mbrs models`)")


def _json_in_folder(folder: Path) -> Path:
    candidates = _json_files(folder)
    if len(candidates) != 1:
        raise ModelFileError(f"the folder '{folder}' holds {len(candidates)} model descriptions (.json); "
                             f"name the one to use")
    return candidates[0]


def _shipped_source(json_path: Path) -> str:
    try:
        return "shipped" if json_path.resolve().parent == shipped_models_dir().resolve() else "path"
    except OSError:
        return "path"


def resolve_model(name_or_path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(JSON path, source) for a name, a path, or None (the default model)."""
    if name_or_path is None:
        name = default_model_name()
        try:
            return find_model(name)
        except ModelFileError:
            if name == DEFAULT_MODEL:
                raise NoDefaultModelError(
                    "no default model is installed (the trained default model comes with a later release): "
                    "pass a model name or path, see `mbrs models`") from None
            raise ModelFileError(f"the default model '{name}' set in '{user_config_path()}' is not installed "
                                 f"(see `mbrs models`)") from None
    path = Path(name_or_path)
    if path.is_dir():
        return _json_in_folder(path), "path"
    if path.suffix in (".json", ".safetensors") or path.exists():
        json_path = path.with_suffix(".json")
        if not json_path.is_file():
            raise ModelFileError(f"model description '{json_path}' not found")
        return json_path, _shipped_source(json_path)
    if not _NAME_RE.match(str(name_or_path)):
        raise ModelFileError(f"no model file '{name_or_path}'")
    return find_model(str(name_or_path))


def model_info(json_path: Path, source: str, default: str) -> ModelInfo:
    """What ``mbrs models`` shows for one model (reads the JSON only)."""
    name = json_path.stem
    try:
        data = read_model_json(json_path)
        config = network_config(data, json_path)
    except ModelFileError as exc:
        return ModelInfo(name, source, json_path, None, None, None, {}, error=str(exc), is_default=name == default)
    try:
        cap = capacity(config.message_length)
    except PayloadError:
        cap = None
    return ModelInfo(name, source, json_path, config.image_size, config.message_length, cap,
                     dict(data.get("metrics") or {}), str(data.get("description", "")), name == default)


def list_models() -> list[ModelInfo]:
    """Every installed model: shipped ones, then the user's (a user model never hides a shipped one)."""
    default = default_model_name()
    seen: set[str] = set()
    infos = []
    for source, folder in _model_dirs():
        for json_path in _json_files(folder):
            if json_path.stem not in seen:
                seen.add(json_path.stem)
                infos.append(model_info(json_path, source, default))
    return infos


def _format_number(key: str, value: float) -> str:
    """A number for people, by what its key says it is: BER and recovery rates in %, PSNR in dB."""
    if "psnr" in key:
        return f"{value:.2f} dB"
    if "ssim" in key:
        return f"{value:.4f}"
    if key.startswith(("ber", "recovered")) or "jpeg" in key.lower() or ":" in key or key == "identity":
        return f"{100 * value:.2f}%"
    return f"{value:g}"


def _format_value(key: str, value) -> str:
    """``key value`` for people: dicts in brackets, short lists of numbers as ranges, other lists counted."""
    if isinstance(value, dict):
        return f"{key} (" + ", ".join(_format_value(k, v) for k, v in value.items()) + ")"
    if isinstance(value, list):
        if value and len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
            return f"{key} " + " to ".join(_format_number(key, float(v)) for v in value)
        return f"{key}: {len(value)}"
    if isinstance(value, float):
        return f"{key} {_format_number(key, value)}"
    return f"{key} {value}"


def format_metrics(metrics: dict) -> str:
    """A model's recorded metrics as one line of text (``mbrs models``, the app's Models tab)."""
    return "; ".join(format_metrics_lines(metrics)) or "not measured"


def format_metrics_lines(metrics: dict) -> list[str]:
    """A model's recorded metrics for people, one line per recorded measurement."""
    return [_format_value(k, v) for k, v in metrics.items()]


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def headline_metrics(metrics: dict) -> tuple[float | None, float | None]:
    """(PSNR in dB, raw bit error rate under JPEG 50) from a model's recorded metrics, whichever way they were
    recorded: ``mbrs eval``'s robustness summary (top level, or under ``full_size``, what users do, before
    ``native``), the trainer's ``validation``, or a measurement made in the app (``measured``)."""
    if not isinstance(metrics, dict):
        return None, None

    def jpeg50(summary: dict, key: str | None):
        if key == "validation":
            return summary.get("ber_jpeg_s1")
        ber = summary.get("ber")
        return ber.get("jpeg:50") if isinstance(ber, dict) else ber if key == "measured" else None

    psnr = ber = None
    for key in (None, "full_size", "measured", "validation"):
        summary = metrics if key is None else metrics.get(key)
        if isinstance(summary, dict):
            psnr = psnr if psnr is not None else _number(summary.get("psnr"))
            ber = ber if ber is not None else _number(jpeg50(summary, key))
    return psnr, ber


def remove_model(name: str) -> None:
    """Delete a user model's two files; a shipped model cannot be removed.  When it was the default, the
    shipped default becomes the default again."""
    json_path, source = find_model(check_name(name))
    if source == "shipped":
        raise ModelFileError(f"'{name}' is a shipped model: it cannot be removed")
    weights = json_path.parent / f"{name}.safetensors"
    try:
        data = read_model_json(json_path)
        weights = json_path.parent / str(data["weights"].get("file", weights.name))
    except ModelFileError:
        pass  # an unreadable description: remove it and the usual weights file
    if default_model_name() == name:
        set_default_model(None)
    for path in (json_path, weights):
        if path.parent == json_path.parent:
            path.unlink(missing_ok=True)


def install_model(path: str | os.PathLike, name: str | None = None, replace: bool = False) -> ModelInfo:
    """Check a model (it must load) and copy its two files into the user's models folder; an installed
    model of the same name is replaced only with ``replace=True``."""
    json_path, _ = resolve_model(path)
    loaded = load_model_files(json_path, "path", require_checksum=True)
    name = check_name(name or json_path.stem)
    if (shipped_models_dir() / f"{name}.json").is_file():
        raise ModelFileError(f"the name '{name}' belongs to a shipped model: choose another name")
    target = user_models_dir()
    if (target / f"{name}.json").exists() and not replace:
        raise ModelFileError(f"a model called '{name}' is already installed: choose another name, "
                             f"or replace it (mbrs models --install PATH --replace)")
    target.mkdir(parents=True, exist_ok=True)
    data = read_model_json(json_path)
    data["name"] = name
    data["weights"]["file"] = f"{name}.safetensors"
    shutil.copyfile(loaded.files.weights_path, target / f"{name}.safetensors.tmp")
    os.replace(target / f"{name}.safetensors.tmp", target / f"{name}.safetensors")
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(target / f"{name}.json", lambda fh: fh.write(text.encode("utf-8")))
    return model_info(target / f"{name}.json", "user", default_model_name())
