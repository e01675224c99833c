"""Pretrained encoder weights: `hmrjax weights export` from a run, `config.init.weights` into a fresh run.

Checked: the exported file holds exactly the run's encoder arrays (params and batch statistics); a run started
from it has those arrays in its encoder and a fresh init everywhere else; a resumed run ignores the file;
mismatches are refused with the key and both shapes; an HRNet encoder trained by the 2D detector fits D-PoSE's
encoder array for array.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from hmrjax import cli, evaluate, methods
from hmrjax.nn.backbones import convert
from hmrjax.train import pretrained, trainer
from hmrjax.train.config_flags import load_config

TOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "toy.py")


def _config(steps, every=2, seed=0):
    config = load_config(f"{TOY}:tiny")
    config.update(total_steps=steps, seed=seed, log_every=1)
    config.checkpoint.every_steps = every
    return config


def _flat(tree):
    return flatten_dict(tree)


def _assert_trees_equal(a, b):
    fa, fb = _flat(jax.device_get(a)), _flat(jax.device_get(b))
    assert sorted(fa) == sorted(fb)
    for k in fa:
        np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg="/".join(k))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A toy run trained 3 steps (seed 7), so its encoder differs from any fresh init."""
    workdir = tmp_path_factory.mktemp("source_run")
    trainer.train_and_evaluate(_config(3, every=3, seed=7), workdir)
    return workdir


def test_export_writes_the_runs_encoder(source_run, tmp_path, capsys):
    dst = tmp_path / "enc.npz"
    assert cli.main(["weights", "export", "--workdir", str(source_run), str(dst)]) == 0
    assert "init.weights" in capsys.readouterr().out
    variables, step = evaluate.restore_variables(source_run)
    assert step == 3
    written = convert.load_variables(dst)
    assert sorted(written) == ["batch_stats", "params"]
    _assert_trees_equal(written["params"], variables["params"]["backbone"])
    _assert_trees_equal(written["batch_stats"], variables["batch_stats"]["backbone"])
    with pytest.raises(ValueError, match="no sub-module 'trunk'"):
        pretrained.export_submodule(source_run, tmp_path / "x.npz", module="trunk")
    assert not (tmp_path / "x.npz").exists()


def test_fresh_run_starts_from_the_file_and_a_resumed_run_ignores_it(source_run, tmp_path, capsys):
    enc = tmp_path / "enc.msgpack"
    info = pretrained.export_submodule(source_run, enc)
    source, _ = evaluate.restore_variables(source_run)

    fresh = trainer.train_and_evaluate(_config(0), tmp_path / "fresh")
    config = _config(0)
    config.init.weights = str(enc)
    started = trainer.train_and_evaluate(config, tmp_path / "started")
    assert f"{info['arrays']} arrays loaded, 0 kept from the fresh init, 0 in the file unused" in capsys.readouterr().err
    _assert_trees_equal(started.params["backbone"], source["params"]["backbone"])
    _assert_trees_equal(started.state["batch_stats"]["backbone"], source["batch_stats"]["backbone"])
    _assert_trees_equal(started.params["head"], fresh.params["head"])   # the rest: the same fresh init
    assert not np.allclose(np.asarray(started.params["backbone"]["Conv_0"]["kernel"]),
                           np.asarray(fresh.params["backbone"]["Conv_0"]["kernel"]))
    # the optimiser state of a fresh start does not depend on the values (Adam moments start at zero)
    for leaf in jax.tree.leaves(started.opt_state):
        if hasattr(leaf, "shape") and leaf.ndim > 0:
            assert not np.any(np.asarray(leaf))

    # Train 2 steps from the file, then resume to 4 with the file gone: the checkpoint is what counts.
    config = _config(2, every=2)
    config.init.weights = str(enc)
    trainer.train_and_evaluate(config, tmp_path / "resume")
    enc.unlink()
    config.total_steps = 4
    state = trainer.train_and_evaluate(config, tmp_path / "resume")
    assert int(state.step) == 4
    with pytest.raises(FileNotFoundError, match="enc.msgpack does not exist"):   # a fresh start needs it
        trainer.train_and_evaluate(config, tmp_path / "fresh_again")


def _toy_variables(width):
    config = _config(1)
    config.model.width = width
    method = methods.create(config)
    batch = {"image": jnp.zeros((2, 16, 16, 3))}
    return methods.split_variables(method.init(jax.random.PRNGKey(0), batch))


def test_graft_refuses_mismatches_with_key_and_shapes():
    params, state = _toy_variables(8)
    other, other_state = _toy_variables(4)
    weights = {"params": other["backbone"], "batch_stats": other_state["batch_stats"]["backbone"]}
    with pytest.raises(ValueError, match=r"enc\.npz: params/Conv_0/kernel has shape \(3, 3, 3, 4\) in the "
                                         r"file, the model's 'backbone' expects \(3, 3, 3, 8\)"):
        pretrained.graft(params, state, weights, source="enc.npz")

    same = {"params": params["backbone"], "batch_stats": state["batch_stats"]["backbone"]}
    missing = {"params": {k: v for k, v in same["params"].items() if k != "Conv_1"},
               "batch_stats": same["batch_stats"]}
    with pytest.raises(ValueError, match="params/Conv_1/kernel of sub-module 'backbone' is missing from the file"):
        pretrained.graft(params, state, missing)
    extra = {"params": {**same["params"], "Extra": {"kernel": np.zeros(3)}}, "batch_stats": same["batch_stats"]}
    with pytest.raises(ValueError, match="params/Extra/kernel is in the file but not in the model"):
        pretrained.graft(params, state, extra)
    with pytest.raises(ValueError, match="no sub-module 'trunk'"):
        pretrained.graft(params, state, same, module="trunk")

    # strict=False: fresh values kept for what the file lacks, extras ignored, all listed
    p2, s2, report = pretrained.graft(params, state, {**missing, "params": {**missing["params"],
                                                                          "Extra": {"kernel": np.zeros(3)}}},
                                      strict=False)
    assert sorted(report.kept_fresh) == ["params/Conv_1/bias", "params/Conv_1/kernel"]
    assert report.ignored == ["params/Extra/kernel"]
    _assert_trees_equal(p2, params)   # same values (the file's are the model's own here)
    assert p2 is not params and p2["backbone"] is not params["backbone"]   # a new tree, inputs untouched


def test_graft_keeps_dtype_and_placement():
    params, state = _toy_variables(8)
    params = jax.device_put(params)
    weights = {"params": jax.tree.map(lambda x: np.asarray(x, np.float64) + 1.0, jax.device_get(params["backbone"])),
               "batch_stats": jax.device_get(state["batch_stats"]["backbone"])}
    placed = []

    def place(old, value):
        placed.append(old.sharding)
        return jax.make_array_from_callback(value.shape, old.sharding, lambda i: value[i])

    p2, _, report = pretrained.graft(params, state, weights, place=place)
    assert len(report.loaded) == len(_flat(weights["params"])) + len(_flat(weights["batch_stats"]))
    k = p2["backbone"]["Conv_0"]["kernel"]
    assert isinstance(k, jax.Array) and k.dtype == jnp.float32 and k.sharding == placed[0]
    np.testing.assert_allclose(np.asarray(k), np.asarray(params["backbone"]["Conv_0"]["kernel"]) + 1.0, rtol=1e-6)


def test_read_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz does not exist"):
        pretrained.read_weights(tmp_path / "nope.npz")
    convert.save_variables({"batch_stats": {"a": np.zeros(2)}}, tmp_path / "bs.npz")
    with pytest.raises(ValueError, match="has no 'params' collection"):
        pretrained.read_weights(tmp_path / "bs.npz")


def test_detector_encoder_fits_dpose():
    """The 2D detector's hrnet_tiny (what `hmrjax weights export` writes from a detector run) grafts,
    strictly, into D-PoSE's encoder of the same name (how the recorded 'pretrained' D-PoSE runs start).
    Shapes from `jax.eval_shape`; the file's values are random arrays of the detector's shapes."""
    from configs import detector2d, dpose
    from hmrjax.methods import detector2d as det_lib
    from hmrjax.methods import dpose as dpose_lib

    img = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    det = det_lib.Detector2D(detector2d.get_config("tiny"))
    det_shapes = jax.eval_shape(lambda x: det.model.init(jax.random.PRNGKey(1), x, train=False), img)
    rng = np.random.default_rng(0)
    weights = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32),
                           {col: tree["backbone"] for col, tree in det_shapes.items()})

    dp = dpose_lib.DPoSE(dpose.get_config("tiny"))
    dp_shapes = jax.eval_shape(lambda x: dp.model.init(jax.random.PRNGKey(2), x, jnp.zeros((1, 3)), train=False),
                               img)
    params, state = methods.split_variables(dp_shapes)
    p2, s2, report = pretrained.graft(params, state, weights)
    assert not report.kept_fresh and not report.ignored
    assert len(report.loaded) == len(_flat(weights["params"])) + len(_flat(weights["batch_stats"]))
    _assert_trees_equal(p2["backbone"], weights["params"])
    _assert_trees_equal(s2["batch_stats"]["backbone"], weights["batch_stats"])
    assert p2["part_decoder"] is params["part_decoder"]   # the rest untouched

    # and the detector's HRNet head (three top-level modules, exported as the children of one file) grafts,
    # strictly, into D-PoSE's keypoint branch (model.keypoint_lifter > 0): how `init.more` starts it
    head = {col: {m: tree[m] for m in ("head_conv_0", "head_bn_0", "final_layer") if m in tree}
            for col, tree in det_shapes.items()}
    head = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(np.float32), head)
    cfg = dpose.get_config("tiny")
    cfg.model.update(keypoint_lifter=8, keypoint_heatmaps=True)
    dp = dpose_lib.DPoSE(cfg)
    dp_shapes = jax.eval_shape(lambda x: dp.model.init(jax.random.PRNGKey(2), x, jnp.zeros((1, 3)), train=False),
                               img)
    params, state = methods.split_variables(dp_shapes)
    p3, s3, report = pretrained.graft(params, state, head, module="keypoint_branch")
    assert not report.kept_fresh and not report.ignored
    _assert_trees_equal(p3["keypoint_branch"], head["params"])
    _assert_trees_equal(s3["batch_stats"]["keypoint_branch"], head["batch_stats"])


def test_init_more_grafts_further_modules_and_multi_module_export(source_run, tmp_path, capsys):
    """`config.init.more='module=path'` grafts a second file into another sub-module on a fresh start; a
    comma-separated `--module` exports several top-level modules as the children of one file; a malformed
    entry is refused naming it."""
    enc, head = tmp_path / "enc.npz", tmp_path / "head.npz"
    pretrained.export_submodule(source_run, enc)
    pretrained.export_submodule(source_run, head, module="head")
    source, _ = evaluate.restore_variables(source_run)
    config = _config(0)
    config.init.weights = str(enc)
    config.init.more = f"head={head}"
    started = trainer.train_and_evaluate(config, tmp_path / "started")
    err = capsys.readouterr().err
    assert f"init: {enc} -> 'backbone'" in err and f"init: {head} -> 'head'" in err
    _assert_trees_equal(started.params["backbone"], source["params"]["backbone"])
    _assert_trees_equal(started.params["head"], source["params"]["head"])

    both = tmp_path / "both.npz"
    assert cli.main(["weights", "export", "--workdir", str(source_run), "--module", "backbone,head", str(both)]) == 0
    written = convert.load_variables(both)
    assert sorted(written["params"]) == ["backbone", "head"]
    _assert_trees_equal(written["params"]["head"], source["params"]["head"])
    _assert_trees_equal(written["batch_stats"], {"backbone": source["batch_stats"]["backbone"]})
    with pytest.raises(ValueError, match="no sub-module 'trunk'"):
        pretrained.export_submodule(source_run, tmp_path / "x.npz", module="backbone,trunk")

    config.init.more = "head"
    with pytest.raises(ValueError, match="config.init.more: entry 'head' must be 'module=path'"):
        pretrained.init_sources(config)
