"""Export a dataset in the BOP format, the 6D object pose community's layout (bop.felk.cvut.cz).

``OUT/`` holds what the BOP toolkit reads:

- ``camera.json``: the first sample's intrinsics and image size (per image in
  ``scene_camera.json``);
- ``models/obj_NNNNNN.ply`` (millimetres, vertex normals) and ``models/models_info.json``
  (diameter, bounding box); ``models/synthcv_models.json`` says which class, asset and scale each
  model is;
- ``train_pbr/SSSSSS/`` chunks of up to 1,000 images (one chunk per clip for a sequence
  dataset), each with ``rgb/``, ``depth/`` (uint16 PNG, millimetres = value × ``depth_scale``),
  ``mask/`` (amodal silhouette) and ``mask_visib/`` (visible pixels) as
  ``IIIIII_GGGGGG.png``, and ``scene_camera.json``, ``scene_gt.json`` and
  ``scene_gt_info.json``.

A BOP object is one rigid mesh. An instance's model is its mesh as it was rendered, scale
included, so a class drawn at several scales gives one model per scale; instances with the same
geometry share one ``obj_id``. People (posed, not rigid) and distractors are not ground truth;
they stay in the images. The meshes are rebuilt from the spec in the manifest (the scene hash
must match), and the amodal masks rasterized from them with the recorded poses.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_dir, link_or_copy, sha256_chunks, write_json_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import read_depth, read_png, write_png
from synthcv.scene import quat_to_matrix

#: Images per ``train_pbr`` chunk (BlenderProc's and the BOP PBR sets' size).
CHUNK = 1000
#: Depth units tried in order (mm per PNG level): 0.1 mm holds depths up to 6.5 m.
DEPTH_SCALES = (0.1, 1.0, 10.0)
#: More distinct models than this is a dataset BOP was not made for (e.g. a continuous scale).
MAX_MODELS = 10_000


def export_bop(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Path:
    """Write ``dataset`` in the BOP layout into directory ``out`` (default ``DIR/bop``; it must
    not exist or be empty) and return ``out``."""
    from synthcv.spec import SpecError, load_spec

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    final = Path(out) if out is not None else ds.root / "bop"
    raw = ds.manifest.get("spec")
    if not isinstance(raw, dict):
        raise ValueError(f"{ds.root}: manifest.json records no spec to rebuild the models from")
    try:
        spec = load_spec(_in_class_order(raw, ds.classes))
    except SpecError as e:
        raise ValueError(
            f"{ds.root}: the spec in manifest.json cannot rebuild the object models: {e}"
        ) from None
    if spec.sensor is not None and spec.sensor.distortion is not None:
        raise ValueError(
            f"{ds.root}: sensor.distortion: BOP's cameras are pinhole (cam_K only), and this "
            "dataset's images went through a lens distortion"
        )
    if ds.manifest.get("scene_hash") not in (None, spec.scene_hash):
        raise ValueError(
            f"{ds.root}: the spec in manifest.json no longer gives this dataset's scenes (scene "
            "hash differs: another synthcv version?); cannot rebuild the object models"
        )
    positions: Any = range(len(ds))
    if progress and len(ds) > 50:
        from rich.progress import track

        positions = track(positions, description=f"bop {final}", transient=True)
    models = _Models()
    with atomic_dir(final) as tmp:
        chunks: dict[int, dict[str, dict[str, Any]]] = {}
        camera_json = None
        for j in positions:
            chunk, im_id, cam, gt, info = _export_sample(ds, spec, j, tmp, models)
            files = chunks.setdefault(chunk, {"camera": {}, "gt": {}, "info": {}})
            files["camera"][str(im_id)] = cam
            files["gt"][str(im_id)] = gt
            files["info"][str(im_id)] = info
            if camera_json is None:
                camera_json = _camera_json(ds, j, cam["cam_K"])
        for chunk, files in chunks.items():
            folder = tmp / "train_pbr" / f"{chunk:06d}"
            for name, key in (
                ("scene_camera.json", "camera"),
                ("scene_gt.json", "gt"),
                ("scene_gt_info.json", "info"),
            ):
                write_json_atomic(folder / name, files[key])
        models.write(tmp / "models")
        write_json_atomic(tmp / "camera.json", camera_json or {})
    return final


def _export_sample(
    ds: Dataset, spec: Any, j: int, tmp: Path, models: _Models
) -> tuple[int, int, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """One image: its files, and its entries in the chunk's three JSON files."""
    from synthcv.labels import mask_box, silhouettes
    from synthcv.sampler import sample_scene
    from synthcv.scene import Camera

    row = {c: ds.samples.column(c)[j].as_py() for c in ("sample_index", "width", "height")}
    objects = ds.objects_of(j)
    index = int(row["sample_index"])
    if spec.sequence is not None:  # a clip is a BOP scene; its frames are the images
        frames = spec.sequence.frames
        chunk, im_id, scene_index = index // frames, index % frames, index // frames
    else:
        chunk, im_id, scene_index = index // CHUNK, index % CHUNK, index
    K = np.asarray(ds.samples.column("K")[j].as_py(), dtype=np.float64).reshape(3, 3)
    w2c = np.asarray(ds.samples.column("world_to_camera")[j].as_py(), dtype=np.float64)
    w2c = w2c.reshape(4, 4)
    camera = Camera(int(row["width"]), int(row["height"]), K, w2c)
    folder = tmp / "train_pbr" / f"{chunk:06d}"
    for sub in ("rgb", "depth", "mask", "mask_visib"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    name = f"{im_id:06d}"

    rgb = ds.path(j, "rgb")
    if rgb is None:
        raise ValueError(f"{ds.root}: sample {index} has no rgb image")
    link_or_copy(rgb, folder / "rgb" / f"{name}.png")
    depth_path = ds.path(j, "depth")
    depth = None if depth_path is None else read_depth(depth_path)
    scale = _depth_scale(depth)
    if depth is not None:
        levels = np.round(depth.astype(np.float64) * 1000.0 / scale)
        write_png(folder / "depth" / f"{name}.png", levels.clip(0, 65535).astype(np.uint16))
    instance_path = ds.path(j, "instance")
    if instance_path is None:
        raise ValueError(f"{ds.root}: sample {index} has no instance mask (BOP needs masks)")
    instance = read_png(instance_path, expect_uint16=True)

    scene = sample_scene(spec, scene_index)
    by_id = {o.instance_id: o for o in scene.objects}
    targets, placed = [], []
    for o in objects:
        obj = by_id.get(int(o["instance_id"]))
        if obj is None or obj.class_name != o["class_name"]:
            raise ValueError(
                f"{ds.root}: sample {index}: object {o['instance_id']} ({o['class_name']}) is "
                "not in the scene rebuilt from the spec; cannot export its model"
            )
        if o.get("is_distractor") or obj.person is not None:
            continue
        pose = replace(
            obj,
            position=np.asarray(o["position_world"], dtype=np.float64),
            orientation=np.asarray(o["rotation_world"], dtype=np.float64),
        )
        targets.append(o)
        placed.append(pose)
    amodal = silhouettes(placed, camera)
    cam_entry = {
        "cam_K": K.reshape(-1).tolist(),
        "cam_R_w2c": w2c[:3, :3].reshape(-1).tolist(),
        "cam_t_w2c": (w2c[:3, 3] * 1000.0).tolist(),
        "depth_scale": scale,
    }
    gt, info = [], []
    for k, (o, obj) in enumerate(zip(targets, placed, strict=True)):
        obj_id = models.id_of(obj, o)
        r_m2c = quat_to_matrix(np.asarray(o["rotation_cam"], dtype=np.float64))
        gt.append(
            {
                "cam_R_m2c": r_m2c.reshape(-1).tolist(),
                "cam_t_m2c": (np.asarray(o["position_cam"], dtype=np.float64) * 1000.0).tolist(),
                "obj_id": obj_id,
            }
        )
        visible = instance == int(o["instance_id"])
        full = amodal[k] | visible
        write_png(folder / "mask" / f"{name}_{k:06d}.png", full.astype(np.uint8) * 255)
        write_png(folder / "mask_visib" / f"{name}_{k:06d}.png", visible.astype(np.uint8) * 255)
        n_all, n_visib = int(full.sum()), int(visible.sum())
        n_valid = n_all if depth is None else int((full & (depth > 0)).sum())
        info.append(
            {
                "bbox_obj": [int(v) for v in (mask_box(full) or [-1, -1, -1, -1])],
                "bbox_visib": [int(v) for v in (mask_box(visible) or [-1, -1, -1, -1])],
                "px_count_all": n_all,
                "px_count_valid": n_valid,
                "px_count_visib": n_visib,
                "visib_fract": n_visib / n_all if n_all else 0.0,
            }
        )
    return chunk, im_id, cam_entry, gt, info


class _Models:
    """Distinct rigid meshes seen so far, numbered from 1 in order of first appearance."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.meshes: list[Any] = []
        self.about: list[dict[str, Any]] = []

    def id_of(self, obj: Any, row: dict[str, Any]) -> int:
        mesh = obj.mesh
        key = sha256_chunks(
            [
                np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes(),
                np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes(),
            ]
        )
        if key not in self.ids:
            if len(self.meshes) >= MAX_MODELS:
                raise ValueError(
                    f"more than {MAX_MODELS} distinct object models (class {row['class_name']!r}"
                    " changes shape or scale per sample?): BOP wants a fixed set of rigid models"
                )
            self.ids[key] = len(self.meshes) + 1
            self.meshes.append(mesh)
            self.about.append(
                {
                    "class_name": row["class_name"],
                    "class_id": int(row["class_id"]),
                    "asset": row.get("asset"),
                    "scale": row.get("scale"),
                }
            )
        return self.ids[key]

    def write(self, folder: Path) -> None:
        import trimesh
        from scipy.spatial import ConvexHull
        from scipy.spatial.distance import pdist

        folder.mkdir(parents=True, exist_ok=True)
        info, about = {}, {}
        for obj_id, (mesh, extra) in enumerate(zip(self.meshes, self.about, strict=True), 1):
            mm = np.asarray(mesh.vertices, dtype=np.float64) * 1000.0
            tm = trimesh.Trimesh(mm, np.asarray(mesh.faces), process=False)
            data = trimesh.exchange.ply.export_ply(tm, encoding="binary", vertex_normal=True)
            (folder / f"obj_{obj_id:06d}.ply").write_bytes(data)
            try:
                hull = mm[ConvexHull(mm).vertices]
            except Exception:  # flat or degenerate: every vertex
                hull = mm
            lo, hi = mm.min(axis=0), mm.max(axis=0)
            info[str(obj_id)] = {
                "diameter": float(pdist(hull).max()) if len(hull) > 1 else 0.0,
                "min_x": float(lo[0]),
                "min_y": float(lo[1]),
                "min_z": float(lo[2]),
                "size_x": float(hi[0] - lo[0]),
                "size_y": float(hi[1] - lo[1]),
                "size_z": float(hi[2] - lo[2]),
            }
            about[str(obj_id)] = extra
        write_json_atomic(folder / "models_info.json", info)
        write_json_atomic(folder / "synthcv_models.json", about)


def _in_class_order(raw: dict[str, Any], classes: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's spec with ``objects.classes`` back in class-id order: manifest.json is
    written with sorted keys, and the order of the classes decides their ids and the draws."""
    objects = raw.get("objects")
    if not isinstance(objects, dict) or not isinstance(objects.get("classes"), dict):
        return raw
    by_name = objects["classes"]
    order = [c["name"] for c in sorted(classes, key=lambda c: c["id"]) if c["name"] in by_name]
    order += [n for n in by_name if n not in order]
    return {**raw, "objects": {**objects, "classes": {n: by_name[n] for n in order}}}


def _camera_json(ds: Dataset, j: int, cam_K: list[float]) -> dict[str, Any]:
    K = np.asarray(cam_K).reshape(3, 3)
    return {
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "depth_scale": DEPTH_SCALES[0],
        "fx": float(K[0, 0]),
        "fy": float(K[1, 1]),
        "height": int(ds.samples.column("height")[j].as_py()),
        "width": int(ds.samples.column("width")[j].as_py()),
    }


def _depth_scale(depth: np.ndarray | None) -> float:
    """The finest unit (mm per PNG level) that holds the image's farthest depth."""
    far_mm = 0.0 if depth is None or depth.size == 0 else float(np.max(depth)) * 1000.0
    for scale in DEPTH_SCALES:
        if far_mm / scale <= 65535:
            return scale
    raise ValueError(f"depth up to {far_mm / 1000:.0f} m does not fit a 16-bit BOP depth image")
