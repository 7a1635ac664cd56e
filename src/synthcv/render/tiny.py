"""The ``tiny`` backend: PyBullet's CPU TinyRenderer. Fast, no GPU, exact ids and metric depth.

The camera is driven by an OpenGL projection built from the sample's K, so every pixel agrees
with :meth:`synthcv.scene.Camera.project`. Normals are not rendered by TinyRenderer; the labels
derive them from depth (the manifest records ``normals_source: depth-derived``).
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from synthcv.render import Backend, BackendOptions
from synthcv.render.pybullet_lists import ReusedLists
from synthcv.scene import Camera, Mesh, RenderResult, Scene

# OpenCV camera (x right, y down, z forward) → OpenGL camera (x right, y up, z backward)
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
SMOOTH_ANGLE_DEG = 35.0


def gl_projection(camera: Camera) -> np.ndarray:
    """OpenGL projection matrix equivalent to K (pixel centres at integer coordinates).

    TinyRenderer samples each pixel half a pixel left of and below its centre (measured: a
    polygon's mask matches the ideal pixel-centre raster exactly after that shift), so the
    principal point is offset here to make the samples land on pixel centres.
    """
    k, w, h, n, f = camera.K, camera.width, camera.height, camera.near, camera.far
    return np.array(
        [
            [2 * k[0, 0] / w, -2 * k[0, 1] / w, 1 - 2 * k[0, 2] / w, 0],
            [0, 2 * k[1, 1] / h, 2 * (k[1, 2] + 1.0) / h - 1, 0],
            [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0, 0, -1, 0],
        ]
    )


def depth_buffer_to_z(buf: np.ndarray, near: float, far: float) -> np.ndarray:
    """Non-linear [0, 1] depth buffer → camera-frame z in metres."""
    return (far * near / (far - (far - near) * buf)).astype(np.float32)


def _render_arrays(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-corner vertices and normals (smooth where faces meet gently, else flat) and UVs."""
    v, f = mesh.vertices, mesh.faces
    tri = v[f]  # (F, 3, 3)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-20)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-20)
    corner_n = vn[f]  # (F, 3, 3)
    sharp = np.einsum("fkc,fc->fk", corner_n, fn) < np.cos(np.radians(SMOOTH_ANGLE_DEG))
    corner_n = np.where(sharp[..., None], fn[:, None, :], corner_n)
    uvs = mesh.uv[f].reshape(-1, 2) if mesh.uv is not None else None
    return tri.reshape(-1, 3), corner_n.reshape(-1, 3), uvs


@lru_cache(maxsize=256)
def _cached_arrays(
    mesh: Mesh,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The render arrays of a mesh, indexed: corners with the same position, normal and UV
    share one vertex (3-5× fewer rows to hand pybullet; the triangles, their order and every
    corner's values are unchanged, so the image is too). Meshes are immutable and hashed by
    identity, so the arrays are reused."""
    verts, normals, uvs = _render_arrays(mesh)
    rows = np.concatenate([verts, normals] + ([uvs] if uvs is not None else []), axis=1)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # vertices in order of first use: deterministic and local
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keep = first[order]
    return (
        verts[keep],
        normals[keep],
        None if uvs is None else uvs[keep],
        rank[inverse.reshape(-1)].astype(np.int64),
    )


#: Rows of persistent pybullet lists one renderer may hold (about 130 bytes each).
PERSISTENT_ROWS = 400_000


class _MeshLists:
    """The Python lists pybullet reads a mesh from, converted once for a mesh that comes back.

    Converting arrays to lists was most of a tabletop frame's cost (tens of thousands of rows
    per sample). pybullet keeps a reference to every list it is given (render/pybullet_lists.py),
    so a mesh's own lists are only made for a mesh seen a second time (an asset from the mesh
    cache, not a per-sample handwritten digit) and up to PERSISTENT_ROWS rows; anything else
    goes through the renderer's refilled lists as before.
    """

    def __init__(self, reused: ReusedLists) -> None:
        self._reused = reused
        self._uses: weakref.WeakKeyDictionary[Mesh, int] = weakref.WeakKeyDictionary()
        self._own: dict[Mesh, dict[str, Any]] = {}  # holds the mesh: its identity stays its own
        self._rows = 0

    def __call__(self, mesh: Mesh) -> dict[str, Any]:
        own = self._own.get(mesh)
        if own is not None:
            return own
        verts, normals, uvs, indices = _cached_arrays(mesh)
        uses = self._uses.get(mesh, 0) + 1
        self._uses[mesh] = uses
        if uses >= 2 and self._rows + len(verts) <= PERSISTENT_ROWS:
            own = {
                "vertices": verts.tolist(),
                "normals": normals.tolist(),
                "indices": indices.tolist(),
            }
            if uvs is not None:
                own["uvs"] = uvs.tolist()
            self._own[mesh] = own
            self._rows += len(verts)
            return own
        lists = self._reused
        out = {
            "vertices": lists.rows("vertices", verts),
            "normals": lists.rows("normals", normals),
            "indices": lists.flat("indices", indices),
        }
        if uvs is not None:
            out["uvs"] = lists.rows("uvs", uvs)
        return out


def region_arrays(mesh: Mesh) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per material region of ``mesh.face_regions``: (region, vertices, normals, indices),
    indexed (a smooth body shares its vertices: a sixth of the per-corner rows).

    Normals are the whole mesh's area-weighted vertex normals, so shading stays smooth across a
    region's border.
    """
    v, f = mesh.vertices, mesh.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-20)
    out = []
    for region in np.unique(mesh.face_regions):
        faces = f[mesh.face_regions == region]
        used, local = np.unique(faces, return_inverse=True)
        out.append((int(region), v[used], vn[used], local.reshape(-1)))
    return out


class TinyOptions(BackendOptions):
    """``renderer: {backend: tiny, shadows: true}``."""

    backend: Literal["tiny"] = "tiny"
    shadows: bool = True


def _pybullet_version() -> str:
    import pybullet as p

    return f"pybullet-{p.getAPIVersion()}"


class TinyRenderer:
    name = "tiny"

    RESET_EVERY = 256  # frames between full resets, bounding memory held by old shapes

    def __init__(self, shadows: bool = True, **_ignored: Any) -> None:
        import pybullet as p

        self._p = p
        self.version = f"pybullet-{p.getAPIVersion()}"
        self.shadows = shadows
        self._client = p.connect(p.DIRECT)
        self._textures: dict[str, int] = {}
        self._frames = 0
        self._built: tuple[Any, ...] | None = None  # (world key, bodies, ids, meshes held)
        self._lists = ReusedLists()  # pybullet leaks the lists it is given: reuse them
        self._mesh_lists = _MeshLists(self._lists)

    def close(self) -> None:
        if self._client is not None:
            self._p.disconnect(self._client)
            self._client = None

    def __del__(self) -> None:  # best effort; workers also call close()
        # no contextlib here: at interpreter exit module globals may already be gone
        try:  # noqa: SIM105
            self.close()
        except Exception:
            pass

    def _clear(self) -> None:
        """Start every frame from an empty world; every so often reset everything (shapes,
        textures) to bound memory.

        The bodies to remove are asked from the client itself, not from our own list: a body
        created just before an interruption (Ctrl-C between ``createMultiBody`` and the
        bookkeeping) would otherwise stay in the world and appear, unlabelled, in every later
        image of this renderer.
        """
        p, c = self._p, self._client
        self._frames += 1
        if self._frames % self.RESET_EVERY == 0:
            self._reset()
        else:
            ids = [
                p.getBodyUniqueId(k, physicsClientId=c)
                for k in range(p.getNumBodies(physicsClientId=c))
            ]
            for b in ids:
                p.removeBody(b, physicsClientId=c)

    def _reset(self) -> None:
        self._p.resetSimulation(physicsClientId=self._client)
        self._textures.clear()
        self._built = None

    def _visual(self, mesh: Mesh, rgba: list[float], specular: list[float]) -> int:
        """Visual shape from the cached arrays of the unscaled mesh, scaled by pybullet."""
        p, c = self._p, self._client
        return p.createVisualShape(
            p.GEOM_MESH,
            rgbaColor=rgba,
            specularColor=specular,
            meshScale=list(mesh.scale_factors),
            physicsClientId=c,
            **self._mesh_lists(mesh.unscaled or mesh),
        )

    def _region_bodies(self, obj: Any) -> list[int]:
        """One body per material region of a multi-material mesh (a person's skin, clothes,
        eyes); all of them are labelled as the one object."""
        p, c, lists = self._p, self._client, self._lists
        bodies = []
        for region, verts, normals, indices in region_arrays(obj.mesh):
            m = obj.region_materials[region]
            vid = p.createVisualShape(
                p.GEOM_MESH,
                vertices=lists.rows("vertices", verts),
                indices=lists.flat("indices", indices),
                normals=lists.rows("normals", normals),
                rgbaColor=[*m.color, 1.0],
                specularColor=[0.5 * (1 - m.roughness) * (1 + m.metallic)] * 3,
                physicsClientId=c,
            )
            bodies.append(
                p.createMultiBody(
                    0,
                    -1,
                    vid,
                    basePosition=obj.position.tolist(),
                    baseOrientation=obj.orientation.tolist(),
                    physicsClientId=c,
                )
            )
        return bodies

    def _texture(self, path: str | None) -> int | None:
        if not path:
            return None
        if path not in self._textures:
            self._textures[path] = self._p.loadTexture(path, physicsClientId=self._client)
        return self._textures[path]

    def render(self, scene: Scene) -> RenderResult:
        cam = scene.camera
        if not 0 < cam.near < cam.far:  # as the cycles backend: else a blank or NaN depth
            raise ValueError(f"camera: need 0 < near < far, got near={cam.near}, far={cam.far}")
        key = _world_key(scene)
        try:
            if self._built is not None and self._built[0] == key:
                # the same world with new poses (the next frame of a clip): move the bodies
                _, bodies, body_to_instance, _, stuff_of_body = self._built
                for obj in scene.objects:
                    for bid in bodies[obj.instance_id]:
                        self._p.resetBasePositionAndOrientation(
                            bid,
                            obj.position.tolist(),
                            obj.orientation.tolist(),
                            physicsClientId=self._client,
                        )
                return self._shoot(scene, body_to_instance, stuff_of_body)
            self._built = None
            self._clear()
            return self._render(scene, key)
        except BaseException:
            self._built = None
            self._reset()  # whatever was half-built (an interrupt, an error) is gone
            raise

    def _render(self, scene: Scene, key: tuple[Any, ...]) -> RenderResult:
        p, c = self._p, self._client
        body_to_instance: dict[int, int] = {}
        bodies: dict[int, list[int]] = {}
        if scene.ground.enabled:
            g = scene.ground
            s = g.size / 2
            reps = g.size * g.material.texture_scale
            lists = self._lists
            vid = p.createVisualShape(
                p.GEOM_MESH,
                vertices=lists.rows("vertices", [[-s, -s, 0], [s, -s, 0], [s, s, 0], [-s, s, 0]]),
                indices=lists.flat("indices", [0, 1, 2, 0, 2, 3]),
                normals=lists.rows("normals", [[0, 0, 1]] * 4),
                uvs=lists.rows("uvs", [[0, 0], [reps, 0], [reps, reps], [0, reps]]),
                rgbaColor=[*g.material.color, 1.0],
                specularColor=[0.05, 0.05, 0.05],
                physicsClientId=c,
            )
            gid = p.createMultiBody(0, -1, vid, basePosition=[0, 0, g.height], physicsClientId=c)
            tex = self._texture(g.material.texture)
            if tex is not None:
                p.changeVisualShape(
                    gid, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=c
                )
        stuff_of_body: dict[int, int] = {}
        for k, part in enumerate(scene.stuff):
            m = part.material
            vid = self._visual(part.mesh, [*m.color, 1.0], [0.5 * (1 - m.roughness)] * 3)
            bid = p.createMultiBody(
                0,
                -1,
                vid,
                basePosition=np.asarray(part.position).tolist(),
                baseOrientation=np.asarray(part.orientation).tolist(),
                physicsClientId=c,
            )
            tex = self._texture(m.texture)
            if tex is not None:
                p.changeVisualShape(
                    bid, -1, textureUniqueId=tex, rgbaColor=[*m.color, 1.0], physicsClientId=c
                )
            stuff_of_body[bid] = k + 1
        for obj in scene.objects:
            if obj.mesh.face_regions is not None and obj.region_materials:
                bodies[obj.instance_id] = self._region_bodies(obj)
                for bid in bodies[obj.instance_id]:
                    body_to_instance[bid] = obj.instance_id
                continue
            m = obj.material
            spec = [0.5 * (1 - m.roughness) * (1 + m.metallic)] * 3
            vid = self._visual(obj.mesh, [*m.color, 1.0], spec)
            bid = p.createMultiBody(
                0,
                -1,
                vid,
                basePosition=obj.position.tolist(),
                baseOrientation=obj.orientation.tolist(),
                physicsClientId=c,
            )
            tex = self._texture(m.texture) if obj.mesh.uv is not None else None
            if tex is not None:
                p.changeVisualShape(bid, -1, textureUniqueId=tex, physicsClientId=c)
            body_to_instance[bid] = obj.instance_id
            bodies[obj.instance_id] = [bid]
        # the meshes are held so that their ids in ``key`` stay theirs while this world stands
        held = [o.mesh for o in scene.objects] + [part.mesh for part in scene.stuff]
        self._built = (key, bodies, body_to_instance, held, stuff_of_body)
        return self._shoot(scene, body_to_instance, stuff_of_body)

    def _camera_image(self, scene: Scene, albedo: bool = False) -> tuple:
        """The scene under its sun and ambient light, or (``albedo``) unlit: ambient 1, no sun,
        no specular, no shadow, so each pixel is its surface colour × texture."""
        p, cam, sun = self._p, scene.camera, scene.sun
        if albedo:
            ambient, diffuse, specular, shadow, color = 1.0, 0.0, 0.0, False, [1.0, 1.0, 1.0]
        else:
            ambient, shadow, color = scene.ambient, self.shadows, list(sun.color)
            diffuse = sun.intensity * max(0.0, 1.0 - scene.ambient)
            # a sun of intensity 0 is no sun: no highlights (and so no shadowed highlights)
            specular = 0.15 if sun.intensity > 0 else 0.0
        view = (CV_TO_GL @ cam.world_to_camera).T.reshape(-1).tolist()  # column-major
        proj = gl_projection(cam).T.reshape(-1).tolist()
        _, _, rgba, depth_buf, seg = p.getCameraImage(
            cam.width,
            cam.height,
            viewMatrix=view,
            projectionMatrix=proj,
            lightDirection=list(sun.direction),
            lightColor=color,
            lightDistance=10.0,
            shadow=int(shadow),
            lightAmbientCoeff=float(ambient),
            lightDiffuseCoeff=float(diffuse),
            lightSpecularCoeff=specular,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=self._client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)
        return rgba, depth_buf, seg

    def _shoot(
        self,
        scene: Scene,
        body_to_instance: dict[int, int],
        stuff_of_body: dict[int, int] | None = None,
    ) -> RenderResult:
        """Render the built world from the scene's camera under its lights."""
        cam = scene.camera
        rgba, depth_buf, seg = self._camera_image(scene)
        seg = np.asarray(seg, dtype=np.int64).reshape(cam.height, cam.width)
        z = depth_buffer_to_z(
            np.asarray(depth_buf, dtype=np.float64).reshape(cam.height, cam.width),
            cam.near,
            cam.far,
        )
        lut = np.zeros(max([*body_to_instance, *(stuff_of_body or {}), 0]) + 2, dtype=np.uint16)
        for bid, iid in body_to_instance.items():
            lut[bid] = iid
        hit = seg >= 0
        body = np.clip(seg, 0, len(lut) - 1)
        instance = np.where(hit, lut[body], 0).astype(np.uint16)
        stuff = None
        if stuff_of_body:
            stuff_lut = np.zeros_like(lut)
            for bid, k in stuff_of_body.items():
                stuff_lut[bid] = k
            stuff = np.where(hit, stuff_lut[body], 0).astype(np.uint16)
        rgb = rgba[..., :3].copy()
        z[~hit] = 0.0
        if scene.lamps:
            rgb = self._add_lamps(scene, rgb, z, hit)
        rgb[~hit] = self._background(scene, ~hit)
        return RenderResult(
            rgb=rgb,
            depth=z,
            instance=instance,
            normals=None,
            normals_source="depth-derived",
            stuff=stuff,
        )

    def _add_lamps(
        self, scene: Scene, rgb: np.ndarray, z: np.ndarray, hit: np.ndarray
    ) -> np.ndarray:
        """Lamps' light added per pixel (docs/environments.md): a second, unlit render gives
        each pixel's albedo; the lamps' Lambertian radiance (no shadows) multiplies it."""
        from synthcv.environment.lamps import lamp_radiance
        from synthcv.labels import normals_from_depth
        from synthcv.sensor.photometric import linear_to_srgb, srgb_to_linear

        cam = scene.camera
        albedo, _, _ = self._camera_image(scene, albedo=True)
        ys, xs = np.nonzero(hit)
        points = cam.unproject(np.column_stack([xs, ys]), z[ys, xs])
        n_cam = normals_from_depth(z, cam.K)[ys, xs].astype(np.float64)
        n_world = n_cam @ cam.world_to_camera[:3, :3]  # rows: R^T n
        light = lamp_radiance(points, n_world, scene.lamps)
        lin = (
            srgb_to_linear(rgb[ys, xs] / 255.0) + srgb_to_linear(albedo[ys, xs, :3] / 255.0) * light
        )
        out = rgb.copy()
        out[ys, xs] = np.rint(linear_to_srgb(lin) * 255.0).astype(np.uint8)
        return out

    def _background(self, scene: Scene, miss: np.ndarray) -> np.ndarray:
        """What camera rays that hit nothing see: the world map (its radiance × strength,
        displayed as Cycles' Standard view does: sRGB, clipped) or the background colour."""
        world = scene.world
        if world is None or not world.visible_background or not miss.any():
            return np.round(np.asarray(scene.background) * 255).astype(np.uint8)
        from synthcv.render.environment_map import load, lookup
        from synthcv.sensor.photometric import linear_to_srgb

        cam = scene.camera
        ys, xs = np.nonzero(miss)
        rays = np.column_stack([xs, ys, np.ones(len(xs))]) @ np.linalg.inv(cam.K).T
        dirs = rays @ cam.world_to_camera[:3, :3]  # camera → world: R^T
        radiance = lookup(load(world.hdri), dirs, world.rotation) * world.strength
        return np.rint(linear_to_srgb(radiance) * 255.0).astype(np.uint8)


def _world_key(scene: Scene) -> tuple[Any, ...]:
    """What a built world depends on besides poses, camera and lights: the ground, each
    object's mesh (by identity), materials and instance id, and the room's parts."""
    g = scene.ground
    return (
        (g.enabled, g.size, g.height, g.material),
        tuple((o.instance_id, id(o.mesh), o.material, o.region_materials) for o in scene.objects),
        tuple((id(part.mesh), part.material) for part in scene.stuff),
    )


BACKEND = Backend(
    name="tiny",
    options=TinyOptions,
    renderer="synthcv.render.tiny:TinyRenderer",
    fork_safe=True,  # workers connect their own pybullet client after the fork
    normals_source="depth-derived",
    version=_pybullet_version,
)
