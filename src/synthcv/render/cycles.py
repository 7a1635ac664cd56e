"""Photoreal backend: Blender Cycles through the ``bpy`` package, every label from one render.

Why this shape:
- ``bpy`` is imported once per worker (in :class:`CyclesRenderer`), the Blender scene is set up
  once and only the per-sample datablocks (objects, meshes, materials) are replaced per sample:
  no factory reset, no module reload.
- One Cycles render per sample writes Combined, Depth, Normal and Object Index passes into one
  float32 multilayer EXR in a private tmpfs directory, read back with the OpenImageIO bindings
  that ship inside ``bpy``. No second render, no second view layer.
- Labels are converted with array operations into the project's conventions: planar camera z in
  metres (0 = world), OpenCV camera-frame unit normals, uint16 instance ids (0 = background and
  ground). Cycles writes depth and object index from the *first* sample of a pixel only (never
  averaged), so ids are exact; with the default ``filter_width`` (0.01 px) every sample passes
  through the pixel centre, so labels sit exactly where ``K`` puts pixel centres.

Appearance mapping (documented in docs/cycles.md): material colours are sRGB (as displayed by
the tiny backend) and become linear albedo; the sun's strength is ``0.7 * intensity * pi`` W/m²
so that a white Lambertian surface facing the sun has linear radiance ``0.7 * intensity`` (tiny's
diffuse coefficient); ``ambient`` is the strength of a uniform white world, so an unoccluded white
surface receives ``ambient``. Camera rays that hit nothing see ``Scene.background`` (sRGB)
instead of the ambient world.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from synthcv.render import Backend, BackendOptions
from synthcv.render import _blender_compat as compat
from synthcv.scene import Camera, Ground, Material, Mesh, RenderResult, Scene, pose_matrix

#: Faces meeting at a larger angle than this get a hard edge (Blender's "smooth by angle").
SHARP_ANGLE_DEG = 30.0
#: Procedural patterns at ``texture_scale`` 1: objects get 8 checker cells across their bounding
#: box (noise of the same scale); the ground gets 4 cells per metre.
PROCEDURAL_SCALE = 8.0
GROUND_PROCEDURAL_SCALE = 4.0
#: A white surface facing the sun receives ``SUN_SCALE * intensity``: the tiny backend's diffuse
#: coefficient, so light factors mean the same in both backends.
SUN_SCALE = 0.7
#: Importance-map resolution for an environment map (world.hdri), None: Blender's automatic
#: choice; see _set_world_map.
WORLD_MAP_RESOLUTION: int | None = 512
#: Blender's OpenCV flip: OpenCV camera axes (x right, y down, z fwd) = Blender's (x, -y, -z).
_CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])


#: The renderer whose set-up is in Blender's (process-global) state right now.
_active: weakref.ref | None = None


class CyclesRenderError(RuntimeError):
    """A sample failed inside Blender; the message names the sample index."""


def _tmp_root() -> str | None:
    """tmpfs when available: the per-sample EXR never touches a disk."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def blender_camera_params(camera: Camera) -> dict[str, float]:
    """Blender camera settings whose projection equals ``camera.K`` exactly.

    Horizontal sensor fit with a 36 mm sensor: ``lens = fx * 36 / W``. Blender puts the optical
    axis at the image centre (OpenCV pixel ``(W-1)/2, (H-1)/2``); shifts are in units of the
    width (the fit dimension) and move the view, i.e. the principal point the other way in x.
    """
    K = np.asarray(camera.K, dtype=np.float64)
    w, h = int(camera.width), int(camera.height)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if w <= 0 or h <= 0:
        raise ValueError(f"camera: width/height must be positive, got {w}x{h}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"camera.K: focal lengths must be positive, got fx={fx}, fy={fy}")
    if abs(fx - fy) > 1e-6 * fx or abs(K[0, 1]) > 1e-9:
        raise ValueError(
            f"camera.K: the cycles backend needs square pixels and no skew, got fx={fx}, "
            f"fy={fy}, skew={K[0, 1]}"
        )
    sensor = 36.0
    return {
        "sensor_width": sensor,
        "lens": fx * sensor / w,
        "shift_x": ((w - 1) / 2.0 - cx) / w,
        "shift_y": (cy - (h - 1) / 2.0) / w,
    }


def blender_camera_matrix(world_to_camera: np.ndarray) -> np.ndarray:
    """Blender camera object→world matrix from an OpenCV world→camera matrix."""
    return np.linalg.inv(np.asarray(world_to_camera, dtype=np.float64)) @ _CV_TO_BLENDER


def sun_rotation(direction: np.ndarray) -> np.ndarray:
    """3x3 rotation whose +z is ``direction`` (a Blender sun shines along its local -z)."""
    z = np.asarray(direction, dtype=np.float64)
    n = np.linalg.norm(z)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"sun.direction must be a non-zero vector, got {tuple(direction)}")
    z = z / n
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def sharp_edges(face_normals: np.ndarray, loop_edges: np.ndarray, n_edges: int) -> np.ndarray:
    """Bool per edge: True where the two faces meeting there differ by > SHARP_ANGLE_DEG.

    ``loop_edges`` holds the edge index of each corner of each triangle (F*3). Boundary and
    non-manifold edges count as sharp (they never need smoothing across).
    """
    faces_of_loop = np.repeat(np.arange(len(face_normals)), 3)
    order = np.argsort(loop_edges, kind="stable")
    es, fs = loop_edges[order], faces_of_loop[order]
    sharp = np.ones(n_edges, dtype=bool)
    if len(es) == 0:
        return sharp
    starts = np.flatnonzero(np.r_[True, es[1:] != es[:-1]])
    counts = np.diff(np.r_[starts, len(es)])
    two = starts[counts == 2]
    cos = np.einsum("ij,ij->i", face_normals[fs[two]], face_normals[fs[two + 1]])
    sharp[es[two]] = cos < math.cos(math.radians(SHARP_ANGLE_DEG))
    return sharp


def _check_mesh(mesh: Mesh, where: str) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces)
    if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
        raise ValueError(f"{where}: mesh {mesh.source!r} vertices must be finite (V, 3)")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"{where}: mesh {mesh.source!r} faces must be a non-empty (F, 3) array")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"{where}: mesh {mesh.source!r} face index out of range 0..{len(v) - 1}")
    if mesh.uv is not None and np.asarray(mesh.uv).shape != (len(v), 2):
        raise ValueError(f"{where}: mesh {mesh.source!r} uv must be (V, 2) = ({len(v)}, 2)")
    return v, f.astype(np.int32)


class CyclesOptions(BackendOptions):
    """``renderer: {backend: cycles, samples: 32, denoise: true, ...}`` (see CyclesRenderer)."""

    threads_option: ClassVar[str | None] = "threads"

    backend: Literal["cycles"] = "cycles"
    samples: int = Field(16, ge=1, le=65536, description="path-tracing samples per pixel")
    denoise: bool = Field(False, description="OpenImageDenoise on the RGB (labels never)")
    threads: int = Field(
        0, ge=0, le=1024, description="CPU threads per worker (0 = share the cores)"
    )
    filter_width: float = Field(
        0.01, ge=0.01, le=10.0, description="pixel filter width, px (0.01: labels at centres)"
    )
    view_transform: str = Field(
        "Standard",
        max_length=64,
        description="Blender view transform for RGB (Standard keeps colours)",
    )
    pair_samples: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="with outputs.pairs: also render at this many samples, not denoised, as "
        "the noisy image (clean: the render at samples)",
    )

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset({"pair_samples"})


def _blender_version() -> str:
    from importlib.metadata import version  # the bpy wheel's version is Blender's

    return f"blender-{version('bpy')}"


#: Pixel filter widths below this (px) keep every sample near the pixel centre.
CENTRE_FILTER = 0.5


class CyclesRenderer:
    """Renders Scenes with Cycles on the CPU; one instance per worker process.

    ``samples``: path-traced samples per pixel. ``denoise``: OpenImageDenoise on the RGB (labels
    are never denoised). ``threads``: Cycles threads (0 = all cores; set it so workers × threads
    fits the machine). ``filter_width``: pixel filter width in pixels; the default 0.01 keeps
    every label at the pixel centre, larger (Blender's 1.5) anti-aliases RGB while labels then
    come from a first sample jittered inside the pixel. ``view_transform``: Blender's view
    transform for RGB ("Standard" keeps colours as given; "AgX" for a filmic look).

    Blender's state is process-global: creating a renderer resets it (factory settings), and
    when several renderers live in one process each re-takes the scene on its next render.
    """

    name = "cycles"

    def __init__(
        self,
        samples: int = 16,
        denoise: bool = False,
        threads: int = 0,
        filter_width: float = 0.01,
        view_transform: str = "Standard",
        pair_samples: int | None = None,
        **ignored: Any,
    ) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"renderer.samples: expected an integer >= 1, got {samples!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"renderer.threads: expected an integer >= 0, got {threads!r}")
        if not 0.01 <= float(filter_width) <= 10.0:
            raise ValueError(f"renderer.filter_width: expected 0.01..10 px, got {filter_width!r}")
        self.samples = samples
        self.denoise = bool(denoise)
        self.threads = threads
        self.filter_width = float(filter_width)
        self.view_transform = view_transform
        if pair_samples is not None and (
            isinstance(pair_samples, bool) or not isinstance(pair_samples, int) or pair_samples < 1
        ):
            raise ValueError(
                f"renderer.pair_samples: expected an integer >= 1, got {pair_samples!r}"
            )
        self.pair_samples = pair_samples
        self._bpy = compat.import_bpy()
        self.version = f"blender-{compat.version_string()}"
        self._tmp = tempfile.mkdtemp(prefix="synthcv-cycles-", dir=_tmp_root())
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._exr = os.path.join(self._tmp, "render.exr")
        self._log = os.path.join(self._tmp, "blender.log")
        self._per_sample: list[Any] = []
        self._closed = False
        self._activate()
        self._display = self._make_display_transform()

    def _activate(self) -> None:
        """Own Blender's global scene: set it up again if another renderer took it over."""
        global _active
        if _active is not None and _active() is self:
            return
        self._per_sample = []  # another renderer's factory reset already freed them
        self._setup_scene()
        _active = weakref.ref(self)

    # ------------------------------------------------------------------ set-up (once per worker)
    def _setup_scene(self) -> None:
        bpy = self._bpy
        with self._quiet():
            bpy.ops.wm.read_factory_settings(use_empty=True)
        sc = bpy.context.scene
        self._scene = sc
        sc.render.engine = compat.ENGINE
        cy = sc.cycles
        cy.device = "CPU"
        cy.samples = self.samples
        cy.use_denoising = self.denoise
        # OpenImageDenoise's guides (albedo, normal) are noise-free when every sample goes
        # through the pixel centre: prefiltering them only blurs texture and edges. Measured
        # on benchmarks/cycles_quality.py's scenes (128², 16 samples): +6.3 dB on tabletops,
        # +1.3 dB under HDRIs against the "Accurate" prefilter, and faster. Wider filters
        # jitter the guides: there Blender's prefilter stays.
        cy.denoising_prefilter = "NONE" if self.filter_width < CENTRE_FILTER else "ACCURATE"
        cy.use_animated_seed = False
        cy.pixel_filter_type = "BLACKMAN_HARRIS"
        cy.filter_width = self.filter_width
        r = sc.render
        r.resolution_percentage = 100
        r.pixel_aspect_x = r.pixel_aspect_y = 1.0
        r.film_transparent = False
        r.use_compositing = False
        r.use_sequencer = False
        r.use_file_extension = False
        r.use_persistent_data = False
        r.threads_mode = "FIXED" if self.threads else "AUTO"
        if self.threads:
            r.threads = self.threads
        compat.set_multilayer_exr(r.image_settings)
        r.filepath = self._exr
        try:
            sc.view_settings.view_transform = self.view_transform
        except TypeError as e:
            raise ValueError(f"renderer.view_transform: {e}") from e
        sc.view_settings.look = "None"
        sc.view_settings.exposure = 0.0
        sc.view_settings.gamma = 1.0
        vl = sc.view_layers[0]
        self._layer = vl.name
        vl.use_pass_combined = True
        vl.use_pass_z = True
        vl.use_pass_normal = True
        vl.use_pass_object_index = True

        cam_data = bpy.data.cameras.new("synthcv-camera")
        cam_data.sensor_fit = "HORIZONTAL"
        self._camera = bpy.data.objects.new("synthcv-camera", cam_data)
        sc.collection.objects.link(self._camera)
        sc.camera = self._camera

        sun_data = bpy.data.lights.new("synthcv-sun", type="SUN")
        sun_data.angle = math.radians(0.5)
        self._sun = bpy.data.objects.new("synthcv-sun", sun_data)
        sc.collection.objects.link(self._sun)

        self._setup_world()

    def _setup_world(self) -> None:
        """Uniform white world of strength ``ambient``; camera rays see ``background`` instead."""
        bpy = self._bpy
        world = bpy.data.worlds.new("synthcv-world")
        compat.enable_nodes(world)
        self._scene.world = world
        nodes, links = world.node_tree.nodes, world.node_tree.links
        nodes.clear()
        ambient = nodes.new("ShaderNodeBackground")
        ambient.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        seen = nodes.new("ShaderNodeBackground")
        seen.inputs["Strength"].default_value = 1.0
        path = nodes.new("ShaderNodeLightPath")
        mix = nodes.new("ShaderNodeMixShader")
        out = nodes.new("ShaderNodeOutputWorld")
        links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        links.new(ambient.outputs["Background"], mix.inputs[1])
        links.new(seen.outputs["Background"], mix.inputs[2])
        links.new(mix.outputs["Shader"], out.inputs["Surface"])
        self._world_ambient = ambient.inputs["Strength"]
        self._world_seen = seen.inputs["Color"]
        self._world_seen_strength = seen.inputs["Strength"]
        self._world_ambient_color = ambient.inputs["Color"]
        # the environment map (world.hdri), linked in per sample when the scene has one
        coords = nodes.new("ShaderNodeTexCoord")
        self._world_mapping = nodes.new("ShaderNodeMapping")
        self._world_texture = nodes.new("ShaderNodeTexEnvironment")
        links.new(coords.outputs["Generated"], self._world_mapping.inputs["Vector"])
        links.new(self._world_mapping.outputs["Vector"], self._world_texture.inputs["Vector"])
        self._world_links = links

    def _make_display_transform(self) -> Any:
        """Blender's own linear → display transform (OpenColorIO, Blender's config)."""
        OCIO = compat.ocio()
        config = OCIO.Config.CreateFromFile(compat.ocio_config_path())
        display = self._scene.display_settings.display_device
        proc = config.getProcessor(
            OCIO.ROLE_SCENE_LINEAR, display, self.view_transform, OCIO.TRANSFORM_DIR_FORWARD
        )
        return proc.getDefaultCPUProcessor()

    # ------------------------------------------------------------------ per sample
    def render(self, scene: Scene) -> RenderResult:
        """Render one Scene; any failure raises CyclesRenderError naming the sample index."""
        if self._closed:
            raise CyclesRenderError("CyclesRenderer is closed")
        try:
            self._activate()
            self._clear()
            self._build(scene)
            passes = self._render_passes()
            result = self._convert(passes, scene)
            if self.pair_samples is not None:
                result.extra["rgb_low"] = self._low_sample_rgb(scene)
            return result
        except Exception as e:
            raise CyclesRenderError(
                f"cycles backend: sample {scene.index} (seed {scene.seed}) failed: {e}"
            ) from e

    def _clear(self) -> None:
        """Drop the previous sample's datablocks; images stay cached for reuse.

        Besides our own list, anything linked to the scene but the camera and the sun, and
        meshes and materials no object uses, go too: a datablock created just before an
        interruption (and not yet listed) must not appear in the next sample.
        """
        bpy = self._bpy
        if self._per_sample:
            bpy.data.batch_remove(self._per_sample)
            self._per_sample = []
        keep = {self._camera.name, self._sun.name}
        strays = [ob for ob in self._scene.collection.objects if ob.name not in keep]
        strays += [
            d for d in (*bpy.data.meshes, *bpy.data.materials, *bpy.data.lights) if d.users == 0
        ]
        if strays:
            bpy.data.batch_remove(strays)
        if len(bpy.data.images) > 64:  # bound memory with many distinct user textures
            bpy.data.batch_remove([im for im in bpy.data.images if im.users == 0])

    def _build(self, scene: Scene) -> None:
        sc = self._scene
        cam = scene.camera
        sc.render.resolution_x = int(cam.width)
        sc.render.resolution_y = int(cam.height)
        sc.cycles.seed = int(scene.seed) % 2_147_483_647
        params = blender_camera_params(cam)
        cd = self._camera.data
        cd.sensor_width = params["sensor_width"]
        cd.lens = params["lens"]
        cd.shift_x = params["shift_x"]
        cd.shift_y = params["shift_y"]
        if not 0 < cam.near < cam.far:
            raise ValueError(f"camera: need 0 < near < far, got near={cam.near}, far={cam.far}")
        cd.clip_start = float(cam.near)
        cd.clip_end = float(cam.far)
        self._camera.matrix_world = _to_matrix(blender_camera_matrix(cam.world_to_camera))

        sun = scene.sun
        if sun.intensity < 0:
            raise ValueError(f"sun.intensity must be >= 0, got {sun.intensity}")
        rot = np.eye(4)
        rot[:3, :3] = sun_rotation(np.asarray(sun.direction))
        self._sun.matrix_world = _to_matrix(rot)
        self._sun.data.energy = SUN_SCALE * float(sun.intensity) * math.pi
        self._sun.data.color = tuple(float(c) for c in sun.color)
        if scene.ambient < 0:
            raise ValueError(f"ambient must be >= 0, got {scene.ambient}")
        self._world_ambient.default_value = float(scene.ambient)
        bg = srgb_to_linear(np.asarray(scene.background, dtype=np.float64))
        self._world_seen.default_value = (*(float(c) for c in bg), 1.0)
        self._world_seen_strength.default_value = 1.0
        self._set_world_map(scene)
        for k, lamp in enumerate(scene.lamps):
            self._add_lamp(k, lamp)

        if scene.ground.enabled:
            self._add_ground(scene.ground)
        max_index = 32767
        # room parts take the object indices after the objects': _convert splits them off
        if len(scene.objects) + len(scene.stuff) > max_index:
            raise ValueError(f"at most {max_index} objects and room parts per scene")
        for k, part in enumerate(scene.stuff):
            ob = self._add_mesh_object(
                f"room-{part.name}",
                part.mesh,
                part.material,
                f"room part {part.name}",
                len(scene.objects) + 1 + k,
            )
            ob.matrix_world = _to_matrix(pose_matrix(part.position, part.orientation))
        for obj in scene.objects:
            where = f"object {obj.instance_id} ({obj.mesh.source})"
            if not 1 <= int(obj.instance_id) <= max_index:
                raise ValueError(f"{where}: instance_id must be in 1..{max_index}")
            ob = self._add_mesh_object(
                f"obj-{obj.instance_id}",
                obj.mesh,
                obj.material,
                where,
                int(obj.instance_id),
                regions=obj.region_materials if obj.mesh.face_regions is not None else (),
            )
            ob.matrix_world = _to_matrix(pose_matrix(obj.position, obj.orientation))

    def _set_world_map(self, scene: Scene) -> None:
        """Link the environment map into the world (lighting, and camera rays when visible),
        or unlink it for the uniform ambient world."""
        links, tex = self._world_links, self._world_texture
        for link in list(tex.outputs["Color"].links):
            links.remove(link)
        self._world_ambient_color.default_value = (1.0, 1.0, 1.0, 1.0)
        settings = self._scene.world.cycles
        world = scene.world
        if world is None:
            settings.sampling_method = "AUTOMATIC"  # Blender's default: today's renders
            return
        # Blender's automatic importance map for a 1K map cost 1.0 s per render here (128²,
        # 32 samples: 1.65 s against 0.65 s); a 512 map costs almost nothing and loses
        # 0.3-2.3 dB at equal samples, far less than the samples the time buys back
        # (benchmarks/environment_cycles.py)
        if WORLD_MAP_RESOLUTION is None:
            settings.sampling_method = "AUTOMATIC"
        else:
            settings.sampling_method = "MANUAL"
            settings.sample_map_resolution = WORLD_MAP_RESOLUTION
        path = os.path.abspath(world.hdri)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"world.hdri {path!r} does not exist")
        tex.image = self._bpy.data.images.load(path, check_existing=True)
        # lookup direction = Rz(mapping) · d; a map turned counter-clockwise by θ reads Rz(-θ) d
        self._world_mapping.inputs["Rotation"].default_value = (
            0.0,
            0.0,
            -math.radians(world.rotation),
        )
        links.new(tex.outputs["Color"], self._world_ambient_color)
        self._world_ambient.default_value = float(world.strength)
        if world.visible_background:
            links.new(tex.outputs["Color"], self._world_seen)
            self._world_seen_strength.default_value = float(world.strength)

    def _add_lamp(self, k: int, lamp: Any) -> None:
        """A point, spot or area light in Blender's own units (watts)."""
        bpy = self._bpy
        kind = {"point": "POINT", "spot": "SPOT", "area": "AREA"}.get(lamp.kind)
        if kind is None:
            raise ValueError(f"lamp {k}: kind {lamp.kind!r} is not point, spot or area")
        if lamp.power < 0:
            raise ValueError(f"lamp {k}: power must be >= 0, got {lamp.power}")
        data = bpy.data.lights.new(f"synthcv-lamp-{k}", type=kind)
        self._per_sample.append(data)
        data.energy = float(lamp.power)
        data.color = tuple(float(c) for c in lamp.color)
        if kind == "AREA":
            data.shape = "SQUARE"
            data.size = max(float(lamp.size), 1e-4)
        else:
            data.shadow_soft_size = float(lamp.size)
        if kind == "SPOT":
            data.spot_size = math.radians(float(lamp.spot_angle))
            data.spot_blend = float(lamp.spot_blend)
        ob = bpy.data.objects.new(f"synthcv-lamp-{k}", data)
        self._per_sample.append(ob)
        m = np.eye(4)
        m[:3, :3] = sun_rotation(-np.asarray(lamp.direction, dtype=np.float64))  # -z: aim
        m[:3, 3] = lamp.position
        ob.matrix_world = _to_matrix(m)
        self._scene.collection.objects.link(ob)

    def _add_ground(self, ground: Ground) -> None:
        h, s = float(ground.height), float(ground.size) / 2.0
        if s <= 0:
            raise ValueError(f"ground.size must be > 0, got {ground.size}")
        size = 2.0 * s  # UVs in metres: an image texture repeats size * texture_scale times
        mesh = Mesh(
            vertices=np.array([[-s, -s, h], [s, -s, h], [s, s, h], [-s, s, h]]),
            faces=np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32),
            source="ground",
            uv=np.array([[0.0, 0.0], [size, 0.0], [size, size], [0.0, size]]),
        )
        material = ground.material
        if material.texture:  # as in the tiny backend, a ground texture replaces the colour
            material = replace(material, color=(1.0, 1.0, 1.0))
        self._add_mesh_object("ground", mesh, material, "ground", 0, metric_uv=True)

    def _add_mesh_object(
        self,
        name: str,
        mesh: Mesh,
        material: Material,
        where: str,
        pass_index: int,
        metric_uv: bool = False,
        regions: tuple[Material, ...] = (),
    ) -> Any:
        """One mesh object; with ``regions``, one material slot per region and each face's
        slot from ``mesh.face_regions`` (a person's skin, clothes and eyes)."""
        bpy = self._bpy
        v, f = _check_mesh(mesh, where)
        me = bpy.data.meshes.new(name)
        self._per_sample.append(me)
        me.vertices.add(len(v))
        me.vertices.foreach_set("co", v.astype(np.float32).ravel())
        me.loops.add(3 * len(f))
        me.loops.foreach_set("vertex_index", f.ravel())
        me.polygons.add(len(f))
        compat.set_loop_starts(me, len(f))
        if mesh.uv is not None:
            uv_layer = me.uv_layers.new(name="UVMap")
            uv = np.asarray(mesh.uv, dtype=np.float32)[f.ravel()]
            uv_layer.data.foreach_set("uv", uv.ravel())
        me.update(calc_edges=True)
        me.validate(clean_customdata=False)
        fn = np.empty(3 * len(me.polygons), dtype=np.float32)
        me.polygons.foreach_get("normal", fn)
        le = np.empty(len(me.loops), dtype=np.int32)
        me.loops.foreach_get("edge_index", le)
        compat.set_shading(me, sharp_edges(fn.reshape(-1, 3), le, len(me.edges)))
        if regions:
            face_regions = np.asarray(mesh.face_regions, dtype=np.int32)
            if (
                len(face_regions) != len(f)
                or face_regions.min() < 0
                or face_regions.max() >= len(regions)
            ):
                raise ValueError(
                    f"{where}: face_regions must index its {len(regions)} region materials"
                )
            for k, region_material in enumerate(regions):
                me.materials.append(
                    self._material(
                        f"{name}-mat{k}", region_material, mesh.uv is not None, metric_uv, where
                    )
                )
            me.polygons.foreach_set("material_index", face_regions)
        else:
            mat = self._material(f"{name}-mat", material, mesh.uv is not None, metric_uv, where)
            me.materials.append(mat)
        ob = bpy.data.objects.new(name, me)
        self._per_sample.append(ob)
        ob.pass_index = pass_index
        self._scene.collection.objects.link(ob)
        return ob

    def _material(self, name: str, mat: Material, has_uv: bool, metric_uv: bool, where: str) -> Any:
        """Principled BSDF; base colour optionally × image texture or a procedural pattern.

        Procedural patterns use the bounding-box ("Generated") coordinates of an object, so
        they scale with it, and the metre UVs of the ground (``metric_uv``).
        """
        bpy = self._bpy
        m = bpy.data.materials.new(name)
        self._per_sample.append(m)
        compat.enable_nodes(m)
        nodes, links = m.node_tree.nodes, m.node_tree.links
        bsdf = next(n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
        if len(mat.color) != 3:
            raise ValueError(f"{where}: material.color must have 3 components, got {mat.color}")
        # colours are picked on screen (and shown as-is by tiny): sRGB → Cycles' linear albedo
        color = tuple(float(c) for c in srgb_to_linear(np.asarray(mat.color, dtype=np.float64)))
        bsdf.inputs["Base Color"].default_value = (*color, 1.0)
        bsdf.inputs["Roughness"].default_value = float(np.clip(mat.roughness, 0.0, 1.0))
        bsdf.inputs["Metallic"].default_value = float(np.clip(mat.metallic, 0.0, 1.0))
        scale = float(mat.texture_scale)
        if mat.texture:
            path = os.path.abspath(os.fspath(mat.texture))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{where}: material.texture {path!r} does not exist")
            try:
                image = bpy.data.images.load(path, check_existing=True)
            except RuntimeError as e:
                raise ValueError(f"{where}: cannot load texture {path!r}: {e}") from e
            tex = nodes.new("ShaderNodeTexImage")
            tex.image = image
            coords = nodes.new("ShaderNodeTexCoord")
            mapping = nodes.new("ShaderNodeMapping")
            mapping.inputs["Scale"].default_value = (scale, scale, 1.0)
            links.new(coords.outputs["UV" if has_uv else "Generated"], mapping.inputs["Vector"])
            links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
            _, fac, a, b, result = compat.mix_color_node(nodes, "MULTIPLY")
            fac.default_value = 1.0
            a.default_value = (*color, 1.0)
            links.new(tex.outputs["Color"], b)
            links.new(result, bsdf.inputs["Base Color"])
        elif mat.procedural:
            coords = nodes.new("ShaderNodeTexCoord")
            vector = coords.outputs["UV" if metric_uv else "Generated"]
            scale *= GROUND_PROCEDURAL_SCALE if metric_uv else PROCEDURAL_SCALE
            dark = (*(0.35 * c for c in color), 1.0)
            if mat.procedural == "checker":
                tex = nodes.new("ShaderNodeTexChecker")
                tex.inputs["Color1"].default_value = (*color, 1.0)
                tex.inputs["Color2"].default_value = dark
                tex.inputs["Scale"].default_value = scale
                links.new(vector, tex.inputs["Vector"])
                links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
            elif mat.procedural == "noise":
                tex = nodes.new("ShaderNodeTexNoise")
                tex.inputs["Scale"].default_value = scale
                tex.inputs["Detail"].default_value = 4.0
                links.new(vector, tex.inputs["Vector"])
                ramp = nodes.new("ShaderNodeValToRGB")  # stretch noise (mostly 0.35..0.65)
                lo, hi = ramp.color_ramp.elements[0], ramp.color_ramp.elements[1]
                lo.position, lo.color = 0.35, dark
                hi.position, hi.color = 0.65, (*color, 1.0)
                links.new(tex.outputs["Fac"], ramp.inputs["Fac"])
                links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
            else:
                raise ValueError(
                    f"{where}: material.procedural {mat.procedural!r} is not one of "
                    "'noise', 'checker'"
                )
        return m

    def _render_passes(self) -> dict[str, np.ndarray]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._exr)
        try:
            with self._quiet():
                result = self._bpy.ops.render.render(write_still=True)
        except RuntimeError as e:
            raise RuntimeError(f"Blender render failed: {e}; {self._log_tail()}") from e
        if "FINISHED" not in result or not os.path.isfile(self._exr):
            raise RuntimeError(f"Blender wrote no render output ({result}); {self._log_tail()}")
        return compat.read_multilayer_exr(self._exr, self._layer)

    def _low_sample_rgb(self, scene: Scene) -> np.ndarray:
        """The same scene path-traced at ``pair_samples`` without denoising: the noisy half of
        a (noisy, clean) pair. Cycles' seed is fixed, so the noise is deterministic."""
        cy = self._scene.cycles
        try:
            cy.samples, cy.use_denoising = self.pair_samples, False
            passes = self._render_passes()
        finally:
            cy.samples, cy.use_denoising = self.samples, self.denoise
        return self._display_rgb(compat.find_pass(passes, "combined"))

    def _display_rgb(self, combined: np.ndarray) -> np.ndarray:
        rgb_lin = np.ascontiguousarray(combined[..., :3], dtype=np.float32)
        self._display.applyRGB(rgb_lin)
        return np.clip(np.rint(rgb_lin * 255.0), 0, 255).astype(np.uint8)

    def _convert(self, passes: dict[str, np.ndarray], scene: Scene) -> RenderResult:
        """EXR passes → RenderResult in the project's conventions (array ops only)."""
        h, w = int(scene.camera.height), int(scene.camera.width)
        combined = compat.find_pass(passes, "combined")
        depth_raw = compat.find_pass(passes, "depth")[..., 0]
        normal_w = compat.find_pass(passes, "normal")[..., :3]
        index = compat.find_pass(passes, "index")[..., 0]
        if depth_raw.shape != (h, w):
            raise RuntimeError(f"render output is {depth_raw.shape}, expected {(h, w)}")
        hit = np.isfinite(depth_raw) & (depth_raw > 0) & (depth_raw < compat.DEPTH_MISS_THRESHOLD)
        depth = np.where(hit, depth_raw, 0.0).astype(np.float32)
        instance = np.where(hit, np.rint(index), 0).astype(np.uint16)
        stuff = None
        if scene.stuff:  # indices after the objects' are room parts
            n = len(scene.objects)
            stuff = np.where(instance > n, instance - n, 0).astype(np.uint16)
            instance = np.where(instance > n, 0, instance).astype(np.uint16)

        rot = np.asarray(scene.camera.world_to_camera, dtype=np.float64)[:3, :3]
        n = normal_w.reshape(-1, 3).astype(np.float64) @ rot.T
        norm = np.linalg.norm(n, axis=1)
        ok = hit.ravel() & (norm > 1e-6)
        normals = np.zeros_like(n)
        normals[ok] = n[ok] / norm[ok, None]

        return RenderResult(
            rgb=self._display_rgb(combined),
            depth=depth,
            instance=instance,
            normals=normals.reshape(h, w, 3).astype(np.float32),
            normals_source="geometry",
            extra={"samples": self.samples, "denoise": self.denoise},
            stuff=stuff,
        )

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Send Blender's C-level stdout/stderr chatter to a log file (tail used in errors)."""
        saved = []
        with open(self._log, "wb") as log:
            try:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                for fd in (1, 2):
                    saved.append((fd, os.dup(fd)))
                    os.dup2(log.fileno(), fd)
                yield
            finally:
                for fd, copy in saved:
                    os.dup2(copy, fd)
                    os.close(copy)

    def _log_tail(self, n: int = 8) -> str:
        try:
            with open(self._log, errors="replace") as fh:
                lines = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("Fra:")]
        except OSError:
            return "no Blender log"
        return "Blender log: " + " | ".join(lines[-n:]) if lines else "Blender log empty"

    def close(self) -> None:
        """Free this sample's datablocks and the temp directory; the renderer is then unusable."""
        if self._closed:
            return
        self._closed = True
        if _active is not None and _active() is self:
            with contextlib.suppress(Exception):
                self._clear()
        self._finalizer()

    def __enter__(self) -> CyclesRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_matrix(m: np.ndarray) -> Any:
    from mathutils import Matrix  # ships with bpy

    return Matrix([[float(x) for x in row] for row in np.asarray(m)])


BACKEND = Backend(
    name="cycles",
    options=CyclesOptions,
    renderer="synthcv.render.cycles:CyclesRenderer",
    fork_safe=False,  # bpy is not fork-safe: workers are spawned
    normals_source="geometry",
    version=_blender_version,
)
