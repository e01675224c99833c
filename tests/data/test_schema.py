"""data_pipelines.schema: validation errors name the record and the field; completion fills defaults."""
import numpy as np
import pytest

import data_fixtures as fx
from data_pipelines import schema


def test_valid_example_passes_and_keeps_fields():
    ex = fx.make_example(0)
    out = schema.validate_example(ex, 7, num_joints=24, num_betas=10)
    for key in ("image", "pose", "betas", "joints3d", "keypoints2d", "depth", "mask", "part_seg", "heatmap_samples"):
        np.testing.assert_array_equal(out[key], ex[key])
        if key != "image":
            assert out[schema.flag_name(key)] == 1.0


@pytest.mark.parametrize("field, value, match", [
    ("pose", np.zeros((23, 3), np.float32), r"record 7: field 'pose' must have shape \[24, 3\]"),
    ("joints3d", np.zeros((24, 2), np.float32), r"record 7: field 'joints3d' must have shape \[24, 3\]"),
    ("betas", np.zeros(10, np.int64), r"record 7: field 'betas' must be floating point, got int64"),
    ("image", np.zeros((96, 128, 3), np.float32), r"record 7: field 'image' must be uint8"),
    ("mask", np.zeros((96, 127), np.uint8), r"record 7: field 'mask' must have shape \[96, 128\]"),
    ("keypoints2d", np.zeros((16, 3), np.float32), r"record 7: field 'keypoints2d' must have shape \[17, 3\]"),
    ("image_size", np.array([96.0, 128.0], np.float32), r"record 7: field 'image_size' .* does not match"),
    ("bbox_scale", np.float32(0.0), r"record 7: field 'bbox_scale' must be > 0"),
    ("has_depth", np.float32(0.5), r"record 7: field 'has_depth' must be a scalar 0 or 1"),
])
def test_bad_fields_name_record_and_field(field, value, match):
    ex = fx.make_example(0)
    ex[field] = value
    with pytest.raises(schema.SchemaError, match=match):
        schema.validate_example(ex, 7, num_joints=24, num_betas=10)


@pytest.mark.parametrize("field, index", [("pose", (3, 1)), ("transl", (2,)), ("keypoints2d", (5, 0)),
                                          ("depth", (10, 20)), ("bbox_center", (0,))])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_labels_are_errors(field, index, bad):
    ex = fx.make_example(1)
    ex[field] = np.array(ex[field], copy=True)
    ex[field][index] = bad
    with pytest.raises(schema.SchemaError, match=rf"record 3: field '{field}' has a non-finite value") as err:
        schema.validate_example(ex, 3)
    assert f"at index {tuple(index)}" in str(err.value)


def test_missing_required_and_flagged_fields():
    ex = fx.make_example(0)
    del ex["bbox_scale"]
    with pytest.raises(schema.SchemaError, match=r"record a: missing required field\(s\) \['bbox_scale'\]"):
        schema.validate_example(ex, "a")
    ex = fx.make_example(0)
    del ex["pose"]
    with pytest.raises(schema.SchemaError, match="record 2: has_pose = 1 but field 'pose' is missing"):
        schema.validate_example(ex, 2)


def test_flag_zero_ignores_bad_field_and_completion_zero_fills():
    ex = fx.make_example(0)
    ex["depth"] = np.full((3, 3), np.nan, np.float32)  # wrong shape and NaN, but flagged off
    ex["has_depth"] = np.float32(0)
    for key in ("joints3d", "heatmap_samples", "heatmap_conf", "focal_length", "image_size"):
        del ex[key]
    valid = schema.validate_example(ex, 0)
    assert "depth" not in valid and valid["has_depth"] == 0 and valid["has_joints3d"] == 0
    full = schema.complete_example(valid, num_joints=24, num_betas=10, num_samples=4)
    h, w = ex["image"].shape[:2]
    assert full["depth"].shape == (h, w) and not full["depth"].any()
    assert full["joints3d"].shape == (24, 3) and not full["joints3d"].any()
    assert full["heatmap_samples"].shape == (17, 4, 2) and full["has_heatmap_samples"] == 0
    np.testing.assert_array_equal(full["image_size"], [w, h])
    np.testing.assert_allclose(full["focal_length"], [np.hypot(w, h)] * 2, rtol=1e-6)
    np.testing.assert_allclose(full["princpt"], [w / 2, h / 2])


def test_visibility_must_be_binary():
    ex = fx.make_example(0)
    ex["keypoints2d"][3, 2] = 0.5
    with pytest.raises(schema.SchemaError, match=r"record 0: field 'keypoints2d' visibility"):
        schema.validate_example(ex, 0)


def test_encoded_image_is_decoded_and_corrupt_jpeg_named():
    ex = fx.make_example(0)
    data = fx.jpeg_bytes(ex["image"])
    ex["image"] = data
    out = schema.validate_example(ex, 0)
    assert out["image"].shape == (96, 128, 3) and out["image"].dtype == np.uint8
    ex["image"] = np.frombuffer(data[: len(data) // 2], np.uint8)  # truncated file as a uint8 byte array
    with pytest.raises(schema.SchemaError, match=r"record 11: field 'image': cannot decode"):
        schema.validate_example(ex, 11)
    ex["image"] = b"\xff\xd8\xff\xe0 not a jpeg"
    with pytest.raises(schema.SchemaError, match=r"record 11: field 'image': cannot decode"):
        schema.validate_example(ex, 11)


def test_heatmap_pose_is_kept_or_defaults_to_the_sample_mean():
    """`heatmap_pose` goes with `heatmap_samples`: the record's own argmax pose is checked and kept; a record
    with samples but no argmax pose gets the per-joint sample mean with `heatmap_conf`; no samples: zeros."""
    ex = fx.make_example(0)
    s = ex["heatmap_samples"].shape[1]
    full = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10, num_samples=s)
    mean = np.asarray(ex["heatmap_samples"], np.float64).mean(axis=1)
    np.testing.assert_allclose(full["heatmap_pose"][:, :2], mean, rtol=1e-5)
    np.testing.assert_array_equal(full["heatmap_pose"][:, 2], ex["heatmap_conf"])
    argmax = np.concatenate([ex["heatmap_samples"][:, 0], np.full((17, 1), 0.5, np.float32)], -1)
    ex["heatmap_pose"] = argmax
    full = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10, num_samples=s)
    np.testing.assert_array_equal(full["heatmap_pose"], argmax)
    ex["heatmap_pose"] = argmax[:, :2]
    with pytest.raises(schema.SchemaError, match=r"record 3: field 'heatmap_pose' must have shape \[17, 3\]"):
        schema.validate_example(ex, 3)
    del ex["heatmap_pose"]
    full = schema.complete_example(schema.validate_example(ex, 0), num_joints=24, num_betas=10, num_samples=0)
    assert full["has_heatmap_samples"] == 0 and not full["heatmap_pose"].any()
