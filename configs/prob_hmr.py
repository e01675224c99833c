"""Config of probabilistic HMR (`hmrjax.methods.prob_hmr`; Wehrbein, Rudolph, Rosenhahn, Wandt, "Utilizing
Uncertainty in 2D Pose Detectors for Probabilistic 3D Human Mesh Recovery").

Variants (`configs/prob_hmr.py:<variant>[,flag=value ...]`):
  paper  HRNet-W48 (frozen; pooled 720-d features) at 224 px, keypoint embedding 256, condition 979-d, RealNVP with
         8 blocks / 1024 hidden / 3 layers / clamp 2.0, AdamW lr 1e-4, batch 64, 26 hypotheses per training image
         (mode + 25), loss weights beta 5e-4, 2D 1e-2, NLL 1e-1, orth 1e-1, MMD 5e-2, mask 1e-1. The paper uses
         SMPL-X (11 betas, 22 flow joints); the default body here is the free 'anny' model (24 SMPL-layout joints,
         10 betas -> 144-d flow). For SMPL-X: `--config.model.body=/path/SMPLX_NEUTRAL.npz
         --config.model.num_betas=11` (then 22 flow joints) with matching data. The backbone should start from
         pretrained weights (the authors: BEDLAM-CLIFF HRNet-W48); loading them is not wired here.
  tiny   hrnet_tiny at 128 px (dense maps 32 px), 'anny_lite', embedding 64, head 256, flow hidden 256, trainable
         backbone (random init: freezing it would freeze noise), no head dropout, batch 16, AdamW lr 1e-3,
         grad-norm clip 5, synthetic_humans/tiny: CPU minutes (laptop settings, not the paper's).
Ablation flags (the paper's Table 3): bbox=False (no CLIFF bbox features in the condition / head),
kp2d=False (no 2D-pose embedding), nice=True (volume-preserving NICE couplings instead of RealNVP),
mmd=False (no MMD loss), mask=False (no mask loss). heatmaps=N sets config.data.num_heatmap_samples (the S' of
the stored detector samples; 0: no heatmap fields, MMD targets fall back to the ground truth).

Where the paper leaves details open, the values are the authors' code (github.com/twehrbein/humr, facts as read
there): keypoint MLP 51 -> 512 -> 256, shape/camera head (3 iterations, 1024 units, dropout 0.5, no activation),
AdamW weight decay 1e-4, Gaussian noise 0.005 on the ground-truth 6D pose in the NLL, heatmap-sample thresholds
0.15 / 0.7, 25 MMD targets. Where the code differs from the paper, `paper` follows the paper and the code's choice
is a switch:
  - MMD estimator: paper's unbiased U-statistic; code's biased V-statistic (`loss.mmd_include_diagonal=True`);
  - soft clamp: the paper's atan form clamp * 2/pi * atan(s / clamp) (`model.flow.clamp_form='atan'`); the code's
    FrEIA 0.2 form clamp * 0.636 * atan(s) is `'freia'`;
  - the code adds an unweighted camera-scale penalty exp(-10 s)^2 not in the paper (`loss.cam_penalty=1.0`).
"""
import ml_collections

from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="tiny", bbox=True, kp2d=True, nice=False, mmd=True, mask=True,
                           heatmaps=-1)
    if arg.variant not in ("tiny", "paper"):
        raise ValueError(f"configs/prob_hmr.py: unknown variant {arg.variant!r} (known: tiny, paper)")
    from data_pipelines import pipeline

    config = common.base_config()
    config.method = "prob_hmr"
    paper = arg.variant == "paper"

    config.model = ml_collections.ConfigDict(dict(
        backbone="hrnet_w48" if paper else "hrnet_tiny",
        body="anny" if paper else "anny_lite",   # shipped asset name or a SMPL / SMPL-X file path
        num_betas=10,                            # paper (SMPL-X): 11
        flow_joints=0,                           # 0: root + body of the body model (24 SMPL layout, 22 SMPL-X)
        freeze_backbone=paper,                   # paper: frozen (pretrained) HRNet-W48
        use_bbox=bool(arg.bbox),                 # CLIFF bbox features in the condition (Table 3)
        use_kp2d=bool(arg.kp2d),                 # 2D-pose embedding in the condition (Table 3)
        kp_source="detector",                    # detector | gt (debugging only)
        kp_field="heatmap_pose",                 # batch field [B, 17, 3] with the detector's argmax pose + conf;
                                                 # emitted by the pipeline with heatmap samples; absent:
                                                 # mean of heatmap_samples (see prob_hmr.detector_keypoints)
        kp_hidden=512 if paper else 128,
        kp_embed_dim=256 if paper else 64,
        head_hidden=1024 if paper else 256,
        head_iters=3,
        head_dropout=0.5 if paper else 0.0,
        init_cam=(0.9, 0.0, 0.0),
        flow=ml_collections.ConfigDict(dict(
            num_blocks=8,
            hidden=1024 if paper else 256,
            num_layers=3,
            clamp=2.0,
            clamp_form="atan",                   # paper; authors' code (FrEIA 0.2): 'freia'
            volume_preserving=bool(arg.nice),    # NICE ablation
            two_sided=True,                      # GLOW-style block (both halves), as the authors' FrEIA model
            permutation="fixed_random",
        )),
    ))
    config.loss = ml_collections.ConfigDict(dict(
        lambda_beta=5e-4,
        lambda_2d=1e-2,
        lambda_nll=1e-1,
        lambda_orth=1e-1,
        lambda_mmd=5e-2,
        lambda_mask=1e-1,
        use_mmd=bool(arg.mmd),
        use_mask=bool(arg.mask),
        num_train_samples=26,                    # hypotheses per training image: mode + 25 (MMD n = 25)
        num_mmd_targets=25,                      # heatmap samples used as MMD / mask targets (0: n)
        mmd_bandwidths=(0.05, 0.2, 0.9),
        mmd_include_diagonal=False,              # paper: unbiased; code: True (biased)
        hm_min_conf=0.15,
        hm_max_conf=0.7,
        visible_conf=0.5,
        gt_noise=0.005,                          # std of the noise on the GT 6D pose in the NLL (code)
        kp2d_weighting="inside_crop",            # inside_crop (code: all GT joints) | visible
        # code-only camera-scale penalty weight (code: 1.0). tiny uses it: without it, conditioned on the
        # detector's argmax pose, a tiny run settled on the mirror solution (weak-perspective s < 0, root turned
        # 180 deg about the viewing axis, the same 2D projection; mode MPJPE 830 mm after 1.5k steps).
        cam_penalty=0.0 if paper else 1.0,
    ))
    config.eval = ml_collections.ConfigDict(dict(num_samples=100, root="pelvis", pck_threshold=0.05))

    config.data = pipeline.default_config()
    config.data.name = "synthetic_humans/small" if paper else "synthetic_humans/tiny"
    config.data.image_size = 224 if paper else 128
    config.data.dense_size = 56 if paper else 32
    config.data.num_betas = config.model.num_betas
    config.data.num_heatmap_samples = 150 if arg.heatmaps < 0 else int(arg.heatmaps)

    config.optim.name = "adamw"
    config.optim.lr = 1e-4 if paper else 1e-3
    config.optim.weight_decay = 1e-4             # code (paper: AdamW, decay not stated)
    config.optim.clip_grad_norm = 0.0 if paper else 5.0
    config.optim.frozen = (r"^backbone/",) if config.model.freeze_backbone else ()
    config.batch_size = 64 if paper else 16
    config.total_steps = 200_000 if paper else 300
    config.log_every = 100 if paper else 10
    config.checkpoint.every_steps = 5000 if paper else 100
    return config
