"""Drop-and-settle with PyBullet; settled poses are written back into the Scene.

Primitives use exact collision shapes; other meshes use their convex hull (PyBullet's rule for
dynamic mesh bodies). The simulation stops early once every body is at rest.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from synthcv.motion import MotionPlan, rotation
from synthcv.render.pybullet_lists import ReusedLists
from synthcv.scene import Mesh, Scene, quat_to_matrix
from synthcv.spec import PhysicsSpec


def collision_shape(p: Any, client: int, mesh: Mesh) -> int:
    """A PyBullet collision shape for ``mesh`` (exact for primitives, else convex hull)."""
    d = mesh.dims
    if mesh.primitive == "cube" and {"x", "y", "z"} <= d.keys():
        return p.createCollisionShape(
            p.GEOM_BOX, halfExtents=[d["x"] / 2, d["y"] / 2, d["z"] / 2], physicsClientId=client
        )
    if mesh.primitive == "sphere" and "radius" in d:
        return p.createCollisionShape(p.GEOM_SPHERE, radius=d["radius"], physicsClientId=client)
    if mesh.primitive == "cylinder" and {"radius", "height"} <= d.keys():
        return p.createCollisionShape(
            p.GEOM_CYLINDER, radius=d["radius"], height=d["height"], physicsClientId=client
        )
    if mesh.primitive == "capsule" and {"radius", "height"} <= d.keys():
        return p.createCollisionShape(
            p.GEOM_CAPSULE,
            radius=d["radius"],
            height=max(d["height"] - 2 * d["radius"], 0.0),
            physicsClientId=client,
        )
    hull = _hull_vertices(mesh.unscaled or mesh) * np.asarray(mesh.scale_factors)
    # pybullet never frees the lists it is given: hand it the same ones every time
    vertices = _reused_lists().rows("hull", hull)
    return p.createCollisionShape(p.GEOM_MESH, vertices=vertices, physicsClientId=client)


def person_hulls(mesh: Mesh, parts: np.ndarray) -> list[np.ndarray]:
    """A person as one convex hull per body part: objects land on a shoulder or rest against
    a leg, not on one hull spanning the gap between the legs."""
    from scipy.spatial import ConvexHull

    hulls = []
    for part in np.unique(parts):
        pts = mesh.vertices[parts == part]
        try:
            hulls.append(pts[ConvexHull(pts).vertices])
        except Exception:  # too few or flat points: skip the part
            continue
    return hulls


_THREAD = threading.local()


def _reused_lists() -> ReusedLists:
    """This thread's lists (a list is refilled before each call: threads must not share)."""
    lists = getattr(_THREAD, "lists", None)
    if lists is None:
        lists = _THREAD.lists = ReusedLists()
    return lists


@lru_cache(maxsize=256)
def _hull_vertices(mesh: Mesh) -> np.ndarray:
    """Convex-hull vertices of an (unscaled) mesh: PyBullet would hull it anyway, and passing
    only the hull's few vertices makes shape creation cheap."""
    from scipy.spatial import ConvexHull

    try:
        return mesh.vertices[ConvexHull(mesh.vertices).vertices]
    except Exception:  # flat or degenerate meshes: let PyBullet cope with all vertices
        return np.asarray(mesh.vertices)


def settle(scene: Scene, cfg: PhysicsSpec) -> tuple[Scene, dict[str, Any]]:
    """Simulate until rest (or ``cfg.steps``); return the scene with settled poses + stats."""
    if not cfg.enabled or not scene.objects or cfg.steps == 0:
        return scene, {"physics.steps": 0, "physics.settled": True}
    import pybullet as p

    client = _client(p)
    # every simulation starts by resetting the world; the last one is left standing (a
    # second reset per sample would cost ~1 ms for nothing)
    p.resetSimulation(physicsClientId=client)
    bodies = _build_world(p, client, scene, cfg, cfg.timestep)
    steps, at_rest = 0, False
    rest_streak = 0
    while steps < cfg.steps:
        p.stepSimulation(physicsClientId=client)
        steps += 1
        if steps % 10 == 0:
            speeds = [
                max(math.hypot(*v) for v in p.getBaseVelocity(b, physicsClientId=client))
                for b in bodies
                if b is not None
            ]
            rest_streak = rest_streak + 1 if max(speeds, default=0.0) < 0.02 else 0
            if rest_streak >= 3:
                at_rest = True
                break
    settled = _read_poses(p, client, scene, bodies)
    penetration = 0.0
    for c in p.getContactPoints(physicsClientId=client):
        penetration = max(penetration, -float(c[8]))
    return settled, {
        "physics.steps": steps,
        "physics.settled": at_rest,
        "physics.max_penetration": penetration,
    }


def _read_poses(p: Any, client: int, scene: Scene, bodies: list[Any]) -> Scene:
    objects = []
    for obj, bid in zip(scene.objects, bodies, strict=True):
        if bid is None:
            objects.append(obj)
            continue
        pos, orn = p.getBasePositionAndOrientation(bid, physicsClientId=client)
        q = np.array(orn, dtype=np.float64)
        q /= np.linalg.norm(q)
        objects.append(
            replace(
                obj, position=np.array(pos, dtype=np.float64), orientation=-q if q[3] < 0 else q
            )
        )
    return scene.with_objects(objects)


def substeps(fps: float, timestep: float) -> int:
    """Physics steps per frame: the fewest whose step (1 / (fps · n)) is at most ``timestep``,
    so frames fall exactly on step boundaries."""
    return max(1, math.ceil(1.0 / (fps * timestep) - 1e-9))


def trajectory(scene: Scene, cfg: PhysicsSpec, plan: MotionPlan) -> list[Scene]:
    """The scene at every frame of a clip (docs/sequences.md).

    Frame 0 is ``scene`` as given (the settled scene for ``start: settled``, the drawn drop
    poses for ``start: drop``); then each object gets its planned velocities and the world
    runs forward, ``substeps`` steps per frame. Without physics (``enabled: false``) objects
    move at constant linear and angular velocity, through each other and the ground.
    """
    frames = [scene]
    if plan.frames == 1:
        return frames
    if not cfg.enabled or not scene.objects:
        return [_ballistic(scene, plan, plan.time(k)) for k in range(plan.frames)]
    import pybullet as p

    n = substeps(plan.fps, cfg.timestep)
    client = _client(p)
    p.resetSimulation(physicsClientId=client)
    bodies = _build_world(p, client, scene, cfg, 1.0 / (plan.fps * n))
    for obj, bid in zip(scene.objects, bodies, strict=True):
        if bid is not None and obj.instance_id in plan.velocities:
            v, w = plan.velocities[obj.instance_id]
            p.resetBaseVelocity(bid, v.tolist(), w.tolist(), physicsClientId=client)
    for _ in range(1, plan.frames):
        for _ in range(n):
            p.stepSimulation(physicsClientId=client)
        frames.append(_read_poses(p, client, scene, bodies))
    return frames


def _ballistic(scene: Scene, plan: MotionPlan, t: float) -> Scene:
    """Constant velocities from frame 0: position + v·t, orientation turned by ω·t (world)."""
    from synthcv.scene import matrix_to_quat, quat_to_matrix

    if t == 0:
        return scene
    objects = []
    for obj in scene.objects:
        if obj.instance_id not in plan.velocities or obj.person is not None:
            objects.append(obj)
            continue
        v, w = plan.velocities[obj.instance_id]
        speed = float(np.linalg.norm(w))
        turn = rotation(w / speed, speed * t) if speed > 0 else np.eye(3)
        rot = turn @ quat_to_matrix(obj.orientation)
        objects.append(replace(obj, position=obj.position + v * t, orientation=matrix_to_quat(rot)))
    return scene.with_objects(objects)


def _build_world(p: Any, client: int, scene: Scene, cfg: PhysicsSpec, timestep: float) -> list[Any]:
    """Gravity, the ground plane, the room's boxes and one body per object (people: static
    hulls, None in the returned list) in the reset simulation of ``client``."""
    p.setGravity(0, 0, -9.81, physicsClientId=client)
    p.setTimeStep(timestep, physicsClientId=client)
    if scene.ground.enabled:
        plane = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=client)
        gid = p.createMultiBody(
            0, plane, basePosition=[0, 0, scene.ground.height], physicsClientId=client
        )
        p.changeDynamics(gid, -1, lateralFriction=cfg.friction, physicsClientId=client)
    for part in scene.stuff:  # the room: static boxes, exact
        rot = quat_to_matrix(part.orientation)
        for centre, size in part.boxes:
            shape = p.createCollisionShape(
                p.GEOM_BOX, halfExtents=(np.asarray(size) / 2).tolist(), physicsClientId=client
            )
            sid = p.createMultiBody(
                0,
                shape,
                basePosition=(np.asarray(part.position) + rot @ centre).tolist(),
                baseOrientation=np.asarray(part.orientation).tolist(),
                physicsClientId=client,
            )
            p.changeDynamics(sid, -1, lateralFriction=cfg.friction, physicsClientId=client)
    bodies = []
    for obj in scene.objects:
        if obj.person is not None:  # static: people have no mass, physics never moves them
            for hull in person_hulls(obj.mesh, obj.person.vertex_parts):
                shape = p.createCollisionShape(
                    p.GEOM_MESH,
                    vertices=_reused_lists().rows("hull", hull),
                    physicsClientId=client,
                )
                p.createMultiBody(
                    0,
                    shape,
                    basePosition=obj.position.tolist(),
                    baseOrientation=obj.orientation.tolist(),
                    physicsClientId=client,
                )
            bodies.append(None)
            continue
        shape = collision_shape(p, client, obj.mesh)
        bid = p.createMultiBody(
            baseMass=obj.mass,
            baseCollisionShapeIndex=shape,
            basePosition=obj.position.tolist(),
            baseOrientation=obj.orientation.tolist(),
            physicsClientId=client,
        )
        p.changeDynamics(
            bid,
            -1,
            lateralFriction=cfg.friction,
            rollingFriction=0.02,
            spinningFriction=0.02,
            linearDamping=0.04,
            angularDamping=0.1,
            physicsClientId=client,
        )
        bodies.append(bid)
    return bodies


_CLIENT: dict[str, int] = {}


def _client(p: Any) -> int:
    """One physics client per process, reused across samples (connecting costs ~10 ms)."""
    if "id" not in _CLIENT or not p.isConnected(_CLIENT["id"]):
        _CLIENT["id"] = p.connect(p.DIRECT)
    return _CLIENT["id"]


def reset_worker() -> None:
    """Forget this process's physics client: a forked worker must connect its own, never
    reuse the one its parent opened (the connection is not shared across processes)."""
    _CLIENT.clear()
