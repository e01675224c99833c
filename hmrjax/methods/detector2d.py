"""A ViTPose-style top-down 2D keypoint detector: 17 COCO heatmaps at 1/4 of the (square) crop.

Owns `HeatmapNet` (backbone + heatmap head), `Detector2D` (the Method: init / loss / predict, and the
public `detect`), the heatmap loss `heatmap_mse_loss` (mmpose `JointsMSELoss`, use_target_weight), the
heatmap decoding `heatmap_argmax` (mmpose `_get_max_preds` + 'default' post-processing) and
`heatmap_to_crop_px`, and the evaluation `evaluate_detector` / `keypoint_metrics` (PCK, 2D error,
confidences of visible vs invisible keypoints).

Network (`config.model.backbone`):
  a ViT name (`hmrjax.nn.backbones.VIT_CONFIGS`, e.g. 'vit_base_patch16_224'):  ViTPose "classic":
    ViT (no class token, patch padding 2, position grid at the crop) -> [B, S/16, S/16, C] ->
    `SimpleHeatmapDecoder` (2 x deconv 4x4/2 + BN + ReLU, 1x1 conv) -> [B, S/4, S/4, 17].
  an HRNet name (`HRNET_CONFIGS`, e.g. 'hrnet_tiny', 'hrnet_w32'): the HRNet 1/4-resolution map ('concat',
    all four branches upsampled; the official pose HRNet reads branch 0 only), `head_convs` x
    [3x3 conv + BN + ReLU], then a 1x1 conv -> [B, S/4, S/4, 17].
Targets: the pipeline's `heatmaps` batch field (`config.data.heatmaps=True`, `data_pipelines.heatmaps`:
  Gaussian with peak 1, sigma `config.data.heatmap_sigma` heatmap px, zero for invisible keypoints), at
  `config.data.heatmap_size` = image_size / 4.
Loss (mmpose JointsMSELoss):
  L = 1/K sum_k 0.5 * mean_{b, y, x} (w_bk (P_bkyx - G_bkyx))^2,
  `config.loss.use_target_weight` True (ViTPose): w_bk = visibility (keypoints2d[..., 2], 0 outside the
  crop) x valid_b: invisible keypoints get no supervision (as COCO's unlabelled ones);
  False (mmpose use_target_weight=False): w_bk = valid_b for every keypoint, so invisible / out-of-crop
  keypoints are trained toward their all-zero target heatmaps (low confidence where a joint is occluded).
Decoding (`detect`): per heatmap the argmax pixel, moved by a quarter pixel toward the higher neighbour
  in x and in y (only when 1 < px < w - 1 and 1 < py < h - 1, as mmpose / the HRNet code), confidence =
  the maximum heatmap value; heatmap px -> crop px with the pipeline's pixel-centre convention
  u = (hx + 0.5) * S / w - 0.5 (`heatmap_to_crop_px`).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hmrjax.methods.base import Method, Prediction
from hmrjax.nn import backbones
from hmrjax.nn.backbones.ops import batch_norm

__all__ = ["HeatmapNet", "Detector2D", "heatmap_mse_loss", "heatmap_argmax", "heatmap_to_crop_px",
           "evaluate_detector", "keypoint_metrics"]

NUM_KEYPOINTS = 17


class HeatmapNet(nn.Module):
    """image [B, S, S, 3] (normalised) -> heatmaps [B, K, S/4, S/4] (see the module docstring)."""

    backbone: str = "vit_base_patch16_224"
    image_size: int = 256
    num_keypoints: int = NUM_KEYPOINTS
    decoder_filters: tuple = (256, 256)   # ViT: the deconvolution widths
    head_convs: int = 0                   # HRNet: 3x3 conv + BN + ReLU layers before the 1x1 conv
    head_width: int = 64
    frozen_bn: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, image, train: bool = False):
        if self.backbone in backbones.VIT_CONFIGS:
            kw = backbones.vitpose_kwargs(self.backbone, (self.image_size, self.image_size))
            feats = backbones.VisionTransformer(**kw, dtype=self.dtype, name="backbone")(image, train)["features"]
            hm = backbones.SimpleHeatmapDecoder(self.num_keypoints, tuple(self.decoder_filters), self.frozen_bn,
                                                self.dtype, name="keypoint_head")(feats, train)
        elif self.backbone in backbones.HRNET_CONFIGS:
            x = backbones.HRNet(**backbones.HRNET_CONFIGS[self.backbone], frozen_bn=self.frozen_bn,
                                dtype=self.dtype, name="backbone")(image, train)["concat"]
            for i in range(self.head_convs):
                x = nn.Conv(self.head_width, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
                            param_dtype=jnp.float32, name=f"head_conv_{i}")(x)
                x = nn.relu(batch_norm(train, self.frozen_bn, name=f"head_bn_{i}", dtype=self.dtype)(x))
            hm = nn.Conv(self.num_keypoints, (1, 1), dtype=self.dtype, param_dtype=jnp.float32,
                         kernel_init=nn.initializers.normal(0.001), name="final_layer")(x)
        else:
            raise ValueError(f"detector2d: config.model.backbone={self.backbone!r} is neither a ViT "
                             f"({sorted(backbones.VIT_CONFIGS)}) nor an HRNet ({sorted(backbones.HRNET_CONFIGS)})")
        return jnp.transpose(hm.astype(jnp.float32), (0, 3, 1, 2))


def heatmap_mse_loss(pred, target, target_weight):
    """mmpose JointsMSELoss with use_target_weight: 1/K sum_k 0.5 mean_{b,y,x} (w_bk (P - G))^2.

    pred, target: [B, K, h, w]; target_weight: [B, K] (visibility x valid). Returns a scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(f"heatmap_mse_loss: pred {pred.shape} and target {target.shape} differ "
                         f"(config.data.heatmap_size must be image_size / 4)")
    w = target_weight.astype(jnp.float32)[:, :, None, None]
    sq = jnp.square(w * (pred.astype(jnp.float32) - target.astype(jnp.float32)))
    return 0.5 * jnp.mean(jnp.mean(sq, axis=(0, 2, 3)))


def heatmap_argmax(heatmaps):
    """Argmax + quarter-pixel shift (mmpose `_get_max_preds` + 'default' post-processing).

    heatmaps: [B, K, h, w]. Returns (coords [B, K, 2] (x, y) heatmap px, maxvals [B, K]).
    coords = argmax + 0.25 sign(H[y, x+1] - H[y, x-1]) (and likewise in y), applied only where
    1 < x < w - 1 and 1 < y < h - 1 (mmpose's condition). Unlike mmpose, a non-positive maximum keeps its
    argmax position (mmpose writes -1); its confidence tells.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    idx = jnp.argmax(flat, axis=-1)
    maxvals = jnp.max(flat, axis=-1)
    px, py = idx % w, idx // w
    hm = heatmaps

    def at(y, x):
        y = jnp.clip(y, 0, h - 1)
        x = jnp.clip(x, 0, w - 1)
        return jnp.take_along_axis(hm.reshape(b, k, h * w), (y * w + x)[..., None], axis=-1)[..., 0]

    dx = at(py, px + 1) - at(py, px - 1)
    dy = at(py + 1, px) - at(py - 1, px)
    inner = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    x = px.astype(jnp.float32) + jnp.where(inner, 0.25 * jnp.sign(dx), 0.0)
    y = py.astype(jnp.float32) + jnp.where(inner, 0.25 * jnp.sign(dy), 0.0)
    return jnp.stack([x, y], axis=-1), maxvals


def heatmap_to_crop_px(coords, heatmap_size, crop_size: int):
    """Heatmap px [..., 2] (x, y) -> crop px: u = (hx + 0.5) * S / w - 0.5 (pixel centres, as the pipeline).

    heatmap_size: (h, w); crop_size: S (square crop side).
    """
    h, w = heatmap_size
    scale = jnp.asarray([crop_size / w, crop_size / h], jnp.float32)
    return (coords + 0.5) * scale - 0.5


class Detector2D(Method):
    """The heatmap detector. Reads `config.model` (backbone, head), `config.data` (image_size, heatmap_size)."""

    supports_flip_test = True   # `heatmaps` / `predict` honour config.model.flip_test

    def __init__(self, config):
        super().__init__(config)
        m = config.model
        self.image_size = int(config.data.image_size)
        self.heatmap_size = int(config.data.heatmap_size)
        if self.image_size % 4 or self.heatmap_size != self.image_size // 4:
            raise ValueError(f"detector2d: config.data.heatmap_size={self.heatmap_size} must be image_size / 4 "
                             f"(image_size={self.image_size})")
        self.model = HeatmapNet(backbone=str(m.backbone), image_size=self.image_size,
                                decoder_filters=tuple(int(f) for f in m.get("decoder_filters", (256, 256))),
                                head_convs=int(m.get("head_convs", 0)), head_width=int(m.get("head_width", 64)),
                                frozen_bn=bool(m.get("frozen_bn", False)),
                                dtype=jnp.dtype(config.get("compute_dtype", "float32")))

    def init(self, rng, batch):
        return self.model.init(rng, batch["img"], train=False)

    def loss(self, params, state, batch, rng):
        """mmpose JointsMSELoss on the pipeline's Gaussian `heatmaps` (weights: `config.loss.use_target_weight`)."""
        del rng
        if "heatmaps" not in batch:
            raise ValueError("detector2d: the batch has no 'heatmaps' (set config.data.heatmaps=True)")
        pred, updates = self.model.apply({"params": params, **state}, batch["img"], train=True,
                                         mutable=["batch_stats"])
        valid = batch.get("valid", jnp.ones(pred.shape[0], jnp.float32))
        vis = batch["keypoints2d"][..., 2] * valid[:, None] * batch["has_keypoints2d"][:, None]
        weight = vis if bool(self.config.loss.get("use_target_weight", True)) else \
            jnp.broadcast_to((valid * batch["has_keypoints2d"])[:, None], vis.shape)
        loss = float(self.config.loss.get("heatmap_weight", 1.0)) * heatmap_mse_loss(pred, batch["heatmaps"], weight)
        coords, conf = heatmap_argmax(pred)
        gt = (batch["keypoints2d"][..., :2] + 1.0) * 0.5 * self.heatmap_size - 0.5
        err = jnp.linalg.norm(coords - gt, axis=-1)
        denom = jnp.maximum(jnp.sum(vis), 1.0)
        metrics = {"loss": loss, "heatmap_mse": loss,
                   "kp_err_hm_px": jnp.sum(err * vis) / denom,
                   "pck_0.1": jnp.sum((err <= 0.1 * self.heatmap_size) * vis) / denom,
                   "conf_visible": jnp.sum(conf * vis) / denom}
        return loss, (metrics, dict(updates))

    def heatmaps(self, variables, images, flip_test=None):
        """images [B, S, S, 3] -> heatmaps [B, 17, S/4, S/4]. flip_test (default `config.model.flip_test`):
        average with the heatmaps of the mirrored crop, mirrored back and left/right channels swapped
        (ViTPose / mmpose test-time flip). Crop pixel u <-> S - 1 - u maps heatmap px x <-> w - 1 - x exactly
        in the pipeline's pixel-centre convention, so no one-pixel shift (mmpose `shift_heatmap`) is needed."""
        hm = self.model.apply(variables, images, train=False)
        if self.config.model.get("flip_test", False) if flip_test is None else flip_test:
            from hmrjax.body import layouts
            perm = jnp.asarray(layouts.flip_permutation("coco17"))
            hm_f = self.model.apply(variables, images[:, :, ::-1], train=False)
            hm = 0.5 * (hm + hm_f[:, perm, :, ::-1])
        return hm

    def detect(self, variables, images, flip_test=None):
        """images [B, S, S, 3] (normalised crops) -> (keypoints_px [B, 17, 2] crop px, confidences [B, 17],
        heatmaps [B, 17, S/4, S/4]); flip_test: see `heatmaps`."""
        hm = self.heatmaps(variables, images, flip_test)
        coords, conf = heatmap_argmax(hm)
        return heatmap_to_crop_px(coords, hm.shape[2:], images.shape[1]), conf, hm

    def predict(self, variables, batch, rng, num_samples=1):
        """A Prediction with `heatmaps` [B, 17, S/4, S/4]; no mesh: vertices / joints are zeros [B, S', 1, 3]."""
        del rng
        hm = self.heatmaps(variables, batch["img"])
        zeros = jnp.zeros((hm.shape[0], num_samples, 1, 3), jnp.float32)
        return Prediction(vertices=zeros, joints=zeros, heatmaps=hm)


# ------------------------------------------------------------------------------------------ evaluation
def keypoint_metrics(pred_px, conf, keypoints2d, keypoints2d_full, valid, crop_size: int, bbox_scale,
                     threshold: float = 0.1) -> dict:
    """Per-keypoint sums for the detector metrics (numpy, float64), to be summed over batches.

    pred_px: [B, 17, 2] crop px; conf: [B, 17]; keypoints2d: [B, 17, 3] crop-normalised + visibility
    (0 outside the crop); keypoints2d_full: [B, 17, 3] (column 2: the record's visibility); valid: [B];
    bbox_scale: [B] full-frame px of the crop side. A keypoint is 'visible' when keypoints2d[..., 2] = 1,
    'in crop' when |x|, |y| <= 1, 'invisible' when in crop and not visible. PCK: error <= threshold x crop
    side (the bbox size). Returns {name: (sum, count)}.
    """
    import numpy as np
    pred_px, conf = np.asarray(pred_px, np.float64), np.asarray(conf, np.float64)
    kp = np.asarray(keypoints2d, np.float64)
    v = np.asarray(valid, np.float64)[:, None] > 0
    gt = (kp[..., :2] + 1.0) * 0.5 * crop_size - 0.5
    err = np.linalg.norm(pred_px - gt, axis=-1)
    err_full = err * np.asarray(bbox_scale, np.float64)[:, None] / crop_size
    in_crop = np.all(np.abs(kp[..., :2]) <= 1.0, axis=-1) & v
    visible = (kp[..., 2] > 0) & v
    invisible = in_crop & ~visible & (np.asarray(keypoints2d_full)[..., 2] == 0)
    correct = err <= threshold * crop_size
    s = lambda x, m: (float(np.sum(x[m])), int(np.sum(m)))
    return {"pck_visible": s(correct, visible), "pck_all": s(correct, in_crop),
            "err_px_visible": s(err_full, visible), "err_px_all": s(err_full, in_crop),
            "err_crop_px_visible": s(err, visible),
            "conf_visible": s(conf, visible), "conf_invisible": s(conf, invisible)}


def evaluate_detector(workdir, split: str = "test", max_examples=None, *, step=None, batches=None,
                      threshold: float = 0.1, flip_test=None) -> dict:
    """Evaluates a detector2d training run's newest (or `step`) checkpoint on `split`.

    Writes `<workdir>/eval_<split>.json` (atomically; `eval_<split>_flip.json` / `_noflip.json` when `flip_test`
    overrides the run's setting) and returns the same dict:
      pck_visible        PCK@threshold (of the bbox size = crop side) over visible keypoints
      pck_all            the same over every keypoint inside the crop (visible or not)
      err_px_visible, err_px_all   mean 2D error in full-frame px (err_crop_px_visible: crop px)
      conf_visible, conf_invisible mean heatmap maximum of visible / invisible (in-crop) keypoints
      counts             keypoints behind each mean; count: examples; step, split, threshold.
    batches: eval batches instead of `data_pipelines.build_eval_dataset(config, split)`.
    flip_test: test-time flip (default: the run's `config.model.flip_test`, False when absent).
    """
    import pathlib

    import numpy as np

    from hmrjax import fileio, methods
    from hmrjax.evaluate import flip_suffix, load_config, restore_variables
    config = load_config(workdir)
    if config.method != "detector2d":
        raise ValueError(f"evaluate_detector: {workdir} is a {config.method!r} run, not detector2d")
    method = methods.create(config)
    variables, step = restore_variables(workdir, step=step, config=config)
    if batches is None:
        import data_pipelines
        batches = data_pipelines.build_eval_dataset(config, split)
    suffix = flip_suffix(flip_test, config.model.get("flip_test", False))
    flip_test = bool(config.model.get("flip_test", False)) if flip_test is None else bool(flip_test)
    detect = jax.jit(lambda v, x: method.detect(v, x, flip_test))
    sums, seen = {}, 0
    for batch in batches:
        batch = {k: np.asarray(v) for k, v in dict(batch).items()}
        valid = batch["valid"].astype(np.float64)
        if max_examples is not None:
            if seen >= max_examples:
                break
            valid = np.where(np.cumsum(valid > 0) + seen <= max_examples, valid, 0.0)
        seen += int(np.sum(valid > 0))
        px, conf, _ = jax.device_get(detect(variables, batch["img"]))
        per = keypoint_metrics(px, conf, batch["keypoints2d"], batch["keypoints2d_full"],
                               valid * batch["has_keypoints2d"], int(batch["img"].shape[1]), batch["bbox_scale"],
                               threshold)
        for k, (total, n) in per.items():
            t0, n0 = sums.get(k, (0.0, 0))
            sums[k] = (t0 + total, n0 + n)
    result = {k: (t / n if n else float("nan")) for k, (t, n) in sums.items()}
    result.update(counts={k: n for k, (_, n) in sums.items()}, count=seen, step=int(step), split=split,
                  threshold=float(threshold), flip_test=flip_test, method="detector2d")
    fileio.write_json(pathlib.Path(workdir) / f"eval_{split}{suffix}.json", result)
    return result
