"""Each demo on a short synthetic clip, headless, with tiny models made here
(no training except one --fast run of the fallback path)."""

import importlib.util
import os

import cv2
import numpy as np
import pytest

DEMOS = os.path.join(os.path.dirname(__file__), "..", "..", "demos")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", os.path.join(DEMOS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demos():
    return {name: _load(name) for name in ("portrait_mode", "driving_scenes", "panoptic")}


def _video_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture(scope="module")
def portrait_tflite(tmp_path_factory):
    from kerasseg import portrait_model
    from kerasseg.export import to_tflite

    model = portrait_model(input_shape=(64, 64, 3), head_filters=8,
                           backbone_kwargs={"alpha": 0.35})
    return to_tflite(model, tmp_path_factory.mktemp("portrait") / "portrait.tflite",
                     output="probabilities")


@pytest.fixture(scope="module")
def driving_tflite(tmp_path_factory):
    import kerasseg
    from kerasseg.data.synthetic import CLASS_NAMES
    from kerasseg.export import to_tflite

    model = kerasseg.lraspp(len(CLASS_NAMES), (64, 128, 3), backbone="mobilenetv3small",
                            high_level="P4", head_filters=8, backbone_kwargs={"alpha": 0.35})
    return to_tflite(model, tmp_path_factory.mktemp("driving") / "driving.tflite",
                     labels=CLASS_NAMES)


def test_portrait_demo_writes_a_video_of_the_clip(demos, portrait_tflite, tmp_path):
    output, shot = tmp_path / "portrait.mp4", tmp_path / "shot.png"
    code = demos["portrait_mode"].main(["--model", str(portrait_tflite), "--frames", "3",
                                        "--output", str(output), "--screenshot", str(shot)])
    assert code == 0
    frames = _video_frames(output)
    assert len(frames) == 3
    assert frames[0].shape == (288, 2 * 384, 3)  # input | result
    assert cv2.imread(str(shot)).shape[2] == 3


def test_portrait_demo_replaces_background_on_an_image_folder(demos, portrait_tflite, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 60, 3), 90 + i, np.uint8))
    output = tmp_path / "out"
    code = demos["portrait_mode"].main([
        "--input", str(folder), "--model", str(portrait_tflite), "--mode", "replace",
        "--background", "0,255,0", "--output", str(output), "--no-side-by-side",
        "--smoothing", "0",
    ])
    assert code == 0
    written = sorted(os.listdir(output))
    assert written == ["frame_00000.png", "frame_00001.png"]
    frame = cv2.imread(str(output / written[0]))
    assert frame.shape == (40, 60, 3)


def test_portrait_fallback_trains_once_then_reuses_the_cache(demos, tmp_path, capsys):
    arguments = ["--fast", "--frames", "2", "--cache-dir", str(tmp_path / "cache"),
                 "--output", str(tmp_path / "out.avi")]
    assert demos["portrait_mode"].main(arguments) == 0
    assert "training a small portrait model" in capsys.readouterr().out
    assert len(_video_frames(tmp_path / "out.avi")) == 2  # MJPG
    assert demos["portrait_mode"].main(arguments) == 0
    assert "using the cached" in capsys.readouterr().out


def test_demo_reports_bad_input_and_exits_2(demos, portrait_tflite, tmp_path, capsys):
    code = demos["portrait_mode"].main(["--model", str(portrait_tflite), "--input",
                                        str(tmp_path / "missing.mp4")])
    assert code == 2
    assert "missing.mp4" in capsys.readouterr().err


def test_driving_demo_overlays_the_models_palette_with_legend(demos, driving_tflite, tmp_path):
    output = tmp_path / "driving.mp4"
    code = demos["driving_scenes"].main(["--model", str(driving_tflite), "--frames", "3",
                                         "--output", str(output)])
    assert code == 0
    frames = _video_frames(output)
    assert len(frames) == 3
    assert frames[0].shape[0] == 256 and frames[0].shape[1] > 512  # frame + legend panel


def test_legend_fits_every_class_into_the_frame_height(demos):
    from kerasseg.data.labels import CAMVID_CLASSES, CAMVID_PALETTE

    # 11 classes on a 160-pixel frame: rows shrink instead of the last ones being cut.
    panel = demos["driving_scenes"].legend(160, CAMVID_CLASSES, CAMVID_PALETTE, set(), 0.5)
    assert panel.shape[0] == 160
    last = CAMVID_PALETTE[-1]
    assert np.all(panel == np.asarray(last, np.uint8), axis=-1).any()  # its swatch is drawn


def test_driving_colours_and_overlay(demos):
    driving = demos["driving_scenes"]
    from kerasseg.data.labels import CAMVID_CLASSES, CAMVID_PALETTE, voc_palette

    # The metadata's palette (a CamVid export's) draws the classes.
    names, palette = driving.class_colours(CAMVID_CLASSES, CAMVID_PALETTE)
    assert names == list(CAMVID_CLASSES)
    np.testing.assert_array_equal(palette, CAMVID_PALETTE)
    # Without one: Cityscapes colours by name, the VOC colour map's for the rest.
    names, palette = driving.class_colours(["sky", "ball", "car"], None)
    np.testing.assert_array_equal(palette, [driving.CITYSCAPES_PALETTE[10], voc_palette(3)[1],
                                            driving.CITYSCAPES_PALETTE[13]])
    with pytest.raises(ValueError, match="no labels"):
        driving.class_colours(None, None)
    frame = np.full((2, 2, 3), 50, np.uint8)
    out = driving.overlay(frame, np.array([[0, 2], [1, 0]]), palette, opacity=1.0)
    np.testing.assert_array_equal(out[0, 1], palette[2])
    np.testing.assert_array_equal(driving.overlay(frame, np.zeros((2, 2), int), palette, 0.0),
                                  frame)


def test_panoptic_demo_runs_lpsnet(demos, tmp_path):
    panoptic = demos["panoptic"]
    from kerasseg.data.synthetic import CLASS_NAMES, THING_CLASSES

    model_path = tmp_path / "lpsnet.keras"
    panoptic.build_lpsnet(len(CLASS_NAMES), THING_CLASSES, fast=True).save(model_path)
    output = tmp_path / "panoptic.mp4"
    code = panoptic.main(["--model", str(model_path), "--frames", "2", "--output", str(output)])
    assert code == 0
    frames = _video_frames(output)
    assert len(frames) == 2 and frames[0].shape == (256, 384, 3)


def test_panoptic_colouring(demos):
    panoptic = demos["panoptic"]
    from kerasseg.data.synthetic import CLASS_NAMES, PALETTE, THING_CLASSES
    from kerasseg.panoptic import LABEL_DIVISOR

    person = CLASS_NAMES.index("person")
    ids = np.full((40, 40), 0 * LABEL_DIVISOR, np.int32)  # sky (stuff)
    ids[5:20, 5:15] = person * LABEL_DIVISOR + 1
    ids[5:20, 25:35] = person * LABEL_DIVISOR + 2
    ids[30:, :] = -1  # void
    frame = np.full((40, 40, 3), 100, np.uint8)
    out = panoptic.colour_panoptic(frame, ids, CLASS_NAMES, PALETTE, THING_CLASSES,
                                   LABEL_DIVISOR, opacity=1.0)
    np.testing.assert_array_equal(out[25, 20], PALETTE[0])
    np.testing.assert_array_equal(out[35, 20], frame[35, 20])
    # Two people: two different colours (away from outlines and labels).
    assert not np.array_equal(out[17, 10], out[17, 30])


SHARED_PRETRAINED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                 "pretrained")


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED_PRETRAINED,
                                                    "deeplabv3_mnv2_dm05_pascal_quant.tflite")),
                    reason="Google's files are not in ../shared/pretrained")
def test_portrait_demo_takes_a_preset_name(demos, tmp_path, monkeypatch, capsys):
    """--model NAME exports the preset once (fp16, with its VOC labels) and
    finds the person class by name."""
    monkeypatch.setenv("KERASSEG_HOME", SHARED_PRETRAINED)
    arguments = ["--model", "deeplabv3_mobilenetv2_0.5_pascal_voc", "--frames", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--input",
                 os.path.join(SHARED_PRETRAINED, "bird_segmentation.bmp")]
    code = demos["portrait_mode"].main([*arguments, "--output", str(tmp_path / "a")])
    assert code == 0
    exported = tmp_path / "cache" / "deeplabv3_mobilenetv2_0.5_pascal_voc_513_fp16.tflite"
    assert exported.is_file() and "exporting preset" in capsys.readouterr().out
    code = demos["portrait_mode"].main([*arguments, "--output", str(tmp_path / "b")])
    assert code == 0 and "using the cached export" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "b")) == 1


def test_a_model_path_is_not_taken_for_a_preset(demos, tmp_path):
    path = tmp_path / "pascal_voc"
    path.write_bytes(b"")
    args = demos["portrait_mode"].build_parser().parse_args(["--model", str(path)])
    assert demos["portrait_mode"]._common.model_file(args, lambda: "fallback") == str(path)


def test_driving_demo_runs_the_finished_recipe_run_by_default(demos, tmp_path, monkeypatch,
                                                              capsys):
    """Without --model, a finished `kerasseg train --config camvid_cityscapes`
    run in ./runs/camvid_cityscapes is exported once (with CamVid's classes
    from its config.yaml) and run instead of the synthetic fallback."""
    import json

    import kerasseg
    from kerasseg.data import CAMVID_CLASSES
    from kerasseg.train import Config

    run = tmp_path / "runs" / "camvid_cityscapes"
    model = kerasseg.lraspp(len(CAMVID_CLASSES), backbone="mobilenetv3small", high_level="P4",
                            head_filters=8, backbone_kwargs={"alpha": 0.35})
    run.mkdir(parents=True)
    model.save(run / "best.keras")
    Config.from_dict({"data": {"dataset": "camvid", "root": "/data/CamVid"}}).save(run)
    monkeypatch.chdir(tmp_path)
    arguments = ["--frames", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--output", str(tmp_path / "out")]
    assert demos["driving_scenes"].main(arguments) == 0
    out = capsys.readouterr().out
    assert "using the fine-tuned model of runs/camvid_cityscapes" in out
    assert "exporting it (fp16, 360x480)" in out and "training" not in out
    sidecar, = (tmp_path / "cache").glob("run_*_fp16.tflite.json")
    assert json.loads(sidecar.read_text())["labels"] == list(CAMVID_CLASSES)
    assert demos["driving_scenes"].main(arguments) == 0
    assert "using the cached export" in capsys.readouterr().out
