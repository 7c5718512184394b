"""Preset files: looked up in KERASSEG_HOME, downloaded only from their
pinned URL and used only with the right SHA-256; offline, one clear line.
No test downloads anything: `urllib.request.urlopen` is replaced."""

import dataclasses
import hashlib
import io
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from kerasseg.pretrained import PRESETS, PresetFileError, preset_file, presets, resolve_preset


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty KERASSEG_HOME and no network."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("KERASSEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_offline_without_the_file_names_the_url_and_the_folder(offline):
    with pytest.raises(PresetFileError) as error:
        preset_file("deeplabv3_mobilenetv2_pascal_voc")
    message = str(error.value)
    assert "\n" not in message
    assert PRESETS["deeplabv3_mobilenetv2_pascal_voc"].url in message
    assert str(offline) in message
    assert "104342d2d3480b3e66203073dac24f4e2dbb4c41" in message


def test_a_file_with_the_wrong_hash_is_refused(offline):
    offline.mkdir()
    (offline / "deeplabv3_mnv2_pascal_quant.tflite").write_bytes(b"TFL3 but not the file")
    with pytest.raises(PresetFileError, match="refusing to use it"):
        preset_file("deeplabv3_mobilenetv2_pascal_voc")


def test_a_download_is_checked_then_kept(offline, monkeypatch):
    content = b"the published bytes"
    fake = dataclasses.replace(
        PRESETS["mobilenetv2_imagenet_quant"], name="fake", file="fake.tflite",
        sha256=hashlib.sha256(content).hexdigest(), size=len(content),
    )
    monkeypatch.setitem(presets.PRESETS, "fake", fake)
    calls = []

    def serve(url, timeout):
        calls.append(url)
        return io.BytesIO(content)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    path = preset_file("fake")
    assert open(path, "rb").read() == content
    assert calls == [fake.url]
    assert preset_file("fake") == path and len(calls) == 1  # found locally the second time
    assert not list(offline.glob("*.part"))


def test_a_download_with_the_wrong_hash_is_not_used(offline, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"tampered"))
    with pytest.raises(PresetFileError, match="refusing"):
        preset_file("deeplabv3_mobilenetv2_pascal_voc")


def test_urls_are_pinned_to_one_commit():
    for preset in PRESETS.values():
        assert preset.url == (
            "https://github.com/google-coral/test_data/raw/"
            f"104342d2d3480b3e66203073dac24f4e2dbb4c41/{preset.file}"
        )


def test_datasets_name_presets():
    assert resolve_preset("pascal_voc").name == "deeplabv3_mobilenetv2_pascal_voc"
    assert resolve_preset("cityscapes").name == "deeplabv3_mobilenet_edgetpu_cityscapes"
    with pytest.raises(ValueError, match="Unknown preset 'coco'"):
        resolve_preset("coco")


def test_a_missing_width_preset_says_which_exist():
    import kerasseg

    with pytest.raises(ValueError, match="No 'pascal_voc' preset for deeplabv3.*alpha=0.75"):
        kerasseg.deeplabv3(backbone="mobilenetv2", backbone_kwargs={"alpha": 0.75},
                           weights="pascal_voc")


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "kerasseg.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_cli_lists_presets_without_tensorflow(tmp_path):
    import os

    env = {**os.environ, "KERASSEG_HOME": str(tmp_path)}
    result = run_cli("pretrained", env=env)
    assert result.returncode == 0, result.stderr
    for preset in PRESETS.values():
        assert preset.name in result.stdout and preset.file in result.stdout
    assert "Apache-2.0" in result.stdout and str(tmp_path) in result.stdout


def test_cli_predict_offline_is_one_line_and_exit_2(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    # An unreachable proxy: the download fails at once, whatever the machine's network.
    env = {**os.environ, "KERASSEG_HOME": str(tmp_path / "home"),
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_cli("predict", "--model", "pascal_voc", str(tmp_path / "photo.png"),
                     "--output-dir", str(tmp_path / "out"), env=env)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("kerasseg")]
    assert len(errors) == 1
    assert PRESETS["deeplabv3_mobilenetv2_pascal_voc"].url in errors[0]
    assert str(tmp_path / "home") in errors[0]


def test_backbone_weights_given_as_model_weights_say_where_they_go():
    import kerasseg

    with pytest.raises(ValueError, match="pass it as `backbone_weights`"):
        kerasseg.deeplabv3(backbone="mobilenetv2", weights="mobilenetv2_imagenet_quant")
