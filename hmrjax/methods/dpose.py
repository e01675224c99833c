"""D-PoSE (Vasilikopoulos, Drosakis, Argyros): depth and part segmentation as intermediate representations.

Owns `DPoSENet` (the network) and `DPoSE` (the Method: init / loss / predict). Building blocks come from
`hmrjax.nn` (HRNet backbone, `UNetDecoder`, `MultiLinear`, `part_soft_attention`) and the loss terms from
`hmrjax.losses`.

Network (paper):
  image [B, S, S, 3] -> HRNet -> 4 branches + 720-ch concat at S/4 (W48)
  depth decoder (U-Net, 1 ch) -> relative depth [B, S/4, S/4] and its last features (48 ch, W48)
  part decoder (U-Net, 1 + 22 ch) -> part logits [B, S/4, S/4, 23] (0 = background, 1..22 = smplx22 parts)
  part attention (PARE): softmax over pixels of each of the 22 part maps, pooled concat features -> [B, 22, 720]
  each part feature += [CLIFF bbox features (3), global-average-pooled depth features (48)]
    (+ the 22 soft part centroids, 44 numbers, with `model.part_centroids`: not in the paper, see configs/dpose.py)
    (+ with `model.keypoint_lifter` > 0, not in the paper: a 2D keypoint branch on the concat map (the 2D
     detector's head), 17 maps -> COCO-17 crop keypoints (soft-argmax, or heatmap argmax with
     `model.keypoint_heatmaps`), read detached by a lifting MLP whose embedding joins each part feature;
     trained by `loss.keypoints_crop`; with `model.lifter_pose` the lifter also predicts the pose, which
     replaces the mean pose as every joint's starting estimate, and `model.lifter_frozen` keeps a lifter
     pretrained by tools/pretrain_lifter.py as it is)
  pose: per joint j, a MultiLinear head (one dense layer per joint) reads the feature of its part p(j) and the
    initial 6D rotation -> hidden (32) -> ReLU -> MultiLinear -> 6D residual (ReFit-style, as the authors' code)
  shape / camera: flattened part features + initial value -> Dense(32) -> ReLU -> Dense(K | 3) residual.
Parts -> joints: D-PoSE regresses the 22 SMPL-X body joints, one per part. With a 24-joint (SMPL-layout)
body, joint j reads part `SMPL24_TO_SMPLX22[j]` (the hands, joints 22/23, read their wrist parts) and all 24
joints are predicted (each with its own head). With a SMPL-X / SMPL-H body the 22 body joints are predicted
and the remaining joints (jaw, eyes, fingers) are the identity.
Camera: (s, tx, ty) weak perspective of the crop -> CLIFF full-frame translation
(`geometry.camera.cliff_crop_cam_to_full_translation`); initial (0.9, 0, 0).
Initial pose: identity rotations, root diag(1, -1, -1) (an upright person facing the camera in the OpenCV
camera frame; the synthetic data's root rotation is camera-frame).

Depth target (`losses.relative_depth_target`): from the batch's metric `depth` and `mask` at the dense size,
person pixels min-max normalised to [0.1, 1.0] (near -> 0.1), background 0. The depth loss is computed on
the person foreground (`config.loss.depth_region`; 'all' for the whole crop).
Frames: pose[0] and the predicted root rotation are camera-frame; 3D losses compare the model output before
translation (joints pelvis-centred, vertices at the model origin); `predict` adds the CLIFF translation.
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
from hmrjax.methods.detector2d import heatmap_argmax, heatmap_mse_loss
from hmrjax.nn import backbones
from hmrjax.nn.backbones.ops import batch_norm
from hmrjax.nn.decoders import UNetDecoder
from hmrjax.nn.heads import MultiLinear, part_soft_attention

__all__ = ["DPoSENet", "DPoSE", "joint_to_part_table", "part_label_table", "train_part_frequencies"]

NUM_PARTS = 22  # SMPL-X body parts (hmrjax.body.parts 'smplx22')

# Small final-layer init as in HMR/SPIN's decpose/decshape/deccam (xavier_uniform, gain 0.01).
_small_init = nn.initializers.variance_scaling(1e-4, "fan_avg", "uniform")
_small_multi_init = nn.initializers.variance_scaling(1e-4, "fan_avg", "uniform", in_axis=-2, out_axis=-1,
                                                     batch_axis=(0,))


def joint_to_part_table(num_body_joints: int) -> np.ndarray:
    """Part index (0..21) each predicted joint reads, for a body with `num_body_joints` joints.

    24 (SMPL layout): all 24 joints, via `parts.SMPL24_TO_SMPLX22`; 22, 52 (SMPL-H), 55 (SMPL-X): the 22 body
    joints, one per part.
    """
    from hmrjax.body import parts
    if num_body_joints == 24:
        return np.asarray(parts.SMPL24_TO_SMPLX22, np.int32)
    if num_body_joints in (22, 52, 55):
        return np.arange(NUM_PARTS, dtype=np.int32)
    raise ValueError(f"D-PoSE: no joint -> part grouping for a body with {num_body_joints} joints "
                     f"(supported: 24 SMPL layout, 22 / 52 / 55 SMPL-X / SMPL-H)")


def train_part_frequencies(config, part_labels, max_records: int = 256, smoothing: float = 1.0) -> np.ndarray:
    """Frequencies [23] of D-PoSE's part classes (0 = background) in the model's dense maps: the first
    `max_records` training examples, cropped as for evaluation (no augmentation), labels mapped by
    `part_labels` (`part_label_table`); `smoothing` pseudo-counts per class keep every log finite."""
    import data_pipelines
    from data_pipelines import pipeline
    data = config.data
    source = data_pipelines.open_source(data.name, data.train_split, data.data_dir)
    n = min(len(source), int(max_records))
    if n == 0:
        raise ValueError(f"D-PoSE part prior: the {data.train_split!r} split of {data.name} is empty")
    table = np.asarray(part_labels)
    counts = np.full(NUM_PARTS + 1, float(smoothing))
    for i in range(n):
        ex = pipeline.prepare_example(pipeline.load_record(source, i, data), None, data, train=False)
        counts += np.bincount(table[np.asarray(ex["part_seg"], np.int64).reshape(-1)], minlength=NUM_PARTS + 1)
    return counts / counts.sum()


def part_label_table(scheme: str) -> np.ndarray:
    """Maps the dataset's part labels (0 = background, 1..P) to D-PoSE's 0..22 classes (smplx22 + 1)."""
    from hmrjax.body import parts
    if scheme == "smplx22":
        return np.arange(NUM_PARTS + 1, dtype=np.int32)
    if scheme == "smpl24":
        return np.concatenate([[0], np.asarray(parts.SMPL24_TO_SMPLX22) + 1]).astype(np.int32)
    raise ValueError(f"D-PoSE: config.data.part_scheme={scheme!r} not supported (smpl24 | smplx22)")


class KeypointBranch(nn.Module):
    """features [B, h, w, C] -> (maps [B, h, w, K], keypoints [B, K, 2] crop-normalised, confidence [B, K] | None).

    A 3x3 conv-BN-ReLU and a 1x1 conv to K maps: the 2D detector's HRNet head (`detector2d.HeatmapNet`,
    head_convs=1) with its parameter names, so a trained detector's head loads here (`config.init.more`).
    heatmaps=False: the maps are logits, the keypoints their soft-argmax (integral regression, Sun et al.
    2018) sum_ij softmax_ij(a_k) (x_j, y_i) over the pixel centres in (-1, 1) (`losses.pixel_centre_grid`),
    no confidence. heatmaps=True: the maps are Gaussian heatmaps (the detector's MSE trains them), the
    keypoints their argmax with the quarter-pixel shift (`detector2d.heatmap_argmax`) in the same frame,
    x = 2 (hx + 0.5) / w - 1, and the confidence their maximum."""

    num_keypoints: int = 17
    width: int = 64
    heatmaps: bool = False
    frozen_bn: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                    name="head_conv_0")(x)
        x = nn.relu(batch_norm(train, self.frozen_bn, name="head_bn_0", dtype=self.dtype)(x))
        init = nn.initializers.normal(0.001) if self.heatmaps else nn.linear.default_kernel_init
        maps = nn.Conv(self.num_keypoints, (1, 1), dtype=self.dtype, param_dtype=jnp.float32, kernel_init=init,
                       name="final_layer")(x).astype(jnp.float32)
        h, w = maps.shape[1:3]
        if not self.heatmaps:
            grid = jnp.broadcast_to(losses.pixel_centre_grid(h, w), maps.shape[:3] + (2,))
            return maps, part_soft_attention(grid, maps), None
        coords, conf = heatmap_argmax(jnp.transpose(maps, (0, 3, 1, 2)))
        return maps, 2.0 * (coords + 0.5) / jnp.asarray([w, h], jnp.float32) - 1.0, conf


def _start_pose6d(init_pose6d, num_joints: int) -> np.ndarray:
    """[J * 6] starting 6D rotations (empty: identity) -> [J, 6] float32; a wrong length is an error."""
    if not len(init_pose6d):
        return np.tile(np.asarray([1, 0, 0, 0, 1, 0], np.float32), (num_joints, 1))
    init = np.asarray(init_pose6d, np.float32).reshape(-1)
    if init.size != num_joints * 6:
        raise ValueError(f"D-PoSE: init_pose6d has {init.size} numbers, {num_joints} joints need {num_joints * 6}")
    return init.reshape(num_joints, 6)


class KeypointLifter(nn.Module):
    """Flattened 2D keypoints [B, 2K (+ K)] -> (embedding [B, width], 6D pose [B, J, 6] | None): Dense-ReLU, then
    two residual LayerNorm-Dense-ReLU blocks (the network of tools/lift_probe.py). With num_joints = J > 0 a
    linear pose head `pose_out` (kernel zeros, bias `init_pose6d`, so it starts at that pose) also predicts
    every joint's 6D rotation; `tools/pretrain_lifter.py` trains this module alone on the training split's
    keypoints for `config.init.more=keypoint_lifter=FILE`."""

    width: int = 256
    num_joints: int = 0
    init_pose6d: Sequence[float] = ()   # [J * 6]; empty: identity rotations

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.width, name="dense_in")(x))
        for i in range(2):
            h = h + nn.relu(nn.Dense(self.width, name=f"dense_{i}")(nn.LayerNorm(name=f"norm_{i}")(h)))
        if not self.num_joints:
            return h, None
        nj = self.num_joints
        bias = _start_pose6d(self.init_pose6d, nj).reshape(-1)
        pose = nn.Dense(nj * 6, kernel_init=nn.initializers.zeros, bias_init=lambda *_: jnp.asarray(bias),
                        name="pose_out")(h)
        return h, pose.reshape(x.shape[0], nj, 6)


class DPoSENet(nn.Module):
    """image [B, S, S, 3], cliff_bbox [B, 3] -> dict of predictions (see `__call__`)."""

    backbone: str = "hrnet_w48"
    joint_to_part: Sequence[int] = tuple(range(NUM_PARTS))
    num_betas: int = 10
    use_depth: bool = True
    decoder_blocks: int = 4
    decoder_width: int = 0              # minimum width of the decoder stages (0: the branch widths, as the paper)
    hidden_dim: int = 32
    init_pose6d: Sequence[float] = ()   # [J * 6]; empty: identity rotations
    init_betas: Sequence[float] = ()    # [K]; empty: zeros
    init_cam: Sequence[float] = (0.9, 0.0, 0.0)
    part_prior: Sequence[float] = ()    # [23] initial part-logit bias (log class frequencies); empty: zeros
    frozen_bn: bool = False
    head_norm: str = "none"             # 'layernorm': normalise the part features entering the regressors
    attention_grad: bool = True         # False: the part maps used as attention get no gradient from the pose
    part_centroids: bool = False        # True: every regressor also reads the 22 soft part centroids (x, y)
    keypoint_lifter: int = 0            # > 0: 2D keypoint branch + lifting MLP of this width (0: off, the paper)
    keypoint_head_width: int = 64       # width of the keypoint branch's 3x3 conv
    keypoint_heatmaps: bool = False     # keypoint branch: False soft-argmax of logits, True heatmaps + argmax
    lifter_pose: bool = False           # the lifter also predicts the pose: every joint's starting estimate
    lifter_frozen: bool = False         # the lifter's outputs get no gradient (a pretrained lifter kept as is)
    num_keypoints: int = 17             # COCO-17, the data's `keypoints2d`
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, image, cliff_bbox, train: bool = False):
        """Returns {'rotmat' [B, J, 3, 3], 'pose6d' [B, J, 6], 'betas' [B, K], 'cam' [B, 3] (s, tx, ty),
        'part_logits' [B, S/4, S/4, 23], 'depth' [B, S/4, S/4] when use_depth, 'part_centroids' [B, 22, 2]
        (x, y in (-1, 1)) when part_centroids, 'keypoints2d' [B, 17, 2] (crop-normalised x, y in (-1, 1), as the
        data's `keypoints2d`) and 'keypoint_maps' [B, S/4, S/4, 17] when keypoint_lifter > 0}."""
        b = image.shape[0]
        if (self.lifter_pose or self.lifter_frozen) and not self.keypoint_lifter:
            raise ValueError("D-PoSE: config.model.lifter_pose / lifter_frozen need config.model.keypoint_lifter > 0")
        jp = np.asarray(self.joint_to_part, np.int32)
        nj = len(jp)
        init6 = _start_pose6d(self.init_pose6d, nj)
        lift6 = None
        if self.backbone not in backbones.HRNET_CONFIGS:
            raise ValueError(f"D-PoSE: config.model.backbone={self.backbone!r} must be an HRNet "
                             f"({sorted(backbones.HRNET_CONFIGS)}): the decoders read its four branches")
        enc = backbones.HRNet(**backbones.HRNET_CONFIGS[self.backbone], frozen_bn=self.frozen_bn, dtype=self.dtype,
                              name="backbone")(image, train)
        branches, concat = enc["branches"], enc["concat"]
        out = {}
        seg, _ = UNetDecoder(NUM_PARTS + 1, self.decoder_blocks, self.frozen_bn, tuple(self.part_prior),
                             self.dtype, self.decoder_width, name="part_decoder")(branches, train)
        out["part_logits"] = seg
        att = seg[..., 1:] if self.attention_grad else jax.lax.stop_gradient(seg[..., 1:])
        pooled = concat
        if self.part_centroids:
            # Two coordinate channels pooled by the same attention give each part's soft centroid (the
            # attention weights sum to 1): the 2D layout of the body, which the pooled features alone lose.
            grid = jnp.broadcast_to(losses.pixel_centre_grid(*concat.shape[1:3]), concat.shape[:3] + (2,))
            pooled = jnp.concatenate([concat, grid.astype(concat.dtype)], -1)
        feats = part_soft_attention(pooled, att.astype(concat.dtype))                 # [B, 22, C (+ 2)]
        extra = [jnp.asarray(cliff_bbox, feats.dtype)]
        if self.part_centroids:
            out["part_centroids"] = feats[..., -2:].astype(jnp.float32)
            feats = feats[..., :-2]
            extra.append(out["part_centroids"].reshape(b, -1).astype(concat.dtype))
        if self.keypoint_lifter:
            maps, kp, conf = KeypointBranch(self.num_keypoints, self.keypoint_head_width, self.keypoint_heatmaps,
                                            self.frozen_bn, self.dtype, name="keypoint_branch")(concat, train)
            out["keypoint_maps"], out["keypoints2d"] = maps, kp
            lift_in = [kp.reshape(b, -1)] + ([] if conf is None else [conf])
            # The lifter reads the keypoints (and heatmap maxima) detached: only the keypoint loss trains the
            # branch (a 2D detector feeding a lifting network, as the probe tools/lift_probe.py measured).
            emb, lift6 = KeypointLifter(self.keypoint_lifter, nj if self.lifter_pose else 0,
                                        tuple(init6.reshape(-1).tolist()), name="keypoint_lifter")(
                jax.lax.stop_gradient(jnp.concatenate(lift_in, -1)))
            if self.lifter_frozen:
                emb, lift6 = jax.lax.stop_gradient(emb), jax.lax.stop_gradient(lift6)
            if lift6 is not None:
                out["lifter_pose6d"] = lift6
            extra.append(emb.astype(concat.dtype))
        if self.use_depth:
            depth, depth_feats = UNetDecoder(1, self.decoder_blocks, self.frozen_bn, dtype=self.dtype,
                                             min_width=self.decoder_width, name="depth_decoder")(branches, train)
            out["depth"] = depth[..., 0]
            extra.append(jnp.mean(depth_feats, axis=(1, 2)))
        extra = jnp.concatenate(extra, axis=-1)
        feats = jnp.concatenate([feats, jnp.broadcast_to(extra[:, None], (b, NUM_PARTS, extra.shape[-1]))], -1)
        feats = feats.astype(jnp.float32)
        if self.head_norm == "layernorm":  # per part, over channels (an hmrjax option, see configs/dpose.py)
            feats = nn.LayerNorm(name="head_norm")(feats)
        elif self.head_norm != "none":
            raise ValueError(f"D-PoSE: config.model.head_norm={self.head_norm!r} (known: none, layernorm)")

        if lift6 is not None:   # hmrjax option: the lifter's pose from the 2D keypoints is the starting estimate
            init6 = lift6
        else:
            # The starting estimate is a parameter initialised to the mean (SPIN's `init_pose` buffer, trained
            # here like a bias), so a checkpoint carries it and prediction needs no dataset.
            init6 = self.param("mean_pose6d", lambda _: jnp.asarray(init6))
            init6 = jnp.broadcast_to(init6, (b, nj, 6))
        h = jnp.concatenate([feats[:, jp], init6], axis=-1)
        h = nn.relu(MultiLinear(nj, self.hidden_dim, name="pose_hidden")(h))
        pose6d = init6 + MultiLinear(nj, 6, kernel_init=_small_multi_init, name="pose_out")(h)

        flat = feats.reshape(b, -1)
        mb = (np.asarray(self.init_betas, np.float32) if len(self.init_betas)
              else np.zeros(self.num_betas, np.float32))
        init_betas = jnp.broadcast_to(self.param("mean_betas", lambda _: jnp.asarray(mb)), (b, self.num_betas))
        hs = nn.relu(nn.Dense(self.hidden_dim, name="shape_hidden")(jnp.concatenate([flat, init_betas], -1)))
        betas = init_betas + nn.Dense(self.num_betas, kernel_init=_small_init, name="shape_out")(hs)
        init_cam = jnp.broadcast_to(self.param("mean_cam", lambda _: jnp.asarray(self.init_cam, jnp.float32)), (b, 3))
        hc = nn.relu(nn.Dense(self.hidden_dim, name="cam_hidden")(jnp.concatenate([flat, init_cam], -1)))
        cam = init_cam + nn.Dense(3, kernel_init=_small_init, name="cam_out")(hc)

        out.update(pose6d=pose6d, rotmat=rotations.rot6d_to_matrix(pose6d), betas=betas, cam=cam)
        return out


def _root_init6d(num_joints: int) -> tuple:
    rot = np.tile(np.eye(3, dtype=np.float32), (num_joints, 1, 1))
    rot[0] = np.diag([1.0, -1.0, -1.0])
    return tuple(np.asarray(rotations.matrix_to_rot6d(jnp.asarray(rot))).reshape(-1).tolist())


class DPoSE(Method):
    """The D-PoSE method. Reads `config.model`, `config.loss`, `config.data` (see configs/dpose.py)."""

    supports_flip_test = True

    def __init__(self, config, body=None):
        super().__init__(config)
        from hmrjax import body as body_lib
        m = config.model
        self.body = body if body is not None else body_lib.load(m.body, num_betas=int(m.num_betas))
        self.joint_to_part = joint_to_part_table(self.body.num_joints)
        self.num_pred = len(self.joint_to_part)
        self.part_labels = jnp.asarray(part_label_table(config.data.part_scheme))
        self.use_depth = bool(m.use_depth)
        self.flip_test = bool(m.get("flip_test", False))
        if self.flip_test:
            from hmrjax.body import layouts
            layout = str(config.data.get("pose_layout", "smpl24"))
            perm = layouts.flip_permutation(layout)[:self.num_pred]
            if perm.size != self.num_pred or perm.max() >= self.num_pred:
                raise ValueError(f"D-PoSE: model.flip_test needs a left/right permutation of the {self.num_pred} "
                                 f"predicted joints; config.data.pose_layout={layout!r} does not give one")
            self.joint_flip = perm
            self.part_flip = np.concatenate([[0], layouts.flip_permutation("smplx22") + 1])
        self.model = DPoSENet(backbone=m.backbone, joint_to_part=tuple(int(i) for i in self.joint_to_part),
                              num_betas=int(m.num_betas), use_depth=self.use_depth,
                              decoder_blocks=int(m.decoder_blocks),
                              decoder_width=int(m.get("decoder_width", 0)), hidden_dim=int(m.hidden_dim),
                              init_pose6d=_root_init6d(self.num_pred), init_cam=tuple(m.init_cam),
                              frozen_bn=bool(m.get("frozen_bn", False)), head_norm=str(m.get("head_norm", "none")),
                              attention_grad=bool(m.get("attention_grad", True)),
                              part_centroids=bool(m.get("part_centroids", False)),
                              keypoint_lifter=int(m.get("keypoint_lifter", 0)),
                              keypoint_head_width=int(m.get("keypoint_head_width", 64)),
                              keypoint_heatmaps=bool(m.get("keypoint_heatmaps", False)),
                              lifter_pose=bool(m.get("lifter_pose", False)),
                              lifter_frozen=bool(m.get("lifter_frozen", False)),
                              dtype=jnp.dtype(config.get("compute_dtype", "float32")))

    # ------------------------------------------------------------------------------------------ helpers
    def init(self, rng, batch):
        """Variables for `batch`; with `config.model.init_from_data` the starting pose / betas (the
        `mean_pose6d` / `mean_betas` parameters) are the training split's mean (`evaluate.
        train_mean_pose_and_shape`, the same mean as the evaluator's baseline), as HMR / SPIN start from
        mean parameters; otherwise identity joints with an upright root facing the camera, zero betas.
        With `config.model.part_prior_init` the part decoder's output bias starts at the log frequencies of
        the part classes in the training crops (`train_part_frequencies`), so the segmentation starts at
        the class prior instead of uniform logits."""
        model = self.model
        if bool(self.config.model.get("init_from_data", False)):
            from hmrjax import evaluate
            pose, betas, _ = evaluate.train_mean_pose_and_shape(self.config)
            with jax.ensure_compile_time_eval():   # init may run under jit: keep these values concrete
                init6 = np.asarray(rotations.matrix_to_rot6d(jnp.asarray(pose[:self.num_pred])))
            nb = int(self.config.model.num_betas)
            mb = np.zeros(nb, np.float32)
            mb[:min(nb, betas.shape[0])] = betas[:nb]
            model = model.clone(init_pose6d=tuple(init6.reshape(-1).tolist()), init_betas=tuple(mb.tolist()))
        if bool(self.config.model.get("part_prior_init", False)):
            freq = train_part_frequencies(self.config, self.part_labels)
            model = model.clone(part_prior=tuple(np.log(freq).tolist()))
        return model.init(rng, batch["img"], batch["cliff_bbox"], train=False)

    def _full_pose(self, rotmat):
        """[B, Jp, 3, 3] predicted joints -> [B, J_body, 3, 3] (identity for joints not predicted)."""
        extra = self.body.num_joints - rotmat.shape[1]
        if extra == 0:
            return rotmat
        eye = jnp.broadcast_to(jnp.eye(3, dtype=rotmat.dtype), (rotmat.shape[0], extra, 3, 3))
        return jnp.concatenate([rotmat, eye], axis=1)

    def _apply_eval(self, variables, batch):
        """The network in inference mode; with `config.model.flip_test` averaged with its prediction on the
        mirrored crop (CLIFF bbox x offset negated, as if the whole frame were mirrored), mapped back: joint
        rotations by `rotations.mirror_rotations` then the chordal mean (`rotations.project_to_so3` of the
        average), betas averaged, camera (s, -tx, ty), depth and part logits (left/right parts swapped)
        mirrored back and averaged. The other outputs are the un-mirrored pass's."""
        out = self.model.apply(variables, batch["img"], batch["cliff_bbox"], train=False)
        if not self.flip_test:
            return out
        mirror = jnp.asarray([-1.0, 1.0, 1.0], jnp.float32)
        f = self.model.apply(variables, batch["img"][:, :, ::-1], batch["cliff_bbox"] * mirror, train=False)
        out = dict(out)
        rot_f = rotations.mirror_rotations(f["rotmat"], self.joint_flip)
        out["rotmat"] = rotations.project_to_so3(0.5 * (out["rotmat"] + rot_f))
        out["betas"] = 0.5 * (out["betas"] + f["betas"])
        out["cam"] = 0.5 * (out["cam"] + f["cam"] * jnp.asarray([1.0, -1.0, 1.0], jnp.float32))
        if out.get("depth") is not None:
            out["depth"] = 0.5 * (out["depth"] + f["depth"][:, :, ::-1])
        out["part_logits"] = 0.5 * (out["part_logits"] + f["part_logits"][:, :, ::-1][..., self.part_flip])
        return out

    def _forward_body(self, out, batch):
        """Posed body (no translation), CLIFF translation [B, 3] and projected COCO-17 pixels [B, 17, 2]."""
        body_out = self.body(pose=self._full_pose(out["rotmat"]), betas=out["betas"])
        focal = batch["focal_length"]
        transl = cam_lib.cliff_crop_cam_to_full_translation(out["cam"], batch["bbox_center"], batch["bbox_scale"],
                                                            batch["image_size"], focal[:, 0])
        kp3d = body_out.joints_extra["coco17"] + transl[:, None]
        kp2d = cam_lib.perspective_projection(kp3d, focal, batch["princpt"])
        return body_out, transl, kp2d

    # --------------------------------------------------------------------------------------------- loss
    def loss(self, params, state, batch, rng):
        """Weighted sum of the paper's terms (lambda1..lambda8 in `config.loss`); metrics hold every term."""
        del rng
        lw = self.config.loss
        out, updates = self.model.apply({"params": params, **state}, batch["img"], batch["cliff_bbox"],
                                        train=True, mutable=["batch_stats"])
        valid = batch.get("valid", jnp.ones(batch["img"].shape[0], jnp.float32))
        has = lambda k: batch[f"has_{k}"] * valid
        body_out, _, kp2d = self._forward_body(out, batch)
        jp = self.num_pred
        terms = {}

        # dense maps at the data's dense size
        dense = batch["part_seg"].shape[1:3]
        seg = out["part_logits"]
        if seg.shape[1:3] != dense:
            seg = jax.image.resize(seg, seg.shape[:1] + tuple(dense) + seg.shape[3:], "bilinear")
        labels = self.part_labels[batch["part_seg"].astype(jnp.int32)]
        terms["part_seg_ce"] = losses.part_seg_cross_entropy(seg, labels, has("part_seg"))
        if self.use_depth:
            depth = out["depth"]
            if depth.shape[1:3] != dense:
                depth = jax.image.resize(depth, depth.shape[:1] + tuple(dense), "bilinear")
            target, fg = losses.relative_depth_target(batch["depth"], batch["mask"])
            region = fg if lw.depth_region == "foreground" else None
            w = has("depth")
            terms["depth_l1"] = losses.depth_l1_loss(depth, target, region, w)
            terms["depth_ssim"] = losses.depth_ssim_loss(depth, target, region, w, 1.0, int(lw.ssim_window),
                                                         float(lw.ssim_sigma))

        gt_rot = rotations.axis_angle_to_matrix(batch["pose"][:, :jp])
        first = 0 if lw.pose_include_root else 1
        terms["pose_mse"] = losses.rotation_matrix_mse(out["rotmat"][:, first:jp], gt_rot[:, first:], has("pose"))
        nb = out["betas"].shape[-1]
        terms["betas_mse"] = losses.betas_mse(out["betas"], batch["betas"][:, :nb], has("betas"))
        pj = body_out.joints[:, :jp]
        gj = batch["joints3d"][:, :jp]
        terms["joints3d_mse"] = losses.joints3d_mse(pj - pj[:, :1], gj - gj[:, :1], has("joints3d"))
        gt_body = self.body(pose=batch["pose"], betas=batch["betas"][:, :nb])
        terms["vertices_l1"] = losses.vertices_l1(body_out.vertices, jax.lax.stop_gradient(gt_body.vertices),
                                                  has("pose") * has("betas"))
        kp = batch["keypoints2d_full"]
        terms["keypoints2d_mse"] = losses.keypoints2d_full_frame_mse(kp2d, kp[..., :2], kp[..., 2],
                                                                     batch["image_size"], batch["bbox_scale"],
                                                                     has("keypoints2d"))
        cw = float(lw.get("part_centroid", 0.0))
        if cw:  # hmrjax option (not in the paper): the soft part centroids pulled to the labelled ones
            if "part_centroids" not in out:
                raise ValueError("D-PoSE: config.loss.part_centroid > 0 needs config.model.part_centroids=True")
            target, present = losses.part_centroid_targets(labels, NUM_PARTS + 1)
            terms["part_centroid_mse"] = losses.part_centroid_mse(out["part_centroids"], target, present,
                                                                  has("part_seg"))
        kw = float(lw.get("keypoints_crop", 0.0))
        if kw:  # hmrjax option (not in the paper): the keypoint branch against the crop keypoints
            if "keypoints2d" not in out:
                raise ValueError("D-PoSE: config.loss.keypoints_crop > 0 needs config.model.keypoint_lifter > 0")
            gt = batch["keypoints2d"]
            conf = gt[..., 2] if bool(lw.get("keypoints_crop_visible_only", True)) else jnp.ones_like(gt[..., 2])
            if self.model.keypoint_heatmaps:   # the detector's loss on the pipeline's Gaussian targets
                if "heatmaps" not in batch:
                    raise ValueError("D-PoSE: config.model.keypoint_heatmaps needs config.data.heatmaps=True "
                                     "(and config.data.heatmap_size = image_size / 4)")
                terms["keypoint_heatmap_mse"] = heatmap_mse_loss(
                    jnp.transpose(out["keypoint_maps"], (0, 3, 1, 2)), batch["heatmaps"],
                    conf * has("keypoints2d")[:, None])
            else:
                terms["keypoints_crop_l1"] = losses.keypoints2d_l1(out["keypoints2d"], gt[..., :2], conf,
                                                                   has("keypoints2d"))
        weights = {"depth_l1": lw.lambda1, "depth_ssim": lw.lambda2, "part_seg_ce": lw.lambda3,
                   "pose_mse": lw.lambda4, "betas_mse": lw.lambda5, "joints3d_mse": lw.lambda6,
                   "vertices_l1": lw.lambda7, "keypoints2d_mse": lw.lambda8, "part_centroid_mse": cw,
                   "keypoints_crop_l1": kw, "keypoint_heatmap_mse": kw}
        total = sum(float(weights[k]) * v for k, v in terms.items())
        metrics = dict(terms)
        metrics["loss"] = total
        err = jnp.linalg.norm((pj - pj[:, :1]) - (gj - gj[:, :1]), axis=-1).mean(-1)
        metrics["mpjpe_mm"] = 1000.0 * losses.masked_mean(err, has("joints3d"))
        return total, (metrics, dict(updates))

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, variables, batch, rng, num_samples=1):
        """Camera-frame mesh and joints (CLIFF translation added), pose matrices, betas, crop cam (s, tx, ty),
        relative depth [B, S/4, S/4] (0.1..1 on the person, not metres) and part logits [B, S/4, S/4, 23];
        with `config.model.flip_test`, averaged with the mirrored crop's (`_apply_eval`)."""
        del rng
        out = self._apply_eval(variables, batch)
        body_out, transl, _ = self._forward_body(out, batch)
        rep = lambda x: jnp.repeat(x[:, None], num_samples, axis=1)
        return Prediction(vertices=rep(body_out.vertices + transl[:, None]),
                          joints=rep(body_out.joints + transl[:, None]),
                          pose=rep(self._full_pose(out["rotmat"])), betas=rep(out["betas"]), cam=rep(out["cam"]),
                          depth=out.get("depth"), part_seg=out["part_logits"])
