"""Numerical parity of hmrjax backbones against timm (random init, eval mode, float32).

Needs torch + timm, which are NOT project dependencies (timm needs torchvision, whose PyPI wheels link
CUDA torch). A throwaway environment that worked (CPU-only, no CUDA downloads):

    python -m venv /work/timm-venv
    # reuse the project's torch==2.13.0+cpu, jax, numpy instead of reinstalling them:
    python -c "import site; print(site.getsitepackages()[0])" > \\
        /work/timm-venv/lib/python3.11/site-packages/zz_project_venv.pth     # run with the project venv
    /work/timm-venv/bin/pip install --no-deps timm==1.0.31 torchvision==0.28.0
    # torchvision 0.28.0's _C.so needs libc10_cuda.so (CUDA torch) and its import then fails in
    # torchvision/_meta_registrations.py ("operator torchvision::nms does not exist"). timm only uses
    # torchvision.transforms, so blank that one file in the throwaway venv:
    echo "# blanked" > /work/timm-venv/lib/python3.11/site-packages/torchvision/_meta_registrations.py
    /work/timm-venv/bin/python tools/check_torch_parity.py

Every BatchNorm gets random weight/bias/running stats (timm zero-initialises the last BN of each residual
block, which would hide the residual branch), inputs are N(0, 1). Reports max|jax - torch| / max|torch|
and the relative L2 error per output; exits non-zero if any exceeds --tol (default 1e-4).

Recorded run (2026-11-21, torch 2.13.0+cpu, timm 1.0.31, jax 0.10.2 CPU, batch 2), max|d|/max|ref|:
resnet50 features 1.9e-6, logits 6.4e-7; hrnet_w48 branches (224) <= 2.0e-6, (256x192) <= 2.2e-6,
classification logits 1.1e-6; vit_base_patch16_224 tokens 1.2e-6, cls 1.3e-6, logits 9.7e-7,
256x192 with resampled pos_embed 1.1e-6.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def _randomise_bn(model, torch, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            n = mod.num_features
            mod.weight.data = 1.0 + 0.2 * torch.randn(n, generator=g)
            mod.bias.data = 0.2 * torch.randn(n, generator=g)
            mod.running_mean.data = 0.2 * torch.randn(n, generator=g)
            mod.running_var.data = 0.5 + torch.rand(n, generator=g)


def _err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: hmrjax {a.shape} vs torch {b.shape}")
    return {"max_abs_over_max_ref": float(np.abs(a - b).max() / np.abs(b).max()),
            "rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)), "shape": list(b.shape)}


def _nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def run(tol: float, batch: int, out_json: str | None, only=None):
    import timm
    import torch

    from hmrjax.nn.backbones import convert_state_dict, create

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    results = {"torch": torch.__version__, "timm": timm.__version__, "jax": jax.__version__, "checks": {}}

    def convert(model_j, model_t):
        sd = {k: v for k, v in model_t.state_dict().items()}
        variables, report = convert_state_dict(model_j, sd)
        return jax.tree.map(jnp.asarray, variables), report

    def check(name, model_t, model_j, shape, compare):
        _randomise_bn(model_t, torch)
        model_t.eval()
        x = rng.standard_normal((batch, 3) + shape).astype(np.float32)
        t0 = time.time()
        with torch.no_grad():
            out_t = model_t(torch.from_numpy(x)) if not hasattr(model_t, "_parity_forward") else \
                model_t._parity_forward(torch.from_numpy(x))
        variables, report = convert(model_j, model_t)
        out_j = jax.jit(lambda v, x: model_j.apply(v, x, train=False))(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
        errs = compare(out_j, out_t)
        results["checks"][name] = {"input": [batch, 3, *shape], "filled": len(report.filled),
                                   "dropped": len(report.dropped), "seconds": round(time.time() - t0, 1), **errs}
        worst = max(e["max_abs_over_max_ref"] for e in errs.values())
        print(f"{name:40s} worst max|d|/max|ref| = {worst:.2e}  " +
              "  ".join(f"{k}: {v['max_abs_over_max_ref']:.1e}" for k, v in errs.items()), flush=True)
        return worst

    def resnet50():
        m = timm.create_model("resnet50", pretrained=False)
        m._parity_forward = lambda x: (m.forward_features(x), m(x))
        yield check("resnet50 (224)", m, create("resnet50", num_classes=1000), (224, 224),
                    lambda j, t: {"features": _err(j["features"], _nhwc(t[0])),
                                  "logits": _err(j["logits"], t[1].numpy())})

    def hrnet_w48():
        # branches (features_only, feature_location=''): stem + four branches, the layout pose models use
        m = timm.create_model("hrnet_w48", pretrained=False, features_only=True, feature_location="")
        yield check("hrnet_w48 branches (224)", m, create("hrnet_w48"), (224, 224),
                    lambda j, t: {"stem": _err(j["stem"], _nhwc(t[0])),
                                  **{f"branch{i}": _err(j["branches"][i], _nhwc(t[i + 1])) for i in range(4)}})
        yield check("hrnet_w48 branches (256x192)", m, create("hrnet_w48"), (256, 192),
                    lambda j, t: {f"branch{i}": _err(j["branches"][i], _nhwc(t[i + 1])) for i in range(4)})
        # full classification model (incre + downsamp + final layer + classifier)
        m = timm.create_model("hrnet_w48", pretrained=False)
        yield check("hrnet_w48 classification (224)", m, create("hrnet_w48", head="classification"), (224, 224),
                    lambda j, t: {"logits": _err(j["logits"], t.numpy())})

    def vit_base():
        m = timm.create_model("vit_base_patch16_224", pretrained=False)
        m._parity_forward = lambda x: (m.forward_features(x), m(x))
        yield check("vit_base_patch16_224 (224)", m, create("vit_base_patch16_224", num_classes=1000), (224, 224),
                    lambda j, t: {"patch_tokens": _err(j["tokens"], t[0][:, 1:].numpy()),
                                  "cls": _err(j["cls"], t[0][:, 0].numpy()),
                                  "logits": _err(j["logits"], t[1].numpy())})
        # ViTPose-style 256x192 input: timm's dynamic_img_size resamples pos_embed (bicubic, antialias)
        m = timm.create_model("vit_base_patch16_224", pretrained=False, dynamic_img_size=True)
        m._parity_forward = m.forward_features
        yield check("vit_base_patch16_224 (256x192, interp)", m, create("vit_base_patch16_224"), (256, 192),
                    lambda j, t: {"patch_tokens": _err(j["tokens"], t[:, 1:].numpy())})

    families = {"resnet": resnet50, "hrnet": hrnet_w48, "vit": vit_base}
    worst = [w for fam, gen in families.items() if not only or fam in only for w in gen()]
    results["tol"] = tol
    results["worst"] = max(worst)
    if out_json:
        Path(out_json).write_text(json.dumps(results, indent=1))
    print(f"worst over all checks: {max(worst):.2e} (tol {tol:.0e})")
    return max(worst) <= tol


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the numbers here")
    ap.add_argument("--only", nargs="*", choices=["resnet", "hrnet", "vit"], help="run only these families")
    args = ap.parse_args(argv)
    sys.exit(0 if run(args.tol, args.batch, args.json, args.only) else 1)


if __name__ == "__main__":
    main()
