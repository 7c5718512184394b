"""`kerasseg export` reads every format from `kerasseg.export.formats.EXPORT_FORMATS`:
adding an exporter is one record (issue 24)."""

import argparse
import subprocess
import sys
import types

import pytest

from kerasseg.cli import export as export_command
from kerasseg.cli import main
from kerasseg.export import formats
from kerasseg.export.formats import EXPORT_FORMATS, ExportFormat, Option


def _parser():
    parser = argparse.ArgumentParser()
    export_command.add_arguments(parser)
    return parser


def _choices(parser, flag):
    return next(action.choices for action in parser._actions if flag in action.option_strings)


def test_formats_extensions_and_precisions_come_from_the_records():
    parser = _parser()
    assert tuple(_choices(parser, "--format")) == ("saved_model", "tflite", "onnx", "tensorrt")
    assert tuple(_choices(parser, "--format")) == tuple(EXPORT_FORMATS)
    assert tuple(_choices(parser, "--precision")) == ("fp32", "fp16", "dynamic", "int8", "auto")
    for record in EXPORT_FORMATS.values():
        assert set(record.accepted_precisions) <= set(_choices(parser, "--precision"))
        for ending in record.extensions:
            for path in (f"out/m{ending}", f"out/M{ending.upper()}"):
                args = parser.parse_args(["m.keras", path])
                assert export_command.output_format(args) == record.name
        args = parser.parse_args(["m.keras", "m.tflite", "--format", record.name])
        assert export_command._precision(args, record.name) == record.default_precision
        for precision in ("fp32", "fp16", "dynamic", "int8", "auto"):
            args = parser.parse_args(["m.keras", "m.tflite", "--precision", precision])
            if precision in record.accepted_precisions:
                assert export_command._precision(args, record.name) == precision
            else:
                with pytest.raises(ValueError, match=f"--precision {precision} is not available "
                                                     f"for {record.name}; choose one of "
                                                     f"{', '.join(record.accepted_precisions)}$"):
                    export_command._precision(args, record.name)
    assert export_command.output_format(parser.parse_args(["m.keras", "exported/1"])) == (
        "saved_model")
    # every format's own flag reaches its converter keyword
    flags = {option.flag for record in EXPORT_FORMATS.values() for option in record.options}
    assert flags == {"--io-dtype", "--per-tensor-weights", "--low-res-logits",
                     "--allow-flex-ops", "--nchw", "--dynamic-shape", "--opset"}
    args = parser.parse_args(["m.keras", "m.onnx", "--dynamic-shape", "--opset", "13"])
    assert {option.keyword: option.value(args) for option in EXPORT_FORMATS["onnx"].options} == {
        "nchw": False, "static_shape": False, "opset": 13}


def test_auto_candidates_come_from_the_records():
    from kerasseg.export import auto

    assert auto.candidates("tflite") == ("fp32", "fp16", "dynamic", "int8")
    assert auto.candidates("onnx") == EXPORT_FORMATS["onnx"].auto
    with pytest.raises(ValueError, match="available for tflite and onnx, not tensorrt"):
        auto.candidates("tensorrt")


def test_a_record_with_keywords_the_cli_does_not_fill_is_refused():
    with pytest.raises(ValueError, match="'fake': `takes` names \\['quality'\\], which the CLI"):
        ExportFormat("fake", "fake_exporter:to_fake", takes=("image_size", "quality"))
    with pytest.raises(ValueError, match="must be among its precisions"):
        ExportFormat("fake", "fake_exporter:to_fake", default_precision="fp16")


@pytest.fixture()
def fake_format(monkeypatch):
    """A new exporter as a contributor would add it: a converter module and one
    record in the table (nothing else)."""
    calls = []

    def to_fake(model, path, **keywords):
        calls.append({"model": model.name, **keywords})
        with open(path, "w") as f:
            f.write("fake")
        return path

    monkeypatch.setitem(sys.modules, "fake_exporter", types.SimpleNamespace(to_fake=to_fake))
    record = ExportFormat(
        "fake", "fake_exporter:to_fake", (".fake",), precisions=("fp32", "fp16"),
        auto=("fp16", "fp32"), takes=("image_size", "precision", "labels"),
        options=(Option("--fake-level", "level", {"type": int, "default": 3,
                                                  "help": "compression level"}),
                 Option("--fake-raw", "packed", {"action": "store_true", "help": "raw"},
                        negated=True)))
    monkeypatch.setitem(formats.EXPORT_FORMATS, "fake", record)
    return calls


def test_a_new_record_is_all_the_cli_needs(fake_format, tmp_path, capsys):
    import keras

    image = keras.Input((16, 16, 3))
    keras.Model(image, keras.layers.Conv2D(3, 1)(image), name="tiny").save(tmp_path / "m.keras")
    model = str(tmp_path / "m.keras")
    out = str(tmp_path / "m.FAKE")
    assert main(["export", model, out, "--image-size", "32", "32", "--precision", "fp16",
                 "--fake-level", "5"]) == 0
    assert fake_format.pop() == {"model": "tiny", "image_size": (32, 32), "precision": "fp16",
                                 "labels": None, "level": 5, "packed": True}
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["export", model, str(tmp_path / "m.bin"), "--format", "fake",
                 "--fake-raw"]) == 0
    assert fake_format.pop() == {"model": "tiny", "image_size": None, "precision": "fp32",
                                 "labels": None, "level": 3, "packed": False}
    assert main(["export", model, out, "--precision", "dynamic"]) == 2
    assert ("--precision dynamic is not available for fake; choose one of fp32, fp16, auto"
            in capsys.readouterr().err)
    folder = tmp_path / "folder.fake"
    folder.mkdir()
    assert main(["export", model, str(folder)]) == 2
    assert "is a folder; a fake export writes a file" in capsys.readouterr().err
    assert not fake_format
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--fake-level FAKE_LEVEL fake: compression level" in help_text
    assert "{saved_model,tflite,onnx,tensorrt,fake}" in help_text
    assert ".tflite, .onnx, .engine, .plan, .fake or a directory" in help_text


def test_an_exporter_that_cannot_run_here_prints_why(fake_format, tmp_path, capsys,
                                                     monkeypatch):
    import keras

    def unavailable(model, path, **keywords):
        raise formats.ExporterUnavailableError("no fake device here; run `fake-build m.fake`")

    monkeypatch.setitem(sys.modules, "fake_exporter", types.SimpleNamespace(to_fake=unavailable))
    image = keras.Input((16, 16, 3))
    keras.Model(image, keras.layers.Conv2D(3, 1)(image)).save(tmp_path / "m.keras")
    assert main(["export", str(tmp_path / "m.keras"), str(tmp_path / "m.fake")]) == 1
    assert "run `fake-build m.fake`" in capsys.readouterr().out


def test_export_help_does_not_import_tensorflow():
    code = ("import sys\nfrom kerasseg.cli import main\ntry:\n    main(['export', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--opset" in result.stdout
