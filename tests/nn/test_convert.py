"""PyTorch -> Flax weight import: key maps vs the committed timm layouts, value transforms, errors, safetensors."""
import json
import re
import struct

import jax
import numpy as np
import pytest

import hmrjax.nn.backbones as bb
from hmrjax.nn.backbones.convert import (WeightImportError, convert_state_dict, expected_torch_layout_from_shapes,
                                         read_safetensors, write_safetensors)
from backbone_helpers import layout, torch_shapes, variable_shapes

# (fixture, arch, kwargs): every reference layout the backbones claim to match.
LAYOUTS = [("resnet50", "resnet50", {"num_classes": 1000}), ("resnet101", "resnet101", {"num_classes": 1000}),
           ("hrnet_w18", "hrnet_w18", {"head": "classification"}),
           ("hrnet_w48", "hrnet_w48", {"head": "classification"}),
           ("hrnet_w48_features", "hrnet_w48", {"head": "incre"}),
           ("hrnet_w48_branches", "hrnet_w48", {}),
           ("vit_base_patch16_224", "vit_base_patch16_224", {"num_classes": 1000}),
           ("vit_large_patch16_224", "vit_large_patch16_224", {"num_classes": 1000}),
           ("vit_huge_patch14_224", "vit_huge_patch14_224", {})]


@pytest.mark.parametrize("fixture,arch,kwargs", LAYOUTS, ids=[f[0] for f in LAYOUTS])
def test_expected_layout_equals_reference_state_dict(fixture, arch, kwargs):
    """Names and shapes the importer expects == timm's state_dict (minus num_batches_tracked), both ways."""
    got = expected_torch_layout_from_shapes(variable_shapes(arch, **kwargs))
    ref = torch_shapes(fixture)
    assert sorted(set(ref) - set(got)) == [] and sorted(set(got) - set(ref)) == []
    assert {k: v for k, v in got.items() if v != ref[k]} == {}


def _torch_to_flax_path(key):
    """Independent inverse of the naming rule: 'stage2.0.fuse_layers.1.0.0.0.weight' -> collection, path."""
    *mods, leaf = key.split(".")
    path = re.sub(r"\.(\d+)", r"_\1", ".".join(mods)).split(".") if mods else []
    if leaf in ("running_mean", "running_var"):
        return "batch_stats", path + [leaf[len("running_"):]]
    return "params", path + [leaf]


@pytest.mark.parametrize("fixture,arch,kwargs", [LAYOUTS[0], LAYOUTS[6]], ids=["resnet50", "vit_b"])
def test_every_value_lands_transposed(fixture, arch, kwargs):
    """Conv, BN (params + stats), linear, LayerNorm, pos_embed / cls_token: every leaf filled, transposed right.

    (HRNet uses only conv + BN, the same transforms; its names are covered by the layout test.)"""
    rng = np.random.default_rng(0)
    sd = {k: rng.random(s, dtype=np.float32) for k, s in torch_shapes(fixture).items()}
    sd.update({k: np.array(5) for k, s, _ in layout(fixture)["state_dict"] if k.endswith("num_batches_tracked")})
    variables, report = convert_state_dict(bb.create(arch, **kwargs), sd)
    assert report.unexpected == [] and report.missing == [] and report.dropped == []
    assert len(report.filled) == len(torch_shapes(fixture))
    n_leaves = 0
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            continue
        col, path = _torch_to_flax_path(key)
        node = variables[col]
        for p in path[:-1]:
            node = node[p]
        leaf = path[-1]
        if leaf == "weight" and value.ndim == 4:
            expected = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            got = node["kernel"]
        elif leaf == "weight" and value.ndim == 2:
            expected, got = value.T, node["kernel"]
        elif leaf == "weight":
            expected, got = value, node["scale"]
        else:
            expected, got = value, node[leaf]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected, err_msg=key)
        n_leaves += 1
    assert n_leaves == sum(1 for _ in jax.tree.leaves(variables))


def _tiny_state_dict(arch="resnet_tiny", **kwargs):
    shapes = expected_torch_layout_from_shapes(variable_shapes(arch, **kwargs))
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_errors_list_missing_unexpected_and_misshaped_keys():
    model = bb.create("resnet_tiny")
    sd = _tiny_state_dict()
    bad = dict(sd)
    del bad["layer2.0.conv1.weight"]
    bad["layer3.0.bn2.bias"] = np.zeros(7, np.float32)
    bad["mystery.weight"] = np.zeros(3, np.float32)
    with pytest.raises(WeightImportError) as e:
        convert_state_dict(model, bad)
    msg = str(e.value)
    assert "missing" in msg and "layer2.0.conv1.weight" in msg
    assert "unexpected" in msg and "mystery.weight" in msg
    assert "layer3.0.bn2.bias" in msg and "expects torch shape (32,)" in msg and "checkpoint has (7,)" in msg
    # strict=False: unexpected keys ignored, missing ones taken from init_variables; shapes still strict
    del bad["layer3.0.bn2.bias"]
    init = {"params": {"layer2_0": {"conv1": {"kernel": np.full((1, 1, 32, 16), 3.0, np.float32)}}}}
    with pytest.raises(WeightImportError, match="layer3.0.bn2.bias"):
        convert_state_dict(model, bad, strict=False, init_variables=init)
    bad["layer3.0.bn2.bias"] = sd["layer3.0.bn2.bias"]
    variables, report = convert_state_dict(model, bad, strict=False, init_variables=init)
    assert report.missing == ["layer2.0.conv1.weight"] and report.unexpected == ["mystery.weight"]
    np.testing.assert_array_equal(variables["params"]["layer2_0"]["conv1"]["kernel"], 3.0)
    with pytest.raises(WeightImportError, match="init_variables"):
        convert_state_dict(model, bad, strict=False)


def test_classifier_heads_are_dropped_and_prefixes_stripped():
    sd = {f"module.{k}": v for k, v in _tiny_state_dict().items()}
    sd["module.fc.weight"] = np.zeros((10, 256), np.float32)
    sd["module.fc.bias"] = np.zeros(10, np.float32)
    _, report = convert_state_dict(bb.create("resnet_tiny"), sd)
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"]
    with pytest.raises(WeightImportError, match="fc.weight"):
        convert_state_dict(bb.create("resnet_tiny"), sd, drop_unused_heads=False)


def test_pose_hrnet_checkpoint_loads_non_strict_like_pare():
    """Official pose-HRNet files (deep-high-resolution-net) build stage 4's last module with single-scale
    output and add a `final_layer` joint head; PARE / D-PoSE load them with strict=False."""
    model = bb.create("hrnet_tiny")
    sd = _tiny_state_dict("hrnet_tiny")
    multi_scale_only = [k for k in sd if re.match(r"stage4\.0\.fuse_layers\.[123]\.", k)]
    assert multi_scale_only
    pose_sd = {k: v for k, v in sd.items() if k not in multi_scale_only}
    pose_sd["final_layer.weight"] = np.zeros((17, 8, 1, 1), np.float32)
    pose_sd["final_layer.bias"] = np.zeros(17, np.float32)
    with pytest.raises(WeightImportError, match="stage4.0.fuse_layers.1"):
        convert_state_dict(model, pose_sd)
    init = jax.tree.map(lambda a: np.full(a.shape, 0.5, np.float32), variable_shapes("hrnet_tiny"))
    variables, report = convert_state_dict(model, pose_sd, strict=False, init_variables=init)
    assert sorted(report.missing) == sorted(multi_scale_only)
    assert sorted(report.dropped) == ["final_layer.bias", "final_layer.weight"]
    np.testing.assert_array_equal(variables["params"]["stage4_0"]["fuse_layers_1_0_0_0"]["kernel"], 0.5)
    np.testing.assert_array_equal(variables["params"]["stage4_0"]["fuse_layers_0_1_0"]["kernel"],
                                  sd["stage4.0.fuse_layers.0.1.0.weight"].transpose(2, 3, 1, 0))


def test_vitpose_checkpoint_layout():
    """mmpose ViTPose names: 'backbone.' prefix, 'last_norm', no cls_token, keypoint_head.deconv_layers.{0,1,3,4}."""
    c, p = 32, 16
    rng = np.random.default_rng(2)
    sd = {"backbone.pos_embed": (1, 16 * 12 + 1, c), "backbone.patch_embed.proj.weight": (c, 3, p, p),
          "backbone.patch_embed.proj.bias": (c,), "backbone.last_norm.weight": (c,), "backbone.last_norm.bias": (c,),
          "keypoint_head.deconv_layers.0.weight": (c, 256, 4, 4), "keypoint_head.deconv_layers.3.weight": (256, 256, 4, 4),
          "keypoint_head.final_layer.weight": (17, 256, 1, 1), "keypoint_head.final_layer.bias": (17,)}
    for i in (1, 4):
        for s in ("weight", "bias", "running_mean", "running_var"):
            sd[f"keypoint_head.deconv_layers.{i}.{s}"] = (256,)
        sd[f"keypoint_head.deconv_layers.{i}.num_batches_tracked"] = ()
    for b in range(2):
        for name, shape in [("norm1.weight", (c,)), ("norm1.bias", (c,)), ("attn.qkv.weight", (3 * c, c)),
                            ("attn.qkv.bias", (3 * c,)), ("attn.proj.weight", (c, c)), ("attn.proj.bias", (c,)),
                            ("norm2.weight", (c,)), ("norm2.bias", (c,)), ("mlp.fc1.weight", (4 * c, c)),
                            ("mlp.fc1.bias", (4 * c,)), ("mlp.fc2.weight", (c, 4 * c)), ("mlp.fc2.bias", (c,))]:
            sd[f"backbone.blocks.{b}.{name}"] = shape
    sd = {k: rng.standard_normal(s).astype(np.float32) for k, s in sd.items()}
    full, report = convert_state_dict(bb.create("vitpose_tiny_test"), sd)
    assert report.unexpected == [] and report.missing == []
    np.testing.assert_array_equal(full["params"]["keypoint_head"]["deconv_layers_0"]["kernel"],
                                  sd["keypoint_head.deconv_layers.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(full["params"]["backbone"]["norm"]["scale"], sd["backbone.last_norm.weight"])
    # the backbone alone takes the same file: prefix stripped, decoder dropped as a head
    from hmrjax.nn.backbones.vit import vitpose_kwargs
    backbone_only, report = convert_state_dict(bb.VisionTransformer(**vitpose_kwargs("vit_tiny_test")), sd,
                                               input_shape=(1, 256, 192, 3))
    assert report.unexpected == [] and len(report.dropped) == 12  # 4 deconv/final + 2 BN x 4
    jax.tree.map(np.testing.assert_array_equal, backbone_only["params"], full["params"]["backbone"])


def test_pos_embed_mismatch_hints_at_grid():
    sd = _tiny_state_dict("vit_tiny_test")
    sd["pos_embed"] = np.zeros((1, 197, 32), np.float32)
    with pytest.raises(WeightImportError, match=r"pos_grid, e.g. \(14, 14\)"):
        convert_state_dict(bb.create("vit_tiny_test"), sd)


def test_safetensors_reader_on_hand_built_bytes(tmp_path):
    # header (padded to 8 bytes) + F32 [2, 2], BF16 [3] and F16 [1] payloads, little-endian
    f32 = np.array([[1.5, -2.0], [0.25, 3.0]], "<f4").tobytes()
    bf16 = struct.pack("<3H", 0x3F80, 0xC040, 0x4049)  # 1.0, -3.0, 3.140625
    f16 = np.array([0.5], "<f2").tobytes()
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b.c": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
              "d": {"dtype": "F16", "shape": [1], "data_offsets": [22, 24]}}
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + f32 + bf16 + f16)
    out = read_safetensors(path)
    np.testing.assert_array_equal(out["a"], [[1.5, -2.0], [0.25, 3.0]])
    assert out["b.c"].dtype == np.float32
    np.testing.assert_array_equal(out["b.c"], [1.0, -3.0, 3.140625])
    np.testing.assert_array_equal(out["d"], [0.5])
    header["a"]["data_offsets"] = [0, 12]
    hb = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + f32 + bf16 + f16)
    with pytest.raises(WeightImportError, match="'a'.*data_offsets"):
        read_safetensors(path)
    path.write_bytes(struct.pack("<Q", 10 ** 9) + b"{}")
    with pytest.raises(WeightImportError, match="exceeds the file size"):
        read_safetensors(path)


def test_safetensors_round_trip_and_checkpoint_cli(tmp_path):
    sd = _tiny_state_dict()
    sd["layer1.0.bn1.num_batches_tracked"] = np.array(7, np.int64)
    src = tmp_path / "resnet_tiny.safetensors"
    write_safetensors(src, sd, metadata={"format": "pt"})
    back = read_safetensors(src)
    assert back.keys() == sd.keys()
    for k in sd:
        assert back[k].dtype == sd[k].dtype
        np.testing.assert_array_equal(back[k], sd[k])
    variables = bb.load_torch_weights("resnet_tiny", src)
    assert jax.tree.structure(variables) == jax.tree.structure(variable_shapes("resnet_tiny"))
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"], sd["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["batch_stats"]["layer4_0"]["downsample_1"]["var"],
                                  sd["layer4.0.downsample.1.running_var"])
    for suffix in ("npz", "msgpack"):
        dst = tmp_path / f"out.{suffix}"
        report = bb.convert_checkpoint(src, dst, "resnet_tiny")
        assert len(report.filled) == len(sd) - 1 and not list(tmp_path.glob("*.tmp*"))
        jax.tree.map(np.testing.assert_array_equal, bb.load_variables(dst), variables)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        bb.load_torch_weights("resnet_tiny", tmp_path / "nope.safetensors")


@pytest.mark.interop
def test_pth_checkpoint_via_torch_load(tmp_path):
    torch = pytest.importorskip("torch")
    sd = _tiny_state_dict()
    tsd = {k: torch.from_numpy(v) for k, v in sd.items()}
    tsd["conv1.weight"] = tsd["conv1.weight"].to(torch.bfloat16)  # bf16 tensors are widened to float32
    tsd["bn1.num_batches_tracked"] = torch.tensor(3)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": tsd, "meta": {"epoch": 1}}, path)  # mmpose-style container
    variables = bb.load_torch_weights("resnet_tiny", path)
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"],
                                  tsd["conv1.weight"].float().numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["params"]["layer1_0"]["conv3"]["kernel"],
                                  sd["layer1.0.conv3.weight"].transpose(2, 3, 1, 0))
