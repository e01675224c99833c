"""The `hmrjax` command line: thin argument parsing that hands off to library functions.

Subcommands:
  hmrjax train --config configs/M.py:VARIANT --workdir W [--config.key=value ...]
                                                   train (resumes from W's last checkpoint)
  hmrjax data synth --config tiny|small|large --data-dir DIR [--workers N] [--rebuild]
                                                   render the synthetic_humans dataset (resumable)
  hmrjax data heatmaps --detector-workdir W --data-dir DIR [--config small] [--splits ...] [--batch-size B]
                                                   2D-detector heatmap samples stored beside the dataset
  hmrjax data sheet --data-dir DIR [--config tiny] [--split test] --out sheet.png
                                                   contact sheet: images, keypoints, parts, depth
  hmrjax weights convert SRC DST.npz|.msgpack --arch NAME [--no-strict]
                                                   PyTorch backbone checkpoint (.pth/.safetensors) -> flax
  hmrjax weights export --workdir RUN DST.npz|.msgpack [--module backbone] [--step N]
                                                   a trained run's encoder, for --config.init.weights
  hmrjax eval --workdir W [--split test] [--max-examples N] [--num-samples S]
                                                   metrics JSON (+ mean-pose baseline) and a PNG grid;
                                                   detector2d runs: PCK / confidences (eval_<split>.json)
  hmrjax predict --workdir W --image IMG --out DIR [--bbox X0 Y0 X1 Y1]
                                                   mesh .obj/.ply and an overlay PNG for one image
  hmrjax demo --out DIR [--model anny|PATH]       pose a body model, write .obj/.ply and a PNG
  hmrjax body convert SRC DST.npz                  official SMPL/SMPL-H/SMPL-X/MANO file -> clean .npz
  hmrjax body info MODEL                           print a model's sizes and joint names
  hmrjax body coarsen MODEL OUT.npz [--factors 4 4 | --targets N ...]
                                                   coarse meshes + up/down-sampling matrices
"""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_train(args, extra):
    from hmrjax.train.config_flags import parse_config_flags
    from hmrjax.train.trainer import train_and_evaluate

    config, rest = parse_config_flags(extra)
    if rest:
        raise ValueError(f"unrecognised arguments: {' '.join(rest)}")
    evaluate_fn = None
    if int(config.get("eval_every", 0) or 0) > 0:      # periodic evaluation on config.data.eval_split
        from hmrjax.evaluate import make_evaluate_fn
        evaluate_fn = make_evaluate_fn(config, config.data.get("eval_split", "validation"),
                                       max_examples=config.get("eval_max_examples", None) or None)
    train_and_evaluate(config, args.workdir, evaluate_fn=evaluate_fn)


def _cmd_data_synth(args):
    from data_pipelines import synthetic

    path = synthetic.build(args.config, args.data_dir, num_workers=args.workers, rebuild_stale=args.rebuild)
    print(f"synthetic_humans/{args.config} ready in {path}")


def _cmd_data_sheet(args):
    from data_pipelines import synthetic

    out = synthetic.contact_sheet(args.data_dir, args.split, args.out, config=args.config, num=args.num)
    print(f"wrote {out}")


def _cmd_data_heatmaps(args):
    from hmrjax import heatmap_data

    result = heatmap_data.generate(args.detector_workdir, args.data_dir,
                                      dataset=f"synthetic_humans/{args.config}" if args.config else args.dataset,
                                      splits=args.splits, samples_name=args.name, batch_size=args.batch_size,
                                      num_samples=args.num_samples, min_conf=args.min_conf, step=args.step)
    print(json.dumps(result, indent=2))


def _cmd_weights_convert(args):
    from hmrjax.nn import backbones

    report = backbones.convert_checkpoint(args.src, args.dst, args.arch, strict=not args.no_strict)
    print(json.dumps({"filled": len(report.filled), "dropped": report.dropped, "missing": report.missing,
                      "unexpected": report.unexpected}, indent=2))
    print(f"wrote {args.dst}")


def _cmd_weights_export(args):
    from hmrjax.train import pretrained

    info = pretrained.export_submodule(args.workdir, args.dst, module=args.module, step=args.step)
    print(json.dumps(info))
    use = (f"--config.init.more=MODULE={args.dst}" if "," in args.module
           else f"--config.init.weights={args.dst}")
    print(f"wrote {args.dst} (use: {use})")


def _cmd_eval(args):
    from hmrjax.evaluate import evaluate_workdir, flip_suffix, load_config

    config = load_config(args.workdir)
    if config.get("method") == "detector2d":     # a 2D detector: PCK / confidences
        from hmrjax.methods.detector2d import evaluate_detector
        if args.data or args.data_dir:
            raise SystemExit("hmrjax eval: --data / --data-dir are not supported for detector2d runs yet")
        result = evaluate_detector(args.workdir, args.split, max_examples=args.max_examples, step=args.step,
                                   flip_test=args.flip_test)
        print(json.dumps(result, indent=2, default=float))
        suffix = flip_suffix(args.flip_test, config.model.get("flip_test", False))
        print(f"wrote {args.workdir}/eval_{args.split}{suffix}.json")
        return
    result = evaluate_workdir(args.workdir, args.split, max_examples=args.max_examples,
                              num_samples=args.num_samples, step=args.step, data_name=args.data,
                              data_dir=args.data_dir, flip_test=args.flip_test)
    paths = result.pop("paths", {})
    print(json.dumps(result, indent=2, default=float))
    for name, path in paths.items():
        print(f"wrote {name}: {path}")


def _cmd_predict(args):
    from hmrjax.predict import predict_image

    result = predict_image(args.workdir, args.image, args.out, bbox=args.bbox, num_samples=args.num_samples,
                           step=args.step)
    for key in ("obj", "ply", "overlay"):
        print(f"wrote {result[key]}")


def _cmd_demo(args):
    from hmrjax import demo

    summary = demo.run(args.out, model=args.model, seed=args.seed, image_size=args.image_size)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}/demo.png and mesh files (.obj, .ply)")


def _cmd_quickstart(args, extra):
    from hmrjax import quickstart

    quickstart.run(args.out, args.config, data_dir=args.data_dir, minutes=args.minutes,
                   overrides=[e.removeprefix("--config.") for e in extra], split=args.split)
    print(f"wrote {args.out}/metrics.json and {args.out}/predictions.png")


def _cmd_body_convert(args):
    from hmrjax.body import io

    dst = io.convert(args.src, args.dst)
    print(f"wrote {dst}")


def _cmd_body_info(args):
    import hmrjax

    body = hmrjax.body.load(args.model)
    info = {"model_type": body.model_type, "num_vertices": int(body.num_vertices),
            "num_faces": int(len(body.faces)), "num_joints": int(body.num_joints),
            "num_betas": int(body.num_betas), "joint_names": list(body.joint_names)}
    print(json.dumps(info, indent=2))


def _cmd_body_coarsen(args):
    from hmrjax.geometry import mesh

    rows = mesh.write_coarse_levels_for(args.model, args.out, targets=args.targets or None,
                                        factors=None if args.targets else args.factors)
    print(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmrjax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a method from a config (ml_collections file + overrides)",
                       description="--config FILE.py[:variant] and --config.key=value overrides are "
                                   "parsed by hmrjax.train.config_flags; unknown keys are rejected.")
    p.add_argument("--workdir", required=True, help="checkpoints, logs and the resolved config go here")
    p.set_defaults(func=_cmd_train, takes_extra=True)

    p = sub.add_parser("eval", help="evaluate a trained workdir on a dataset split")
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--max-examples", type=int, default=None)
    p.add_argument("--num-samples", type=int, default=None, help="hypotheses per image (probabilistic methods)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--data", default=None,
                   help="dataset to evaluate on instead of the run's config.data.name (e.g. an earlier release: "
                        "synthetic_humans/small:1.0.0)")
    p.add_argument("--data-dir", default=None, help="its tfds data dir (default: the run's config.data.data_dir)")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="override the run's config.model.flip_test (average with the mirrored crop); when that "
                        "changes it, the output goes to eval/<split>_flip (or _noflip)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="predict a mesh for one image with a trained workdir")
    p.add_argument("--workdir", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bbox", type=float, nargs=4, default=None, metavar=("X0", "Y0", "X1", "Y1"),
                   help="person box in pixels (default: the whole image)")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--step", type=int, default=None)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("quickstart", help="the main job: train D-PoSE on synthetic data here, evaluate, draw",
                       description="Builds the synthetic data if missing, trains --config (default "
                                   "configs/dpose.py:tiny), evaluates beside the mean-pose baseline, writes "
                                   "OUT/metrics.json and OUT/predictions.png. Extra --config.key=value "
                                   "overrides are applied to the config.")
    p.add_argument("--out", default="out/dpose", help="output folder (the run itself goes to OUT/run)")
    p.add_argument("--config", default="configs/dpose.py:tiny")
    p.add_argument("--data-dir", default="", help="tfds data dir (default: tfds's ~/tensorflow_datasets)")
    p.add_argument("--minutes", type=float, default=0.0, help="cap on the training loop's wall-clock time")
    p.add_argument("--split", default="test")
    p.set_defaults(func=_cmd_quickstart, takes_extra=True)

    p = sub.add_parser("demo", help="pose a body model and write meshes + a picture")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--model", default="anny", help="shipped model name (anny, anny_lite) or a model file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=512)
    p.set_defaults(func=_cmd_demo)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="build the synthetic_humans dataset (tfds, ArrayRecord)")
    p.add_argument("--config", default="tiny", help="tiny | small | medium | large")
    p.add_argument("--data-dir", required=True, help="tfds data folder")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild a finished build made with other settings (else it is an error)")
    p.set_defaults(func=_cmd_data_synth)
    p = data.add_parser("sheet", help="write a contact-sheet PNG of dataset examples")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--config", default="tiny")
    p.add_argument("--split", default="test")
    p.add_argument("--num", type=int, default=12)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_data_sheet)

    p = data.add_parser("heatmaps", help="run a trained 2D detector over a dataset; store heatmap samples beside it")
    p.add_argument("--detector-workdir", required=True, help="a detector2d training workdir")
    p.add_argument("--data-dir", required=True, help="tfds data folder of the dataset")
    p.add_argument("--config", default="small", help="synthetic_humans config (tiny | small | medium | large); '' to use "
                                                     "--dataset")
    p.add_argument("--dataset", default=None, help="tfds name when --config ''")
    p.add_argument("--splits", nargs="+", default=None,
                   help="default: train validation test test_occluded test_ood")
    p.add_argument("--name", default=None, help="store name: heatmaps_<name> (default: the workdir's folder name)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-samples", type=int, default=150, help="samples per joint")
    p.add_argument("--min-conf", type=float, default=0.05, help="heatmap values below this get probability 0")
    p.add_argument("--step", type=int, default=None, help="detector checkpoint step (default: the latest)")
    p.set_defaults(func=_cmd_data_heatmaps)

    weights = sub.add_parser("weights", help="backbone weights").add_subparsers(dest="weights_command",
                                                                                 required=True)
    p = weights.add_parser("convert", help="convert a PyTorch state_dict (timm / HRNet / ViTPose layouts)")
    p.add_argument("src", help=".pth/.pt (needs torch) or .safetensors (no torch needed)")
    p.add_argument("dst", help="output .npz or .msgpack of flax variables")
    p.add_argument("--arch", required=True, help="backbone name, e.g. resnet50, hrnet_w48, vit_base, vitpose_base")
    p.add_argument("--no-strict", action="store_true", help="fill parameters missing from SRC with a fresh init")
    p.set_defaults(func=_cmd_weights_convert)
    p = weights.add_parser("export", help="write a trained run's encoder (or another sub-module) for "
                                          "--config.init.weights")
    p.add_argument("--workdir", required=True, help="run directory with checkpoints/")
    p.add_argument("dst", help="output .npz or .msgpack")
    p.add_argument("--module", default="backbone", help="top-level sub-module to export (default: backbone); "
                   "comma-separated: several, as the children of one file")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.set_defaults(func=_cmd_weights_export)

    body = sub.add_parser("body", help="body-model files").add_subparsers(dest="body_command", required=True)
    p = body.add_parser("convert", help="convert an official model file into a clean, pickle-free .npz")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=_cmd_body_convert)
    p = body.add_parser("info", help="print a model's sizes and joint names")
    p.add_argument("model")
    p.set_defaults(func=_cmd_body_info)
    p = body.add_parser("coarsen", help="METRO-style coarse meshes with sparse down/up-sampling matrices")
    p.add_argument("model", help="shipped model name or model file")
    p.add_argument("out", help="output .npz")
    p.add_argument("--factors", type=float, nargs="+", default=[4, 4], help="vertex reduction per level")
    p.add_argument("--targets", type=int, nargs="+", default=None, help="vertex counts per level instead")
    p.set_defaults(func=_cmd_body_coarsen)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        if getattr(args, "takes_extra", False):
            args.func(args, extra)
        else:
            args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"hmrjax {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
