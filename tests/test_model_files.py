"""Model files: safetensors + JSON round trip, checksums, no pickle, the registry, the default model, packaging."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from mbrs_engine import model_files as mf
from mbrs_engine.nets import NetworkConfig, build_from_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = NetworkConfig(image_size=32, message_length=64, channels=16, blocks=1)


def trained_like(config: NetworkConfig = CONFIG, seed: int = 0):
    """Networks with non-default BatchNorm statistics (a few train-mode forwards)."""
    torch.manual_seed(seed)
    encoder, decoder, _ = build_from_config(config)
    with torch.no_grad():
        for _ in range(3):
            x = torch.rand(4, 3, config.image_size, config.image_size) * 2 - 1
            decoder(encoder(x, torch.randint(0, 2, (4, config.message_length)).float()))
    return encoder.eval(), decoder.eval()


def outputs(encoder, decoder, seed: int = 1):
    torch.manual_seed(seed)
    x = torch.rand(2, 3, CONFIG.image_size, CONFIG.image_size) * 2 - 1
    m = torch.randint(0, 2, (2, CONFIG.message_length)).float()
    with torch.inference_mode():
        encoded = encoder(x, m)
        return encoded, decoder(encoded)


def replace_weights(files, blob: bytes) -> None:
    """Put ``blob`` in the model's weights file, with a matching SHA-256 in its description."""
    files.weights_path.write_bytes(blob)
    data = json.loads(files.json_path.read_text())
    data["weights"]["sha256"] = hashlib.sha256(blob).hexdigest()
    files.json_path.write_text(json.dumps(data))


def save(tmp_path, name="m", **kw):
    encoder, decoder = trained_like()
    meta = mf.ModelMetadata(name=name, training_noise="Identity()", training_data="unit test",
                            metrics={"psnr": 40.0, "ber": {"identity": 0.0}})
    return mf.save_model(tmp_path, encoder, decoder, CONFIG, meta, **kw), encoder, decoder


def test_round_trip_is_exact_including_batchnorm_statistics(tmp_path):
    files, encoder, decoder = save(tmp_path)
    assert files.json_path == tmp_path / "m.json" and files.weights_path == tmp_path / "m.safetensors"
    loaded = mf.load_model_files(files.json_path)
    assert loaded.config == CONFIG and not loaded.encoder.training and not loaded.decoder.training
    assert torch.equal(loaded.decoder.body[0][1].running_var, decoder.body[0][1].running_var)
    assert not torch.equal(decoder.body[0][1].running_var, torch.ones_like(decoder.body[0][1].running_var))
    for a, b in zip(outputs(encoder, decoder), outputs(loaded.encoder, loaded.decoder)):
        assert torch.equal(a, b)


def test_json_description(tmp_path):
    files, _, _ = save(tmp_path)
    data = json.loads(files.json_path.read_text())
    assert data["format"] == mf.FORMAT and data["format_version"] == mf.FORMAT_VERSION
    assert data["network"] == CONFIG.to_dict()
    assert data["weights"]["sha256"] == hashlib.sha256(files.weights_path.read_bytes()).hexdigest()
    assert data["training"] == {"noise": "Identity()", "data": "unit test"}
    assert data["metrics"]["ber"] == {"identity": 0.0} and data["licence"]
    meta = mf.load_model_files(files.json_path).metadata
    assert meta.training_noise == "Identity()" and meta.metrics["psnr"] == 40.0


def test_stem_and_file_paths(tmp_path):
    encoder, decoder = trained_like()
    for target in ("a", "b.json", "c.safetensors"):
        files = mf.save_model(tmp_path / target, encoder, decoder, CONFIG)
        assert files.json_path.is_file() and files.weights_path.is_file()
        assert files.json_path.stem == target.split(".")[0]


def test_fp16_weights(tmp_path):
    files, encoder, decoder = save(tmp_path, fp16=True)
    (tmp_path / "f32").mkdir()
    full, _, _ = save(tmp_path / "f32", name="full")
    assert files.weights_path.stat().st_size < 0.6 * full.weights_path.stat().st_size
    loaded = mf.load_model_files(files.json_path)
    assert loaded.encoder.image_branch[0][0].weight.dtype == torch.float32
    for a, b in zip(outputs(encoder, decoder), outputs(loaded.encoder, loaded.decoder)):
        assert torch.allclose(a, b, atol=0.05, rtol=0.01)


def test_checksum_mismatch_is_refused(tmp_path):
    files, _, _ = save(tmp_path)
    blob = bytearray(files.weights_path.read_bytes())
    blob[-1] ^= 1
    files.weights_path.write_bytes(bytes(blob))
    with pytest.raises(mf.ModelFileError, match="do not match the SHA-256"):
        mf.load_model_files(files.json_path)


def test_missing_checksum_warns_for_user_models_and_fails_for_shipped(tmp_path):
    files, _, _ = save(tmp_path)
    data = json.loads(files.json_path.read_text())
    del data["weights"]["sha256"]
    files.json_path.write_text(json.dumps(data))
    with pytest.warns(mf.ModelWarning, match="unchecked"):
        mf.load_model_files(files.json_path)
    with pytest.raises(mf.ModelFileError, match="shipped model must have"):
        mf.load_model_files(files.json_path, source="shipped")


def test_pickles_are_never_loaded(tmp_path):
    files, _, _ = save(tmp_path)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    replace_weights(files, pickle.dumps({"encoder.x": Boom()}))
    with pytest.raises(mf.ModelFileError, match="cannot read the weights"):
        mf.load_model_files(files.json_path)
    assert not (tmp_path / "pwned").exists()


def test_weights_must_fit_the_architecture(tmp_path):
    files, _, _ = save(tmp_path)
    other = json.loads(files.json_path.read_text())
    other["network"]["channels"] = 24
    files.json_path.write_text(json.dumps(other))
    with pytest.raises(mf.ModelFileError, match="do not fit the network"):
        mf.load_model_files(files.json_path)


def test_a_network_that_does_not_fit_the_weights_is_refused_before_it_is_built(tmp_path, monkeypatch):
    files, _, _ = save(tmp_path)
    data = json.loads(files.json_path.read_text())
    data["network"]["channels"] = 512  # within the limits, far larger than the weights
    files.json_path.write_text(json.dumps(data))
    monkeypatch.setattr(mf, "build_from_config", lambda cfg: pytest.fail("built a network for weights that do not fit"))
    with pytest.raises(mf.ModelFileError, match="do not fit the network.*shape"):
        mf.load_model_files(files.json_path)


@pytest.mark.parametrize("network, message", [
    ({"channels": 4096}, "channels 4096 is beyond the limit"),
    ({"image_size": 4096, "channels": 64}, "image_size 4096 with 64 channels is beyond the limit"),
    ({"image_size": 1024, "message_length": 4}, "parameters is beyond the limit"),  # channels double 9 times
])
def test_network_sizes_are_bounded(tmp_path, network, message):
    files, _, _ = save(tmp_path)
    data = json.loads(files.json_path.read_text())
    data["network"].update(network)
    files.json_path.write_text(json.dumps(data))
    with pytest.raises(mf.ModelFileError, match=message):
        mf.load_model_files(files.json_path)
    with pytest.raises(mf.ModelFileError, match=message):  # `mbrs models --install` and the app's install
        mf.install_model(files.json_path, "huge")
    assert not (mf.user_models_dir() / "huge.json").exists()


def test_weights_larger_than_the_network_needs_are_not_read(tmp_path, monkeypatch):
    files, _, _ = save(tmp_path)
    with open(files.weights_path, "ab") as fh:
        fh.truncate(files.weights_path.stat().st_size + (64 << 20))  # a sparse 64 MB tail
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}"))
    with pytest.raises(mf.ModelFileError, match="larger .* than the network"):
        mf.load_model_files(files.json_path)


def test_a_header_with_foreign_tensors_is_refused(tmp_path):
    from safetensors.torch import save as save_safetensors

    files, encoder, decoder = save(tmp_path)
    tensors = mf.state_tensors(encoder, decoder)
    tensors["extra.weight"] = torch.zeros(3)
    replace_weights(files, save_safetensors(tensors))
    with pytest.raises(mf.ModelFileError, match="unexpected tensor 'extra.weight'"):
        mf.load_model_files(files.json_path)
    del tensors["extra.weight"], tensors["decoder.body.0.0.weight"]
    replace_weights(files, save_safetensors(tensors))
    with pytest.raises(mf.ModelFileError, match="missing tensor 'decoder.body.0.0.weight'"):
        mf.load_model_files(files.json_path)


def test_a_model_json_asking_for_4096_channels_is_refused_quickly_in_little_memory(tmp_path):
    """The shipped weights with their own checksum, under a description that asks for 4096 channels: once this
    took 22.7 GB and the kernel killed the process.  Now: a one-line error, exit 2, in little time and memory."""
    import time

    from PIL import Image

    shutil.copy(mf.shipped_models_dir() / "default.safetensors", tmp_path / "huge.safetensors")
    data = json.loads((mf.shipped_models_dir() / "default.json").read_text())
    data["weights"]["file"] = "huge.safetensors"
    data["network"]["channels"] = 4096
    (tmp_path / "huge.json").write_text(json.dumps(data))
    Image.new("RGB", (64, 64), (120, 130, 140)).save(tmp_path / "x.png")
    peak = tmp_path / "peak-kb"
    # the child's own peak: VmHWM of its memory map (ru_maxrss would include the parent's peak, carried over exec)
    script = ("import resource, sys; from mbrs_engine.cli import main\n"
              "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a safety net, far above the bound\n"
              "try:\n    sys.exit(main(sys.argv[2:]))\nfinally:\n"
              "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
              "    open(sys.argv[1], 'w').write(hwm)")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script, str(peak), "decode", str(tmp_path / "x.png"), "--model",
                           str(tmp_path / "huge.json")], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    peak_mb = int(peak.read_text()) / 1024
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "channels 4096 is beyond the limit" in done.stderr
    assert seconds < 30 and peak_mb < 2048  # building the network would take minutes and many GB (30 s: a busy CI)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="something"), "not an MBRS Studio model"),
    (lambda d: d.update(format_version=99), "format version 99"),
    (lambda d: d.pop("network"), "lacks its 'network'"),
    (lambda d: d["network"].update(message_length=65), "invalid network configuration"),
    (lambda d: d["weights"].update(file="../elsewhere.safetensors"), "beside the description"),
])
def test_bad_descriptions(tmp_path, change, message):
    files, _, _ = save(tmp_path)
    data = json.loads(files.json_path.read_text())
    change(data)
    files.json_path.write_text(json.dumps(data))
    with pytest.raises(mf.ModelFileError, match=message):
        mf.load_model_files(files.json_path)


def test_unreadable_json(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(mf.ModelFileError, match="cannot read the model description"):
        mf.load_model_files(tmp_path / "x.json")


# ---------------------------------------------------------------- registry


def test_shipped_default_model_loads_with_its_checksum():
    from mbrs_engine import Watermarker

    wm = Watermarker.from_pretrained()
    assert (wm.image_size, wm.message_length, wm.capacity) == (128, 256, 13)
    assert wm.metadata["source"] == "shipped" and wm.residual_psnr is not None
    assert mf.read_model_json(mf.shipped_models_dir() / "default.json")["weights"]["sha256"]


def test_no_default_model_installed(no_shipped_models):
    from mbrs_engine import Watermarker

    assert mf.default_model_name() == "default"
    with pytest.raises(mf.NoDefaultModelError, match="no default model is installed"):
        Watermarker.from_pretrained()


def test_registry_lists_user_models_and_resolves_names_paths_and_folders(tmp_path):
    user = mf.user_models_dir()
    user.mkdir(parents=True)
    files, _, _ = save(user, name="mine")
    infos = {i.name: i for i in mf.list_models()}
    info = infos["mine"]
    assert (info.source, info.image_size, info.message_length, info.capacity) == ("user", 32, 64, 2)
    assert info.metrics["ber"] == {"identity": 0.0} and not info.is_default
    assert mf.resolve_model("mine") == (files.json_path, "user")
    assert mf.resolve_model(files.weights_path)[0] == files.json_path
    assert mf.resolve_model(user)[0] == files.json_path
    with pytest.raises(mf.ModelFileError, match="no model named 'other'.*mine"):
        mf.resolve_model("other")
    with pytest.raises(mf.ModelFileError, match="invalid model name"):
        mf.check_name("../x")


def test_default_model_pointer(tmp_path):
    user = mf.user_models_dir()
    user.mkdir(parents=True)
    save(user, name="mine")
    with pytest.raises(mf.ModelFileError, match="no model named"):
        mf.set_default_model("absent")
    mf.set_default_model("mine")
    assert mf.default_model_name() == "mine"
    assert json.loads(mf.user_config_path().read_text()) == {"default_model": "mine"}
    assert [i.name for i in mf.list_models() if i.is_default] == ["mine"]
    assert mf.load_model().metadata.name == "mine"
    (user / "mine.json").unlink()
    with pytest.raises(mf.ModelFileError, match="default model 'mine'.*not installed"):
        mf.load_model()
    mf.set_default_model(None)
    assert mf.default_model_name() == "default"


def test_install_model(tmp_path):
    (tmp_path / "dl").mkdir()
    files, _, _ = save(tmp_path / "dl", name="download")
    info = mf.install_model(files.json_path, name="installed")
    assert info.source == "user" and info.name == "installed"
    assert mf.load_model("installed").config == CONFIG
    with pytest.raises(mf.ModelFileError, match="already installed"):
        mf.install_model(files.json_path, name="installed")
    assert mf.install_model(files.json_path, name="installed", replace=True).name == "installed"
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(files.json_path, broken / "b.json")
    (broken / "download.safetensors").write_bytes(b"garbage")
    with pytest.raises(mf.ModelFileError):
        mf.install_model(broken / "b.json")


def test_unreadable_model_is_listed_with_its_error():
    user = mf.user_models_dir()
    user.mkdir(parents=True)
    (user / "junk.json").write_text("[]")
    (info,) = [i for i in mf.list_models() if i.name == "junk"]
    assert info.error and "not an MBRS Studio model" in info.error


# ---------------------------------------------------------------- packaging


def test_shipped_models_folder_is_the_assets_package():
    assert mf.shipped_models_dir().resolve() == (ROOT / "assets" / "models").resolve()


@pytest.mark.slow
def test_wheel_ships_models_and_finds_them_when_installed(tmp_path):
    """Build a wheel of a copy of the repository with a model in assets/models, install it, load the model."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", "runs", "data")
    shutil.copytree(ROOT, src, ignore=ignore)
    save(src / "assets" / "models", name="shipped-test")
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], cwd=src, check=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("mbrs_assets/__init__.py", "mbrs_assets/models/shipped-test.json",
                   "mbrs_assets/models/shipped-test.safetensors", "mbrs_engine/watermarker.py"):
        assert needed in names
    for init in [*ROOT.glob("mbrs_engine/**/__init__.py"), *ROOT.glob("mbrs_gui/**/__init__.py")]:
        assert init.relative_to(ROOT).as_posix() in names  # every package is discovered
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True)
    code = ("import mbrs_engine, mbrs_engine.model_files as mf; from mbrs_engine import Watermarker;"
            "print(mbrs_engine.__file__); print([(i.name, i.source) for i in mf.list_models()]);"
            "print(Watermarker.from_pretrained('shipped-test').metadata['source'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)}).stdout.splitlines()
    assert out[0].startswith(str(site))
    assert "('shipped-test', 'shipped')" in out[1]
    assert out[2] == "shipped"


def test_metrics_are_formatted_for_people():
    text = mf.format_metrics({"psnr": 40.494, "ber": {"jpeg:50": 0.0446}, "recovered": {"identity": 1.0},
                              "psnr_range": [40.005, 41.735], "eval_photos": ["a.png", "b.png"], "steps": 3600})
    assert text == ("psnr 40.49 dB; ber (jpeg:50 4.46%); recovered (identity 100.00%); "
                    "psnr_range 40.01 dB to 41.73 dB; eval_photos: 2; steps 3600")
    assert mf.format_metrics({}) == "not measured"


def test_only_a_model_whose_validation_reads_back_is_fit_to_be_the_default(tmp_path):
    assert mf.unfit_as_default(mf.shipped_models_dir() / "default.json") is None
    files, _, _ = save(tmp_path)  # records no validation
    assert "never validated" in mf.unfit_as_default(files.json_path)
    data = json.loads(files.json_path.read_text())
    for ber, fit in ((0.47, False), (0.021, False), (0.004, True)):
        data["metrics"] = {"validation": {"ber_clean": ber, "ber_jpeg": 0.3}}
        files.json_path.write_text(json.dumps(data))
        reason = mf.unfit_as_default(files.json_path)
        assert (reason is None) == fit and (fit or f"{100 * ber:.1f} %" in reason)


def test_remove_a_user_model_but_never_a_shipped_one(tmp_path, tiny_model_path):
    mf.install_model(tiny_model_path, "mine")
    mf.set_default_model("mine")
    with pytest.raises(mf.ModelFileError, match="shipped model"):
        mf.remove_model("default")
    mf.remove_model("mine")
    assert not list(mf.user_models_dir().glob("mine.*")) and mf.default_model_name() == "default"
    with pytest.raises(mf.ModelFileError, match="no model named"):
        mf.remove_model("mine")


def test_headline_metrics_read_every_way_they_are_recorded():
    data = json.loads((mf.shipped_models_dir() / "default.json").read_text())
    psnr, ber = mf.headline_metrics(data["metrics"])
    assert psnr == data["metrics"]["full_size"]["psnr"] and ber == data["metrics"]["full_size"]["ber"]["jpeg:50"]
    assert mf.headline_metrics({"validation": {"psnr": 36.0, "ber_jpeg_s1": 0.1}}) == (36.0, 0.1)
    assert mf.headline_metrics({"measured": {"psnr": 41.0, "ber": 0.3}}) == (41.0, 0.3)
    assert mf.headline_metrics({"psnr": 40.0, "ber": {"jpeg:50": 0.2}}) == (40.0, 0.2)
    assert mf.headline_metrics({}) == (None, None) and mf.headline_metrics({"psnr": float("nan")}) == (None, None)
