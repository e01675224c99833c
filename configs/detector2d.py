"""Config of the ViTPose-style 2D heatmap detector (`hmrjax.methods.detector2d`).

Variants (`configs/detector2d.py:<variant>[,target_weight=False]`):
  paper  ViTPose-B "classic" (Xu et al. 2022, mmpose ViTPose_base_coco_256x192): ViT-B/16 (no class token,
         patch padding 2), two 4x4/2 deconvs (256, 256) + 1x1 conv -> 17 heatmaps at 1/4; AdamW lr 5e-4,
         betas (0.9, 0.999), weight decay 0.1, 500 linear warm-up iterations, step decay x0.1 at epochs 170
         and 200, 210 epochs, batch 512 in total (8 GPUs x 64), Gaussian targets sigma 2, visibility-weighted
         MSE. Differences here (documented, not hidden):
           - square crops: the grain pipeline crops squares (`config.data.image_size` is one int), so the
             paper's 256x192 crop / 64x48 heatmaps become 256x256 / 64x64 (the person box is padded to a
             square instead of to a 4:3 aspect ratio);
           - no layer-wise learning-rate decay (ViTPose: 0.75 for B) and no drop-path (0.3): the shared
             optimizer (`hmrjax.train.optim`) has no per-layer learning rates and the ViT no stochastic
             depth; no MAE-pretrained initialisation (load converted weights with `hmrjax weights convert`);
           - 210 epochs over COCO's 149,813 person instances at batch 512 = 61,440 steps; here `total_steps`
             is that count and the step decay is placed at the same fractions (170/210, 200/210) of it.
  tiny   hrnet_tiny (+ one 3x3 head conv) at 128 px, heatmaps 32x32, sigma 2, AdamW lr 2e-3 with warm-up
         and cosine decay, batch 16, 2800 steps, lighter geometric augmentation (rotation 20 deg with
         probability 0.2, scale 0.15): a CPU setting (not the paper's), ~23 min on a shared 2-core machine.
         Square crops as above. Recorded runs: benchmarks/results/detector2d_tiny.json (the accepted store of
         heatmap samples used `tiny,target_weight=False` on synthetic_humans/small).
  target_weight=False  mmpose's `use_target_weight=False`: every keypoint's heatmap is trained, invisible and
         out-of-crop ones toward the pipeline's all-zero target, so the detector learns low confidence for
         occluded joints (the synthetic visibility flag is geometric: most hidden joints are self-occluded
         and easy to infer, and a visibility-weighted loss leaves their confidence as high as visible ones).
"""
import ml_collections

from configs import common

COCO_PERSON_INSTANCES = 149_813   # COCO train2017 person instances with keypoints (mmpose top-down)


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="tiny", target_weight=True)
    if arg.variant not in ("tiny", "paper"):
        raise ValueError(f"configs/detector2d.py: unknown variant {arg.variant!r} (known: tiny, paper)")
    from data_pipelines import pipeline

    config = common.base_config()
    config.method = "detector2d"
    paper = arg.variant == "paper"

    config.model = ml_collections.ConfigDict(dict(
        backbone="vit_base_patch16_224" if paper else "hrnet_tiny",   # a ViT name (ViTPose) or an HRNet name
        decoder_filters=(256, 256),      # ViT: deconvolution widths (ViTPose classic decoder)
        head_convs=0 if paper else 1,    # HRNet: 3x3 conv + BN + ReLU layers before the 1x1 conv
        head_width=64,
        frozen_bn=False,
        flip_test=True,                  # ViTPose test_cfg flip_test: average with the mirrored crop's heatmaps
    ))
    config.loss = ml_collections.ConfigDict(dict(
        heatmap_weight=1.0,                              # mmpose JointsMSELoss loss_weight
        use_target_weight=bool(arg.target_weight),       # True: visibility-weighted (ViTPose); False: every
    ))                                                   # keypoint, invisible ones toward a zero heatmap

    config.data = pipeline.default_config()
    config.data.name = "synthetic_humans/small" if paper else "synthetic_humans/tiny"
    config.data.image_size = 256 if paper else 128
    config.data.heatmaps = True
    config.data.heatmap_size = config.data.image_size // 4
    config.data.heatmap_sigma = 2.0
    config.data.dense_size = 8        # depth / mask / part maps are not used: warp them at a token size
    config.data.eval_split = "validation"
    # ViTPose augmentation: flip 0.5, scale factor 0.35, rotation 40 deg with probability 0.6 (half-body
    # augmentation not reproduced); tiny keeps the pipeline defaults.
    if paper:
        config.data.geometry.scale_jitter = 0.35
        config.data.geometry.rot_jitter = 40.0
        config.data.geometry.rot_prob = 0.6

    config.optim.name = "adamw"
    config.optim.b1, config.optim.b2 = 0.9, 0.999
    if paper:
        config.batch_size = 512
        config.total_steps = 210 * COCO_PERSON_INSTANCES // 512          # 61,440 (210 epochs of COCO)
        config.optim.lr = 5e-4
        config.optim.weight_decay = 0.1
        config.optim.schedule = "step"
        config.optim.warmup_steps = 500
        config.optim.boundaries = (config.total_steps * 170 // 210, config.total_steps * 200 // 210)
        config.optim.factors = (0.1, 0.1)
        config.log_every = 100
        config.checkpoint.every_steps = 2000
    else:
        config.data.geometry.scale_jitter = 0.15
        config.data.geometry.rot_jitter = 20.0
        config.data.geometry.rot_prob = 0.2
        config.batch_size = 16
        config.total_steps = 2800
        config.optim.lr = 2e-3
        config.optim.weight_decay = 1e-4
        config.optim.schedule = "warmup_cosine"
        config.optim.warmup_steps = 100
        config.optim.final_lr_fraction = 0.05
        config.log_every = 20
        config.checkpoint.every_steps = 100
    config.optim.clip_grad_norm = 0.0
    return config
