"""Every Blender-version difference synthcv relies on, in one place (Blender 4.2 … 5.0).

Kubric pins one Blender build and breaks on the next; synthcv instead funnels each API that
moved between 4.x and 5.0 through a function here, so a new ``bpy`` release means editing
this module only. Nothing here imports ``bpy`` at module import: call :func:`import_bpy`.

What moved, and where it is handled:
- multilayer EXR output: 5.0 split ``file_format='OPEN_EXR_MULTILAYER'`` into
  ``media_type='MULTI_LAYER_IMAGE'`` + format (:func:`set_multilayer_exr`);
- pass names in the written EXR: ``Depth``/``Z``, ``Object Index``/``IndexOB``
  (:data:`PASS_NAMES`); 5.0 writes each pass as its own EXR part, 4.x one part
  (:func:`read_multilayer_exr` reads both);
- ``Material.use_nodes``/``World.use_nodes`` are deprecated in 5.0, where node trees always
  exist (:func:`enable_nodes`);
- smooth shading with sharp edges needs ``use_auto_smooth`` before 4.1 (:func:`set_shading`);
- the OpenImageIO/OpenColorIO Python bindings ship inside the ``bpy`` wheel but are not on
  ``sys.path`` (:func:`oiio`, :func:`ocio`).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

import numpy as np

ENGINE = "CYCLES"

#: Candidate pass names in a written multilayer EXR, newest first.
PASS_NAMES: dict[str, tuple[str, ...]] = {
    "combined": ("Combined",),
    "depth": ("Depth", "Z"),
    "normal": ("Normal",),
    "index": ("Object Index", "IndexOB"),
}

#: Cycles writes this depth where a camera ray hits nothing (the world).
DEPTH_MISS_THRESHOLD = 1e9

_bpy: ModuleType | None = None


def import_bpy() -> ModuleType:
    """Import ``bpy`` once per process, with a clear message when it is not installed."""
    global _bpy
    if _bpy is None:
        try:
            import bpy
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "renderer.backend 'cycles' needs the Blender Python module: "
                "pip install 'synthcv[cycles]' (bpy 5.0.x, Python 3.11)"
            ) from e
        _bpy = bpy
    return _bpy


def version_tuple() -> tuple[int, int, int]:
    return tuple(import_bpy().app.version)  # type: ignore[return-value]


def version_string() -> str:
    return str(import_bpy().app.version_string)


def _bundled_site_packages() -> str:
    bpy = import_bpy()
    major, minor = sys.version_info[:2]
    return os.path.join(
        bpy.utils.resource_path("LOCAL"), "python", "lib", f"python{major}.{minor}", "site-packages"
    )


def _bundled(module: str) -> ModuleType:
    try:
        return __import__(module)
    except ImportError:
        path = _bundled_site_packages()
        if path not in sys.path:
            sys.path.append(path)
        try:
            return __import__(module)
        except ImportError as e:
            raise ImportError(f"{module} is not bundled with this bpy (looked in {path})") from e


def oiio() -> ModuleType:
    """OpenImageIO bindings (bundled with bpy): reads the multilayer EXR Blender writes."""
    return _bundled("OpenImageIO")


def ocio() -> ModuleType:
    """OpenColorIO bindings (bundled with bpy): applies Blender's own view transform."""
    return _bundled("PyOpenColorIO")


def ocio_config_path() -> str:
    return os.path.join(
        import_bpy().utils.resource_path("LOCAL"), "datafiles", "colormanagement", "config.ocio"
    )


def set_multilayer_exr(image_settings: Any) -> None:
    """Make the render output one float32 multilayer EXR holding every enabled pass."""
    if hasattr(image_settings, "media_type"):  # 5.0+
        image_settings.media_type = "MULTI_LAYER_IMAGE"
    image_settings.file_format = "OPEN_EXR_MULTILAYER"
    image_settings.color_depth = "32"  # ids and depth must stay exact: no half floats
    image_settings.exr_codec = "NONE"  # fastest to write and read; the file lives in tmpfs


def enable_nodes(idblock: Any) -> None:
    """Ensure a material/world has a node tree (always true, and deprecated, in 5.0)."""
    if idblock.node_tree is None or version_tuple() < (5, 0, 0):
        idblock.use_nodes = True


def set_shading(mesh: Any, sharp_edges: np.ndarray) -> None:
    """Smooth faces, split along ``sharp_edges`` (bool per edge): Blender's 'smooth by angle'."""
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    attr = mesh.attributes.get("sharp_edge") or mesh.attributes.new("sharp_edge", "BOOLEAN", "EDGE")
    attr.data.foreach_set("value", sharp_edges.astype(bool))
    if version_tuple() < (4, 1, 0):  # sharp edges only split normals with auto smooth
        mesh.use_auto_smooth = True
        mesh.auto_smooth_angle = np.pi


def set_loop_starts(mesh: Any, n_faces: int, corners: int = 3) -> None:
    """Polygon → loop offsets; ``loop_total`` is derived (read-only) since 4.0."""
    mesh.polygons.foreach_set(
        "loop_start", np.arange(0, n_faces * corners, corners, dtype=np.int32)
    )
    if version_tuple() < (4, 0, 0):
        mesh.polygons.foreach_set("loop_total", np.full(n_faces, corners, dtype=np.int32))


def mix_color_node(nodes: Any, blend_type: str) -> tuple[Any, Any, Any, Any, Any]:
    """A colour mix node: (node, factor input, A input, B input, result output)."""
    node = nodes.new("ShaderNodeMix")
    node.data_type = "RGBA"
    node.blend_type = blend_type
    ins = {s.identifier: s for s in node.inputs}
    outs = {s.identifier: s for s in node.outputs}
    return node, ins["Factor_Float"], ins["A_Color"], ins["B_Color"], outs["Result_Color"]


def read_multilayer_exr(path: str, layer: str | None = None) -> dict[str, np.ndarray]:
    """All passes of one view layer in a multilayer EXR, as ``{pass: (H, W, C) float32}``.

    Rows are top-down (EXR order). Handles both single-part (4.x) and one-part-per-pass (5.0)
    files; channel names are ``<layer>.<pass>.<channel>``.
    """
    OIIO = oiio()
    # OpenEXR's thread pool costs more than it saves on these small uncompressed files in
    # tmpfs: measured on a 256² four-pass render, 2 ms a read with one thread, 16-29 ms with
    # the default pool (benchmarks/render_cycles.py prints the effect on the whole sample)
    if OIIO.get_int_attribute("exr_threads") != 1:
        OIIO.attribute("exr_threads", 1)
    inp = OIIO.ImageInput.open(path)
    if inp is None:
        raise RuntimeError(f"cannot open render output {path}: {OIIO.geterror()}")
    channels: dict[str, list[tuple[str, np.ndarray]]] = {}
    try:
        sub = 0
        while inp.seek_subimage(sub, 0):
            spec = inp.spec()
            data = inp.read_image(sub, 0, 0, spec.nchannels, "float")
            if data is None:
                raise RuntimeError(f"cannot read part {sub} of {path}: {inp.geterror()}")
            data = np.asarray(data, dtype=np.float32).reshape(spec.height, spec.width, -1)
            for k, full in enumerate(spec.channelnames):
                parts = full.split(".")
                if len(parts) < 3:
                    continue
                lay, pas, ch = ".".join(parts[:-2]), parts[-2], parts[-1]
                if layer is not None and lay != layer:
                    continue
                channels.setdefault(pas, []).append((ch, data[..., k]))
            sub += 1
    finally:
        inp.close()
    order = "RGBAXYZUVW"
    return {
        pas: np.stack(
            [a for _, a in sorted(chs, key=lambda c: order.find(c[0]) if c[0] in order else 99)],
            axis=-1,
        )
        for pas, chs in channels.items()
    }


def find_pass(passes: dict[str, np.ndarray], kind: str) -> np.ndarray:
    """The pass of a kind ('combined', 'depth', 'normal', 'index') under whatever name."""
    for name in PASS_NAMES[kind]:
        if name in passes:
            return passes[name]
    raise RuntimeError(
        f"render output lacks the {kind} pass (looked for {PASS_NAMES[kind]}, "
        f"found {sorted(passes)}): unsupported Blender {version_string()}?"
    )
