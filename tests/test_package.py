"""Package-level behaviour: lazy import, registry, docstrings, summary CLI."""

import inspect
import re
import subprocess
import sys

import pytest


def test_import_is_lazy_and_does_not_import_tensorflow():
    code = (
        "import sys, kerasseg; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "print(kerasseg.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", out.stdout)


def test_unknown_attribute_raises_attribute_error():
    import kerasseg

    with pytest.raises(AttributeError, match="no_such_model"):
        kerasseg.no_such_model  # noqa: B018


def test_every_registered_model_is_a_top_level_builder():
    import kerasseg
    from kerasseg.models import MODELS

    for name, builder in MODELS.items():
        assert getattr(kerasseg, name) is builder


def test_builder_docstrings_document_every_argument():
    from kerasseg.models import MODELS

    for name, builder in MODELS.items():
        doc = inspect.getdoc(builder)
        assert doc and "Args:" in doc and "Returns:" in doc, name
        args_section = doc.split("Args:")[1].split("Returns:")[0]
        for parameter in inspect.signature(builder).parameters:
            assert re.search(rf"^\s+{parameter}:", args_section, re.M), (name, parameter)


def _stated_defaults(builder):
    """(parameter, value text) for every default a builder's docstring states:
    "default `name=value`" anywhere, or "default `value`" in an Args entry."""
    doc = inspect.getdoc(builder)
    stated = re.findall(r"[Dd]efault `(\w+)=([^`]+)`", doc)
    args_section = doc.split("Args:")[1].split("Returns:")[0]
    entries = re.split(r"^\s{4}(?=\w+:)", args_section, flags=re.M)[1:]
    for entry in entries:
        parameter, text = entry.split(":", 1)
        text = " ".join(text.split())
        for match in re.finditer(r"[Dd]efaults?\b", text):
            value = re.match(r"(?: to| is|:)? `([^`=]+)`", text[match.end():])
            assert value, f"{builder.__name__}.{parameter}: state a default as `value`: {text}"
            stated.append((parameter, value.group(1)))
    return stated


def test_builder_docstring_defaults_match_the_signature():
    import ast
    import importlib

    from kerasseg.models import MODELS

    checked = 0
    for name, builder in MODELS.items():
        parameters = inspect.signature(builder).parameters
        module = importlib.import_module(builder.__module__)
        for parameter, text in _stated_defaults(builder):
            try:
                value = ast.literal_eval(text)
            except ValueError:
                value = getattr(module, text)  # a module constant, e.g. COCO_THING_CLASSES
            assert parameters[parameter].default == value, (name, parameter, text)
            checked += 1
    assert checked >= 2  # unet's padding, lpsnet's thing_classes


def test_builders_share_the_leading_keywords():
    from kerasseg.models import MODELS

    for name, builder in MODELS.items():
        parameters = list(inspect.signature(builder).parameters)
        assert parameters[:2] == ["num_classes", "input_shape"], name
        assert {"weights", "activation", "name"} <= set(parameters), name


def test_builder_signatures_follow_the_readmes_conventions():
    from kerasseg.models import MODELS

    for name, builder in MODELS.items():
        parameters = inspect.signature(builder).parameters
        names = list(parameters)
        assert parameters["input_shape"].default == (None, None, 3), name
        if name == "unet":
            tail = ["weights", "activation", "name"]
        else:
            assert names[2] == "backbone", name
            tail = ["weights", "backbone_weights", "activation", "name"]
        assert names[-len(tail):] == tail, name
        assert all(parameters[p].default is None for p in tail), name


def test_count_flops_of_a_single_convolution():
    import keras

    from kerasseg.models.summary import count_flops

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs))
    # One multiply-add per kernel tap, input and output channel and pixel.
    assert count_flops(model, (8, 8)) == 2 * 8 * 8 * 3 * 3 * 3 * 4


def test_summary_command_prints_a_row_per_model(capsys):
    from kerasseg.cli import main

    assert main(["summary", "--models", "unet", "--size", "32", "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^unet\s+31\.03M", out, re.M), out


def _summary_labels():
    from kerasseg.models.summary import SUMMARY_CONFIGS

    return sorted(SUMMARY_CONFIGS)


@pytest.mark.slow
@pytest.mark.parametrize("label", _summary_labels())
def test_summary_configurations_build(label):
    import keras

    from kerasseg.models import MODELS
    from kerasseg.models.summary import SUMMARY_CONFIGS

    builder, arguments = SUMMARY_CONFIGS[label]
    keras.backend.clear_session()
    model = MODELS[builder](**arguments)
    output = model.output["semantic"] if isinstance(model.output, dict) else model.output
    assert output.shape[-1] == arguments["num_classes"]
    keras.backend.clear_session()


def test_cli_without_command_prints_help(capsys):
    from kerasseg.cli import main

    assert main([]) == 2
    assert "summary" in capsys.readouterr().out


def test_command_help_lists_the_commands_arguments(capsys):
    from kerasseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "--help"])
    assert exit_info.value.code == 0
    assert "--no-flops" in capsys.readouterr().out


def test_load_model_registers_every_custom_layer_in_a_fresh_process(tmp_path):
    import kerasseg

    path = tmp_path / "pspnet.keras"
    model = kerasseg.pspnet(3, backbone="mobilenetv2", backbone_kwargs={"alpha": 0.35},
                            ppm_filters=4, head_filters=8)
    model.save(path)
    code = (
        "import sys, numpy as np, kerasseg; "
        f"m = kerasseg.load_model({str(path)!r}); "
        "print(m.predict(np.zeros((1, 32, 32, 3), 'float32'), verbose=0).shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 32, 32, 3)" in out.stdout

    with pytest.raises(FileNotFoundError, match="missing.keras"):
        kerasseg.load_model(str(tmp_path / "missing.keras"))


def test_ci_runs_exactly_the_readme_test_command():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("Set up and run the tests"):]
    command = section.split("```bash\n", 1)[1].split("\n```", 1)[0].strip()
    assert "ruff check" in command and "pytest" in command
    assert command in (root / ".ci" / "run").read_text().splitlines()
