"""Probabilistic HMR (Wehrbein, Rudolph, Rosenhahn, Wandt: "Utilizing Uncertainty in 2D Pose Detectors for
Probabilistic 3D Human Mesh Recovery"; code github.com/twehrbein/humr): a conditional normalizing flow over 6D
joint rotations, supervised by 2D-detector heatmap samples (MMD) and person masks.

Owns `ProbHMRNet` (the network), `ProbHMR` (the Method: init / loss / predict) and the small helpers the method
needs (`detector_keypoints`, `crop_normalise`, `flow_joint_count`). The flow is `hmrjax.nn.flows.ConditionalRealNVP`,
the loss terms are `hmrjax.losses` ("Probabilistic HMR" section), the backbone `hmrjax.nn.backbones.HRNet`.

Network (paper; details the paper leaves open from the authors' code, `train/models/humr_model.py`):
  image [B, S, S, 3] -> HRNet -> 1/4-resolution concat (720 ch for W48) -> global average pool -> f [B, 720]
    (frozen in `paper`: `freeze_backbone` stops its gradient and uses BatchNorm running statistics)
  detector keypoints k [B, 17, 3] (crop-normalised u, v in [-1, 1] + confidence) -> Linear(51, 512) -> ReLU
    -> Linear(512, 256) = e [B, 256]                                 (`use_kp2d=False`: no e, Table 3 ablation)
  CLIFF bbox features b [B, 3] = [cx - W/2, cy - H/2, side] / f       (`use_bbox=False`: no b)
  condition c = [f, e, b] (979-d for W48)
  flow: ConditionalRealNVP over x = 6D rotations of the flow joints (root + body: 24 x 6 = 144 for the
    SMPL-layout default body, 22 x 6 = 132 for SMPL-X / SMPL-H bodies; other joints stay identity);
    8 two-sided affine coupling blocks, conditioner MLPs of 3 linear layers with 1024 hidden units, soft clamp 2.0
    (`volume_preserving=True`: NICE). The flow models the residual x - x0, where x0 is the 6D of the initial pose
    (identity rotations, root diag(1, -1, -1): an upright person facing the OpenCV camera), so the zero-initialised
    flow starts at a valid pose: x = x0 + f(z; c); the mode is z = 0. The shift is volume preserving, so
    log p(x | c) is the flow's log-density of x - x0.
  shape / camera head (authors' `HMRShapeCamHead`): 3 iterations of [f, e, b, betas, cam] -> Linear(1024) ->
    Dropout -> Linear(1024) -> Dropout -> residual betas (K) and weak-perspective camera (s, tx, ty); no activation
    between the linear layers (as in the code). Initial betas 0, cam (0.9, 0, 0). The crop camera is converted to
    the full-frame translation with CLIFF (`geometry.camera.cliff_crop_cam_to_full_translation`).

Detector keypoints in a batch (`detector_keypoints`): `config.model.kp_field` names a batch field [B, 17, 3]
(crop-normalised argmax pose + confidence; the grain pipeline emits `heatmap_pose` from the detector store
whenever heatmap samples are configured); for batches without it (fallback) the per-joint mean of
`heatmap_samples` [B, 17, S', 2] with `heatmap_conf` [B, 17] as confidence. Examples without heatmap data
(`has_heatmap_samples` = 0) get all-zero keypoints (no detection). `kp_source='gt'` uses the ground-truth
`keypoints2d` (crop-normalised, visibility as confidence) instead; only for debugging / data without a detector.

Losses (paper weights in `config.loss`; each term is a `hmrjax.losses` function):
  L = l_nll NLL(x_gt) + l_beta L_beta + l_2d L_2D(mode) + l_orth (L_orth(mode) + L_orth(samples))
      + l_mmd L_MMD(samples) + l_mask L_mask(samples)  [+ cam_penalty exp(-10 s)^2, code only, default off]
  - NLL of the ground-truth 6D pose (+ N(0, gt_noise^2) noise as in the code, SMPL_PARAM_NOISE_RATIO 0.005),
    per dimension (`losses.flow_nll`).
  - L_beta: sum over the K betas of the squared error, mean over the batch (the code's normalisation).
  - L_2D: `losses.keypoints2d_l1` of the mode's COCO-17 projections in crop-normalised coordinates against the
    ground truth; `kp2d_weighting='inside_crop'` (code: every annotated joint of the synthetic GT, weight 1) or
    'visible' (the visibility flags).
  - L_orth: `losses.orthonormality_loss` of the raw 6D outputs of the mode and of the random samples.
  - L_MMD: per joint between the n = num_train_samples - 1 random hypotheses' COCO-17 projections and n targets
    (`losses.mmd_target_masks` / `mmd_targets` / `mmd_loss`): heatmap samples for uncertain articulated joints,
    else the ground truth repeated; paper's unbiased estimator (`mmd_include_diagonal=True`: the code's biased
    one).
  - L_mask: `losses.mask_loss` on the random hypotheses of invisible joints (detector max confidence < 0.5 or gt
    outside the crop) that fall off the person mask (`batch['mask']` at the dense size) inside the crop; targets
    are the heatmap samples on the mask plus the ground-truth keypoints.
Coordinates: 2D terms use crop-normalised [-1, 1] coordinates (the pipeline's `(u_crop + 0.5) 2 / S - 1`); the
hypotheses are projected with the batch's full-frame intrinsics and mapped to the crop with `crop_transform`.
Frames: the flow's root rotation is camera-frame (as the schema's pose); `predict` adds the CLIFF translation.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hmrjax import losses
from hmrjax.geometry import camera as cam_lib
from hmrjax.geometry import rotations
from hmrjax.methods.base import Method, Prediction
from hmrjax.nn import backbones
from hmrjax.nn.flows import ConditionalRealNVP, standard_normal_log_prob

__all__ = ["ProbHMRNet", "ProbHMR", "ARTICULATED_COCO17", "flow_joint_count", "initial_pose6d",
           "detector_keypoints", "crop_normalise"]

# COCO-17 elbows, wrists, knees, ankles: the joints whose heatmap samples may be MMD targets (authors'
# `valid_sample_joints`).
ARTICULATED_COCO17 = (7, 8, 9, 10, 13, 14, 15, 16)

_small_init = nn.initializers.variance_scaling(1e-4, "fan_avg", "uniform")  # xavier_uniform(gain=0.01), as the code


def flow_joint_count(num_body_joints: int, requested: int = 0) -> int:
    """Joints whose rotations the flow models: root + body. 24 for the SMPL layout (all joints), 22 for SMPL-X /
    SMPL-H bodies (55 / 52 joints: jaw, eyes and fingers stay identity) or a 22-joint body; `requested` > 0
    overrides (must be <= num_body_joints)."""
    if requested:
        if not 1 <= requested <= num_body_joints:
            raise ValueError(f"prob_hmr: config.model.flow_joints={requested} must be in 1..{num_body_joints}")
        return int(requested)
    if num_body_joints == 24:
        return 24
    if num_body_joints in (22, 52, 55):
        return 22
    raise ValueError(f"prob_hmr: no default flow joint set for a body with {num_body_joints} joints "
                     f"(24 SMPL layout, 22 / 52 / 55 SMPL-X / SMPL-H); set config.model.flow_joints")


def initial_pose6d(num_joints: int) -> np.ndarray:
    """[J * 6] 6D of the initial pose: identity rotations, root diag(1, -1, -1) (upright, facing an OpenCV camera)."""
    rot = np.tile(np.eye(3, dtype=np.float64), (num_joints, 1, 1))
    rot[0] = np.diag([1.0, -1.0, -1.0])
    # 'columns' 6D layout (rotations.matrix_to_rot6d): [R[:, 0], R[:, 1]]; numpy so that it stays a constant
    return np.swapaxes(rot[:, :, :2], -1, -2).reshape(-1).astype(np.float32)


def crop_normalise(points_px, crop_transform, crop_size: int):
    """Full-frame pixels [B, ..., 2] -> crop-normalised [-1, 1] via crop_transform [B, 2, 3] (full px -> crop px):
    u_n = (u_crop + 0.5) 2 / S - 1, as the pipeline's labels."""
    m = jnp.asarray(crop_transform, jnp.float32)
    p = jnp.asarray(points_px, jnp.float32)
    lead = (p.shape[0],) + (1,) * (p.ndim - 2)
    crop = jnp.einsum("bij,b...j->b...i", m[:, :, :2], p) + m[:, :, 2].reshape(lead + (2,))
    return (crop + 0.5) * (2.0 / crop_size) - 1.0


def detector_keypoints(batch, source: str = "detector", field: str = ""):
    """The 2D-pose condition [B, 17, 3] (crop-normalised u, v + confidence); see the module docstring.

    source 'detector': batch[field] when `field` names a present batch field, else the mean over samples of
    `heatmap_samples` [B, 17, S', 2] with confidence `heatmap_conf` [B, 17]; zeros where has_heatmap_samples = 0.
    source 'gt': batch['keypoints2d'] (visibility as confidence).
    """
    if source == "gt":
        return jnp.asarray(batch["keypoints2d"], jnp.float32)
    if source != "detector":
        raise ValueError(f"prob_hmr: config.model.kp_source must be 'detector' or 'gt', got {source!r}")
    if field and field in batch:
        kp = jnp.asarray(batch[field], jnp.float32)
        if kp.ndim != 3 or kp.shape[1:] != (17, 3):
            raise ValueError(f"prob_hmr: batch field {field!r} (config.model.kp_field) must be [B, 17, 3], "
                             f"got {kp.shape}")
    else:
        if "heatmap_samples" not in batch or "heatmap_conf" not in batch:
            raise ValueError("prob_hmr: the batch has no 'heatmap_samples' / 'heatmap_conf' (set "
                             "config.data.num_heatmap_samples > 0 and provide detector heatmap data), and "
                             f"config.model.kp_field={field!r} is not a batch field; use kp_source='gt' only "
                             "for data without a detector")
        hm = jnp.asarray(batch["heatmap_samples"], jnp.float32)
        kp = jnp.concatenate([hm.mean(axis=2), jnp.asarray(batch["heatmap_conf"], jnp.float32)[..., None]], -1)
    has = batch.get("has_heatmap_samples")
    if has is not None:
        kp = kp * (jnp.asarray(has, jnp.float32) > 0)[:, None, None]
    return kp


class ProbHMRNet(nn.Module):
    """image [B, S, S, 3], cliff_bbox [B, 3], keypoints [B, 17, 3], z [B, N, D] -> hypotheses (see `__call__`)."""

    backbone: str = "hrnet_w48"
    num_flow_joints: int = 24
    num_betas: int = 10
    freeze_backbone: bool = True
    use_bbox: bool = True
    use_kp2d: bool = True
    kp_hidden: int = 512
    kp_embed_dim: int = 256
    head_hidden: int = 1024
    head_iters: int = 3
    head_dropout: float = 0.5
    init_cam: Sequence[float] = (0.9, 0.0, 0.0)
    flow_blocks: int = 8
    flow_hidden: int = 1024
    flow_layers: int = 3
    flow_clamp: float = 2.0
    flow_clamp_form: str = "atan"
    volume_preserving: bool = False
    flow_two_sided: bool = True
    flow_permutation: str = "fixed_random"
    dtype: Any = jnp.float32

    @property
    def flow_dim(self) -> int:
        return 6 * self.num_flow_joints

    def setup(self):
        if self.backbone not in backbones.HRNET_CONFIGS:
            raise ValueError(f"prob_hmr: config.model.backbone={self.backbone!r} must be an HRNet "
                             f"({sorted(backbones.HRNET_CONFIGS)})")
        self.encoder = backbones.HRNet(**backbones.HRNET_CONFIGS[self.backbone], frozen_bn=self.freeze_backbone,
                                       dtype=self.dtype, name="backbone")
        if self.use_kp2d:
            self.kp_dense0 = nn.Dense(self.kp_hidden, name="kp_embed_0")
            self.kp_dense1 = nn.Dense(self.kp_embed_dim, name="kp_embed_1")
        self.head_fc1 = nn.Dense(self.head_hidden, name="head_fc1")
        self.head_fc2 = nn.Dense(self.head_hidden, name="head_fc2")
        self.head_drop = nn.Dropout(self.head_dropout)
        self.dec_shape = nn.Dense(self.num_betas, kernel_init=_small_init, name="dec_shape")
        self.dec_cam = nn.Dense(3, kernel_init=_small_init, name="dec_cam")
        self.flow = ConditionalRealNVP(dim=self.flow_dim, num_blocks=self.flow_blocks, hidden=self.flow_hidden,
                                       num_layers=self.flow_layers, clamp=self.flow_clamp,
                                       clamp_form=self.flow_clamp_form, volume_preserving=self.volume_preserving,
                                       two_sided=self.flow_two_sided, permutation=self.flow_permutation,
                                       name="flow")
        self.x0 = jnp.asarray(initial_pose6d(self.num_flow_joints))

    def encode(self, image, cliff_bbox, keypoints, train: bool = False):
        """The conditioning network: {'cond' [B, C], 'betas' [B, K], 'cam' [B, 3] (s, tx, ty), 'features' [B, F]}."""
        enc = self.encoder(image, train and not self.freeze_backbone)
        feats = jnp.mean(enc["concat"].astype(jnp.float32), axis=(1, 2))
        if self.freeze_backbone:
            feats = jax.lax.stop_gradient(feats)
        parts = [feats]
        b = image.shape[0]
        if self.use_kp2d:
            kp = jnp.asarray(keypoints, jnp.float32).reshape(b, -1)
            parts.append(self.kp_dense1(nn.relu(self.kp_dense0(kp))))
        if self.use_bbox:
            parts.append(jnp.asarray(cliff_bbox, jnp.float32))
        cond = jnp.concatenate(parts, axis=-1)
        betas = jnp.zeros((b, self.num_betas), jnp.float32)
        cam = jnp.broadcast_to(jnp.asarray(self.init_cam, jnp.float32), (b, 3))
        for _ in range(self.head_iters):
            h = self.head_fc1(jnp.concatenate([cond, betas, cam], axis=-1))
            h = self.head_drop(h, deterministic=not train)
            h = self.head_drop(self.head_fc2(h), deterministic=not train)
            betas = betas + self.dec_shape(h)
            cam = cam + self.dec_cam(h)
        return {"cond": cond, "betas": betas, "cam": cam, "features": feats}

    def generate(self, cond, z):
        """The flow's generative direction from a condition: cond [B, C], z [B, N, D] -> (pose6d [B, N, D] = x0 +
        f(z; c), log p(x | c) [B, N] nats)."""
        x, log_det = self.flow.forward(z, cond[:, None, :])
        return x + self.x0, standard_normal_log_prob(z) - log_det

    def __call__(self, image, cliff_bbox, keypoints, z, x_gt=None, train: bool = False):
        """Hypotheses x = x0 + f(z; c) for z [B, N, D] (put z[:, 0] = 0 for the mode).

        Returns encode's dict plus 'pose6d' [B, N, D] (raw 6D, flow joints, hmrjax 'columns' layout),
        'log_prob' [B, N] (log p(x | c), nats) and, with x_gt [B, D], 'gt_log_prob' [B] = log p(x_gt | c).
        """
        out = self.encode(image, cliff_bbox, keypoints, train)
        cond = out["cond"]
        out["pose6d"], out["log_prob"] = self.generate(cond, z)
        if x_gt is not None:
            out["gt_log_prob"] = self.flow.log_prob(jnp.asarray(x_gt, jnp.float32) - self.x0, cond)
        return out


class ProbHMR(Method):
    """The probabilistic HMR method. Reads `config.model`, `config.loss`, `config.data` (configs/prob_hmr.py)."""

    def __init__(self, config, body=None):
        super().__init__(config)
        from hmrjax import body as body_lib
        m = config.model
        self.body = body if body is not None else body_lib.load(m.body, num_betas=int(m.num_betas))
        self.num_flow_joints = flow_joint_count(self.body.num_joints, int(m.get("flow_joints", 0)))
        self.flow_dim = 6 * self.num_flow_joints
        self.kp_source = str(m.kp_source)
        self.kp_field = str(m.kp_field)
        self.model = ProbHMRNet(
            backbone=m.backbone, num_flow_joints=self.num_flow_joints, num_betas=int(m.num_betas),
            freeze_backbone=bool(m.freeze_backbone), use_bbox=bool(m.use_bbox), use_kp2d=bool(m.use_kp2d),
            kp_hidden=int(m.kp_hidden), kp_embed_dim=int(m.kp_embed_dim), head_hidden=int(m.head_hidden),
            head_iters=int(m.head_iters), head_dropout=float(m.head_dropout), init_cam=tuple(m.init_cam),
            flow_blocks=int(m.flow.num_blocks), flow_hidden=int(m.flow.hidden), flow_layers=int(m.flow.num_layers),
            flow_clamp=float(m.flow.clamp), flow_clamp_form=str(m.flow.clamp_form),
            volume_preserving=bool(m.flow.volume_preserving), flow_two_sided=bool(m.flow.two_sided),
            flow_permutation=str(m.flow.permutation), dtype=jnp.dtype(config.get("compute_dtype", "float32")))

    @property
    def cond_dim(self) -> int:
        """Size of the flow condition: pooled backbone features + keypoint embedding + bbox features."""
        m = self.config.model
        feats = sum(backbones.HRNET_CONFIGS[m.backbone]["stage4"]["num_channels"])  # concat of the 4 branches
        return int(feats + (int(m.kp_embed_dim) if m.use_kp2d else 0) + (3 if m.use_bbox else 0))

    # ------------------------------------------------------------------------------------------ helpers
    def keypoint_condition(self, batch):
        """[B, 17, 3] detector keypoints (see `detector_keypoints`)."""
        return detector_keypoints(batch, self.kp_source, self.kp_field)

    def gt_pose6d(self, batch):
        """[B, D] 6D of the ground-truth rotations of the flow joints (batch['pose'] axis-angle [B, J, 3])."""
        rot = rotations.axis_angle_to_matrix(jnp.asarray(batch["pose"], jnp.float32)[:, :self.num_flow_joints])
        return rotations.matrix_to_rot6d(rot).reshape(rot.shape[0], -1)

    def init(self, rng, batch):
        b = batch["img"].shape[0]
        z = jnp.zeros((b, 1, self.flow_dim), jnp.float32)
        x = jnp.zeros((b, self.flow_dim), jnp.float32)
        return self.model.init(rng, batch["img"], batch["cliff_bbox"], self.keypoint_condition(batch), z, x,
                               train=False)

    def _full_pose(self, rotmat):
        """[..., Jf, 3, 3] flow joints -> [..., J_body, 3, 3] (identity for the joints the flow does not model)."""
        extra = self.body.num_joints - rotmat.shape[-3]
        if extra == 0:
            return rotmat
        eye = jnp.broadcast_to(jnp.eye(3, dtype=rotmat.dtype), rotmat.shape[:-3] + (extra, 3, 3))
        return jnp.concatenate([rotmat, eye], axis=-3)

    def hypotheses(self, out, batch):
        """Body model on every hypothesis. Returns dict with 'rotmat' [B, N, J, 3, 3], 'vertices' [B, N, V, 3] and
        'joints' [B, N, J, 3] (camera frame, CLIFF translation added), 'transl' [B, 3], 'kp2d_px' [B, N, 17, 2]
        (COCO-17, full-frame px) and 'kp2d' [B, N, 17, 2] (crop-normalised)."""
        pose6d = out["pose6d"]
        b, n = pose6d.shape[:2]
        rotmat = self._full_pose(rotations.rot6d_to_matrix(pose6d.reshape(b, n, self.num_flow_joints, 6)))
        betas = jnp.broadcast_to(out["betas"][:, None], (b, n, out["betas"].shape[-1]))
        body_out = self.body(pose=rotmat.reshape((b * n,) + rotmat.shape[2:]), betas=betas.reshape(b * n, -1))
        focal = jnp.asarray(batch["focal_length"], jnp.float32)
        transl = cam_lib.cliff_crop_cam_to_full_translation(out["cam"], batch["bbox_center"], batch["bbox_scale"],
                                                            batch["image_size"], focal[:, 0])
        shift = transl[:, None, None, :]
        kp3d = body_out.joints_extra["coco17"].reshape(b, n, -1, 3) + shift
        kp_px = cam_lib.perspective_projection(kp3d, focal[:, None, :], jnp.asarray(batch["princpt"])[:, None, :])
        size = batch["img"].shape[1]
        return {"rotmat": rotmat, "transl": transl, "kp2d_px": kp_px,
                "kp2d": crop_normalise(kp_px, batch["crop_transform"], size),
                "vertices": body_out.vertices.reshape(b, n, -1, 3) + shift,
                "joints": body_out.joints.reshape(b, n, -1, 3) + shift}

    # --------------------------------------------------------------------------------------------- loss
    def loss_terms(self, out, hyp, batch):
        """Unweighted loss terms {name: scalar} from the network output and `hypotheses` (index 0 = mode)."""
        lc = self.config.loss
        b, n = out["pose6d"].shape[:2]
        valid = jnp.asarray(batch.get("valid", jnp.ones(b)), jnp.float32)
        has = lambda k: jnp.asarray(batch.get(f"has_{k}", jnp.zeros(b)), jnp.float32) * valid  # noqa: E731
        terms = {}
        terms["nll"] = losses.flow_nll(out["gt_log_prob"], self.flow_dim, has("pose"))
        k = out["betas"].shape[-1]
        # sum over betas, mean over the batch (code: loss_betas[:, 0].sum() / batch_size) = K * mean
        terms["betas"] = k * losses.betas_mse(out["betas"], jnp.asarray(batch["betas"])[:, :k], has("betas"))
        kp = jnp.asarray(batch["keypoints2d"], jnp.float32)
        gt2d = kp[..., :2]
        gt_inside = jnp.all(jnp.abs(gt2d) <= 1.0, axis=-1)                      # [B, 17]
        if lc.kp2d_weighting == "inside_crop":
            conf2d = gt_inside.astype(jnp.float32)
        elif lc.kp2d_weighting == "visible":
            conf2d = kp[..., 2]
        else:
            raise ValueError(f"prob_hmr: config.loss.kp2d_weighting must be 'inside_crop' or 'visible', "
                             f"got {lc.kp2d_weighting!r}")
        terms["kp2d"] = losses.keypoints2d_l1(hyp["kp2d"][:, 0], gt2d, conf2d, has("keypoints2d"))
        six = out["pose6d"].reshape(b, n, self.num_flow_joints, 6)
        terms["orth_mode"] = losses.orthonormality_loss(six[:, 0], valid)
        if n > 1:
            terms["orth_samples"] = losses.orthonormality_loss(six[:, 1:].reshape(b, -1, 6), valid)
        if float(lc.cam_penalty) > 0:
            terms["cam_penalty"] = losses.camera_scale_penalty(out["cam"])

        samples = jnp.swapaxes(hyp["kp2d"][:, 1:], 1, 2)                         # [B, 17, n-1, 2]
        has_hm = has("heatmap_samples") if "heatmap_samples" in batch else jnp.zeros(b)
        if "heatmap_conf" in batch:
            conf = jnp.asarray(batch["heatmap_conf"], jnp.float32)
            hm = jnp.asarray(batch["heatmap_samples"], jnp.float32)
        else:
            conf = jnp.zeros((b, 17), jnp.float32)
            hm = jnp.broadcast_to(gt2d[:, :, None], (b, 17, max(n - 1, 2), 2))
        hm = jnp.where(jnp.isfinite(hm), hm, gt2d[:, :, None])
        if bool(lc.use_mmd) and n > 2:
            art = np.zeros(17, bool)
            art[list(ARTICULATED_COCO17)] = True
            use, ok = losses.mmd_target_masks(conf, art, gt_inside, float(lc.hm_min_conf), float(lc.hm_max_conf),
                                              float(lc.visible_conf))
            use = use & (has_hm > 0)[:, None]
            # without heatmap data a joint is "visible" (its GT counts) iff annotated visible
            ok = jnp.where((has_hm > 0)[:, None], ok, gt_inside)
            m = int(lc.num_mmd_targets) or (n - 1)
            targets = losses.mmd_targets(hm[:, :, :m], gt2d, use)
            w = ok.astype(jnp.float32) * has("keypoints2d")[:, None]
            terms["mmd"] = losses.mmd_loss(samples, targets, w, tuple(lc.mmd_bandwidths),
                                           bool(lc.mmd_include_diagonal))
        if bool(lc.use_mask) and n > 1 and "mask" in batch:
            mask = jnp.asarray(batch["mask"]) > 0
            size = batch["img"].shape[1]
            dense = mask.shape[-1]
            to_dense = lambda p: ((p + 1.0) * 0.5 * size - 0.5) * (dense / size) + (0.5 * dense / size - 0.5)  # noqa
            crop_px = (samples + 1.0) * 0.5 * size - 0.5
            outside = ~losses.points_inside_mask(mask, to_dense(samples))
            inside_crop = losses.points_inside_crop(crop_px, size)
            invisible = (conf < float(lc.visible_conf)) | ~gt_inside
            invisible = jnp.where((has_hm > 0)[:, None], invisible, kp[..., 2] <= 0)
            m = int(lc.num_mmd_targets) or (n - 1)
            hm_t = hm[:, :, :m].reshape(b, -1, 2)
            hm_ok = losses.points_inside_mask(mask, to_dense(hm_t)) & (has_hm > 0)[:, None]
            targets = jnp.concatenate([hm_t, gt2d], axis=1)
            t_ok = jnp.concatenate([hm_ok, jnp.ones((b, 17), bool)], axis=1)
            terms["mask"] = losses.mask_loss(samples, outside, invisible, targets, t_ok, inside_crop,
                                             has("mask"))
        return terms

    def weights(self) -> dict:
        """Loss weight of every term name (paper names in config.loss)."""
        lc = self.config.loss
        return {"nll": lc.lambda_nll, "betas": lc.lambda_beta, "kp2d": lc.lambda_2d, "orth_mode": lc.lambda_orth,
                "orth_samples": lc.lambda_orth, "mmd": lc.lambda_mmd, "mask": lc.lambda_mask,
                "cam_penalty": lc.cam_penalty}

    def loss(self, params, state, batch, rng):
        """Weighted sum of the paper's terms (see the module docstring); metrics hold every unweighted term."""
        lc = self.config.loss
        rng_z, rng_noise, rng_drop = jax.random.split(rng, 3)
        b = batch["img"].shape[0]
        n = int(lc.num_train_samples)
        z = jax.random.normal(rng_z, (b, n, self.flow_dim), jnp.float32).at[:, 0].set(0.0)
        x_gt = self.gt_pose6d(batch)
        x_gt = x_gt + float(lc.gt_noise) * jax.random.normal(rng_noise, x_gt.shape, x_gt.dtype)
        out, updates = self.model.apply({"params": params, **state}, batch["img"], batch["cliff_bbox"],
                                        self.keypoint_condition(batch), z, x_gt, train=True,
                                        rngs={"dropout": rng_drop}, mutable=["batch_stats"])
        hyp = self.hypotheses(out, batch)
        terms = self.loss_terms(out, hyp, batch)
        w = self.weights()
        total = sum(float(w[k]) * v for k, v in terms.items())
        metrics = dict(terms)
        metrics["loss"] = total
        valid = jnp.asarray(batch.get("valid", jnp.ones(b)), jnp.float32)
        has3d = jnp.asarray(batch.get("has_joints3d", jnp.ones(b)), jnp.float32) * valid
        pj = hyp["joints"][:, 0]
        gj = jnp.asarray(batch["joints3d"], jnp.float32)
        err = jnp.linalg.norm((pj - pj[:, :1]) - (gj - gj[:, :1]), axis=-1).mean(-1)
        metrics["mpjpe_mode_mm"] = 1000.0 * losses.masked_mean(err, has3d)
        metrics["gt_log_prob"] = losses.masked_mean(out["gt_log_prob"], valid)
        return total, (metrics, dict(updates))

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, variables, batch, rng, num_samples=1):
        """Mode (index 0, z = 0) plus num_samples - 1 hypotheses z ~ N(0, I): camera-frame meshes and joints
        (CLIFF translation added), pose matrices [B, S, J, 3, 3], betas, crop cam (s, tx, ty), log_prob [B, S]."""
        b = batch["img"].shape[0]
        z = jax.random.normal(rng, (b, num_samples, self.flow_dim), jnp.float32).at[:, 0].set(0.0)
        out = self.model.apply(variables, batch["img"], batch["cliff_bbox"], self.keypoint_condition(batch), z,
                               train=False)
        hyp = self.hypotheses(out, batch)
        rep = lambda x: jnp.broadcast_to(x[:, None], (b, num_samples) + x.shape[1:])  # noqa: E731
        return Prediction(vertices=hyp["vertices"], joints=hyp["joints"], pose=hyp["rotmat"],
                          betas=rep(out["betas"]), cam=rep(out["cam"]), log_prob=out["log_prob"])
