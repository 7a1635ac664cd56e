"""The backend-free scene model: plain data that physics, every renderer and the labels share.

A :class:`Scene` is produced by :mod:`synthcv.sampler` from ``(spec, index)``. Physics writes
settled poses back into it; renderers translate it; labels are computed from it plus a
:class:`RenderResult`. Nothing here imports pybullet, bpy or torch.

Conventions (see README "Conventions"):
- World: z up, metres. The ground plane is z = ``ground.height``.
- Camera: OpenCV (x right, y down, z forward); ``world_to_camera`` maps world points to the
  camera frame; ``K`` is in pixels with pixel centres at integer coordinates (the centre of the
  top-left pixel is (0, 0)).
- Orientations are unit quaternions in (x, y, z, w) order (pybullet's order).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion given as (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    n = x * x + y * y + z * z + w * w
    s = 0.0 if n == 0 else 2.0 / n
    return np.array(
        [
            [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
            [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
            [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix, with w >= 0 for a unique answer."""
    r = np.asarray(r, dtype=np.float64)
    t = np.trace(r)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def pose_matrix(position: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """4x4 object→world transform from a position and an (x, y, z, w) quaternion."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(orientation)
    m[:3, 3] = position
    return m


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh in the object's own frame, in metres, already scaled.

    The origin is the mesh's bounding-box centre, so a pose places that centre. ``primitive``
    names an analytic shape (cube, sphere, cylinder, cone, capsule, torus) with ``dims`` in
    metres, letting physics use an exact collision shape instead of a convex hull.
    """

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    source: str  # e.g. "primitive:cube", "pybullet_data:duck_vhacd", "glyph:DejaVuSans:7"
    uv: np.ndarray | None = None  # (V, 2) texture coordinates in [0, 1]
    keypoints: dict[str, np.ndarray] = field(default_factory=dict)  # named points, object frame
    primitive: str | None = None
    dims: dict[str, float] = field(default_factory=dict)
    # A scaled mesh remembers the mesh it was scaled from: vertices == unscaled.vertices *
    # scale_factors. Backends cache per unscaled mesh and apply the scale at draw time.
    unscaled: Mesh | None = None
    scale_factors: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Per-face index into the object's ``region_materials`` (a person's skin, clothes, hair,
    # eyes); None: one material for the whole mesh.
    face_regions: np.ndarray | None = None
    # How far below the surface a keypoint lies (a joint inside a limb), metres: the depth
    # test compares the rendered surface with the point moved this much toward the camera.
    keypoint_depth: dict[str, float] = field(default_factory=dict)

    @property
    def extents(self) -> np.ndarray:
        """Axis-aligned size (x, y, z) of the mesh in its own frame."""
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)

    def box_corners(self) -> np.ndarray:
        """The 8 corners of the object-frame bounding box, in a fixed documented order.

        Corner k has x = max if k & 1, y = max if k & 2, z = max if k & 4.
        """
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return np.array(
            [
                [hi[0] if k & 1 else lo[0], hi[1] if k & 2 else lo[1], hi[2] if k & 4 else lo[2]]
                for k in range(8)
            ]
        )

    def all_keypoints(self) -> tuple[list[str], np.ndarray]:
        """Keypoint names and object-frame positions: declared ones, else box corners + centre."""
        if self.keypoints:
            names = list(self.keypoints)
            return names, np.array([self.keypoints[n] for n in names], dtype=np.float64)
        names = [f"corner_{k}" for k in range(8)] + ["centroid"]
        return names, np.vstack([self.box_corners(), np.zeros((1, 3))])


@dataclass(frozen=True)
class Material:
    """Surface appearance shared by all backends (tiny uses colour and texture only)."""

    color: tuple[float, float, float] = (0.8, 0.8, 0.8)  # linear-ish RGB in [0, 1]
    roughness: float = 0.5
    metallic: float = 0.0
    texture: str | None = None  # absolute path of an image texture
    procedural: str | None = None  # "noise" | "checker" (cycles); tiny falls back to colour
    texture_scale: float = 1.0


@dataclass(frozen=True, eq=False)
class PersonRig:
    """What a person's labels need beyond its mesh, all in the object's own frame.

    Built by :mod:`synthcv.people.person`; rigid transforms of the object carry it along.
    """

    joint_names: tuple[str, ...]
    joints: np.ndarray  # (J, 3) skeleton joint origins
    head: np.ndarray  # (4, 4) head frame → object frame (x out of the face, y up, z right)
    eye_centres: np.ndarray  # (2, 3) eyeball centres, (right, left)
    gaze: np.ndarray  # (2, 3) unit directions each eye looks, (right, left)
    gaze_target: np.ndarray | None  # world point the eyes were aimed at; None for a direction
    gaze_clamped: bool  # the target was beyond the eyes' range: they look as far as they can
    eyelid: float  # 1 wide open … 0 shut
    vertex_parts: np.ndarray  # (V,) body-part id (synthcv.people.body.PARTS) of each vertex
    # synthcv.people.person.PersonBuild: how to build this person at another moment of its
    # motion clip (sequences); None for a person that cannot move
    rebuild: Any = None


@dataclass
class SceneObject:
    instance_id: int  # 1..N, 0 is background
    class_name: str
    class_id: int  # semantic id: 1-based position in the spec's class list
    mesh: Mesh
    position: np.ndarray  # (3,) world, metres: the mesh origin (bbox centre)
    orientation: np.ndarray  # (4,) quaternion (x, y, z, w), object→world
    material: Material
    is_distractor: bool = False
    mass: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)  # realized per-object factors
    # materials indexed by ``mesh.face_regions`` (``material`` is then the first region's)
    region_materials: tuple[Material, ...] = ()
    person: PersonRig | None = None

    def object_to_world(self) -> np.ndarray:
        return pose_matrix(self.position, self.orientation)


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    K: np.ndarray  # (3, 3) pixels
    world_to_camera: np.ndarray  # (4, 4), OpenCV camera frame
    near: float = 0.01
    far: float = 100.0

    @staticmethod
    def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
        """Pinhole K with the given *vertical* field of view and square pixels."""
        fy = 0.5 * height / np.tan(np.radians(fov_deg) / 2)
        return np.array([[fy, 0, (width - 1) / 2], [0, fy, (height - 1) / 2], [0, 0, 1.0]])

    @staticmethod
    def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
        """world→camera (OpenCV) matrix for a camera at ``eye`` looking at ``target``."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-9:  # looking straight down/up: pick any stable x
            x = np.cross(z, np.array([0.0, 1.0, 0.0]))
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        r = np.stack([x, y, z])  # rows: camera axes in world
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = -r @ eye
        return m

    @property
    def camera_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> np.ndarray:
        return self.camera_to_world[:3, 3]

    def unproject(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """World points (N, 3) on the rays of pixel coordinates ``uv`` (N, 2) at camera-frame
        depths ``z`` (N,): the inverse of :meth:`project`."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        rays = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(self.K).T
        c2w = self.camera_to_world
        pts = rays * np.asarray(z, dtype=np.float64).reshape(-1, 1)
        return pts @ c2w[:3, :3].T + c2w[:3, 3]

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and camera-frame depth z (N,) of world points."""
        p = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        pc = p @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (pc @ self.K.T)[:, :2] / z[:, None]
        return uv, z


@dataclass(frozen=True)
class Sun:
    direction: tuple[float, float, float]  # unit vector from the scene *towards* the sun, world
    intensity: float = 1.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Ground:
    enabled: bool = True
    height: float = 0.0
    size: float = 10.0
    material: Material = Material(color=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class World:
    """An environment map (HDRI) around the scene: Cycles lights the scene with it; camera rays
    that hit nothing see it when ``visible_background`` (else ``Scene.background``)."""

    hdri: str  # absolute path of the map (bundled ones resolved)
    strength: float = 1.0  # multiplies the map's radiance
    rotation: float = 0.0  # degrees, counter-clockwise about +z seen from above
    visible_background: bool = True


@dataclass(frozen=True)
class Lamp:
    """A point, spot or area light (Blender's power convention: watts; see docs/environments.md).

    A point or spot light of ``power`` W gives a white Lambertian surface at distance r facing it
    a radiance of power / (4 π² r²); an area light (a square of side ``size`` facing
    ``direction``) power / (π² r²) on its axis, falling off with the cosine off its axis.
    """

    kind: str  # "point" | "spot" | "area"
    position: tuple[float, float, float]
    direction: tuple[float, float, float]  # unit; where a spot or area light points
    power: float  # watts
    color: tuple[float, float, float]  # linear RGB, max channel 1 (from the colour temperature)
    size: float = 0.1  # metres: radius of a point/spot, side of an area light
    spot_angle: float = 45.0  # degrees, full cone of a spot light
    spot_blend: float = 0.15  # 0 hard edge … 1 soft


#: Semantic classes of room geometry ("stuff": no instances, no boxes), after the object
#: classes in the spec's class list.
STUFF_CLASSES = ("floor", "wall", "ceiling", "furniture", "door")


@dataclass(frozen=True, eq=False)
class StuffPart:
    """A piece of room geometry: drawn, a static collider, labelled only in the semantic map."""

    name: str  # e.g. "floor", "wall-0", "table"
    stuff: str  # one of STUFF_CLASSES
    class_id: int  # its semantic id
    mesh: Mesh
    position: np.ndarray  # (3,) world
    orientation: np.ndarray  # (4,) quaternion (x, y, z, w)
    material: Material
    # the part as axis-aligned boxes in its own frame, (N, 2, 3) [centre, size]: exact colliders
    boxes: np.ndarray

    def object_to_world(self) -> np.ndarray:
        return pose_matrix(self.position, self.orientation)


@dataclass
class Scene:
    index: int
    seed: int  # the integer that seeded this sample's Generator
    objects: list[SceneObject]
    camera: Camera
    sun: Sun
    ambient: float
    ground: Ground
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # colour where nothing is hit
    factors: dict[str, Any] = field(default_factory=dict)  # realized scene factors, flat
    sensor: Any = None  # synthcv.sensor.SensorParams: what the camera does after the lens
    motion: Any = None  # synthcv.motion.MotionPlan: how a clip moves (sequences)
    world: World | None = None  # an environment map (docs/environments.md)
    lamps: tuple[Lamp, ...] = ()  # point, spot and area lights beyond the sun
    stuff: tuple[StuffPart, ...] = ()  # room geometry: floor, walls, ceiling, furniture, door

    def with_objects(self, objects: list[SceneObject]) -> Scene:
        return replace(self, objects=objects)


@dataclass
class RenderResult:
    """What a backend returns for one scene; everything is in the project's conventions."""

    rgb: np.ndarray  # (H, W, 3) uint8 (grayscale output is derived later)
    depth: np.ndarray  # (H, W) float32 camera-frame z in metres; 0 where nothing was hit
    instance: np.ndarray  # (H, W) uint16; 0 background/ground, else SceneObject.instance_id
    normals: np.ndarray | None = None  # (H, W, 3) float32 camera-frame unit normals, or None
    normals_source: str = "depth-derived"  # "geometry" when the backend renders them
    stuff: np.ndarray | None = None  # (H, W) uint16: 1 + index into Scene.stuff, 0 elsewhere
    extra: dict[str, Any] = field(default_factory=dict)
