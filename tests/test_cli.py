"""The `hmrjax` command line: argument handling and the train entry point on the toy method."""
import json

import pytest

from hmrjax import cli


def test_config_typo_is_rejected_naming_the_key(tmp_path, capsys):
    rc = cli.main(["train", "--workdir", str(tmp_path / "w"), "--config", "configs/toy.py:tiny",
                   "--config.optim.lrr=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "optim.lr" in err


def test_unknown_arguments_rejected_outside_train():
    with pytest.raises(SystemExit):
        cli.main(["body", "info", "anny", "--bogus"])


def test_train_runs_and_writes_workdir(tmp_path):
    workdir = tmp_path / "w"
    rc = cli.main(["train", "--workdir", str(workdir), "--config", "configs/toy.py:tiny",
                   "--config.total_steps=3", "--config.log_every=1"])
    assert rc == 0
    cfg = json.loads((workdir / "config.json").read_text())
    assert cfg["total_steps"] == 3
    steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3


def test_body_coarsen_writes_levels(tmp_path, capsys):
    from hmrjax.geometry import mesh

    out = tmp_path / "coarse.npz"
    assert cli.main(["body", "coarsen", "anny_lite", str(out), "--factors", "4"]) == 0
    levels = mesh.load_coarse_levels(out)
    assert len(levels) == 1
    rows = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert rows[-1]["num_vertices"] == levels[0].down.shape[0]


def test_weights_convert_from_safetensors(tmp_path, capsys):
    import jax
    import numpy as np

    from hmrjax.nn import backbones
    from hmrjax.nn.backbones import convert

    # a state_dict in the timm layout of the tiny ResNet, written as .safetensors (no torch needed)
    layout = convert.expected_torch_layout(backbones.create("resnet_tiny"), input_shape=(1, 32, 32, 3))
    rng = np.random.default_rng(0)
    sd = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in layout.items()}
    src = tmp_path / "tiny.safetensors"
    convert.write_safetensors(src, sd)
    dst = tmp_path / "tiny.npz"
    assert cli.main(["weights", "convert", str(src), str(dst), "--arch", "resnet_tiny"]) == 0
    report = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert report["filled"] == len(sd) and not report["missing"] and not report["unexpected"]
    variables = convert.load_variables(dst)
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0))
    assert jax.tree.leaves(variables)


@pytest.mark.parametrize("argv", [["eval", "--workdir", "{tmp}/nothing"],
                                  ["predict", "--workdir", "{tmp}/nothing", "--image", "{tmp}/x.png", "--out", "{tmp}/o"]])
def test_eval_and_predict_report_missing_inputs(tmp_path, capsys, argv):
    rc = cli.main([a.format(tmp=tmp_path) for a in argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error" in err and str(tmp_path) in err
