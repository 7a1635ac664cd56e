"""Where things live in a dataset directory, and which versions of the layout exist.

Every file name, the list of modalities and the path columns of ``samples.parquet`` are
defined here once; writers and readers both ask this module (docs/FORMAT.md describes it).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

#: What this synthcv writes. 2: factor columns named by spec path (``lights.sun.elevation``),
#: the renderer's own options in the resolved spec. 3: a shard's own tables are
#: ``shard-samples.parquet``/``shard-objects.parquet``, so a recursive glob for
#: ``objects.parquet`` (DuckDB's ``DIR/**/objects.parquet``) finds each object once.
FORMAT_VERSION = 3
#: What it reads. Version-1 datasets open with their factor columns renamed to version 2's.
READABLE_VERSIONS = (1, 2, 3)

MANIFEST = "manifest.json"
SAMPLES = "samples.parquet"
OBJECTS = "objects.parquet"
#: A shard's own rows (merged into SAMPLES/OBJECTS at the dataset root). Format 1 and 2 named
#: them like the root tables; :func:`shard_table` finds either.
SHARD_SAMPLES = "shard-samples.parquet"
SHARD_OBJECTS = "shard-objects.parquet"
_SHARD_TABLE = {SAMPLES: SHARD_SAMPLES, OBJECTS: SHARD_OBJECTS}
#: Every name a shard's tables have had (current first).
SHARD_TABLE_NAMES = (SHARD_SAMPLES, SHARD_OBJECTS, SAMPLES, OBJECTS)
SHARDS = "shards"
SHARD_META = "shard.json"
#: The resume record of an output directory: which spec and count it is being filled for.
RUN_FILE = ".synthcv-run.json"
#: Held (flock) by the one process writing into the directory.
LOCK_FILE = ".synthcv.lock"

#: Image modalities, in the order they are written, and each one's file suffix.
#: ``parts`` (the body-part map, synthcv.people.body.PARTS) is written only for samples
#: with people; ``clean`` (the image before the sensor's photometric stages, pixel-aligned
#: with ``rgb``) only with ``outputs.pairs``. Older datasets have no such columns, and readers
#: give None for them.
#: Frames of a clip (``sequence:``) also have optical flow to the next frame (``flow``, with
#: ``flow_status``) and from the previous one (``flow_back``, ``flow_back_status``): absent on
#: the last and first frame respectively (docs/sequences.md).
MODALITIES = (
    "rgb",
    "depth",
    "instance",
    "semantic",
    "normals",
    "parts",
    "clean",
    "flow",
    "flow_status",
    "flow_back",
    "flow_back_status",
)
SUFFIX = {
    "rgb": "png",
    "depth": "tiff",
    "instance": "png",
    "semantic": "png",
    "normals": "png",
    "parts": "png",
    "clean": "png",
    "flow": "flo",
    "flow_status": "png",
    "flow_back": "flo",
    "flow_back_status": "png",
}
#: Modalities only some samples have (listed by tools only where present).
OPTIONAL_MODALITIES = ("parts", "clean", "flow", "flow_status", "flow_back", "flow_back_status")
#: Flow modalities (Middlebury .flo: float32 dx, dy; NaN where the frame sees no surface).
FLOW_MODALITIES = ("flow", "flow_back")
#: Everything a clip frame adds to a single sample's modalities.
FLOW_OUTPUTS = ("flow", "flow_status", "flow_back", "flow_back_status")
#: Columns of samples.parquet that locate files rather than describe the sample.
PATH_COLUMNS = ("shard", *MODALITIES)

# The roles of the table columns that are not drawn factors. Each reader picks the roles it
# excludes: a task slices by everything but identifiers (image size and object counts are
# useful slices), ``inspect`` also hides label columns, conformance tests drawn factors only.
#: samples.parquet: identify the row or locate its files.
SAMPLE_ID_COLUMNS = frozenset({"sample_index", "seed", *PATH_COLUMNS})
#: samples.parquet: what rendering produced (image size, camera matrices, object counts).
SAMPLE_OUTCOME_COLUMNS = frozenset(
    {"width", "height", "K", "world_to_camera", "distortion", "num_objects", "num_visible"}
)
#: objects.parquet: identify the row.
OBJECT_ID_COLUMNS = frozenset({"sample_index", "instance_id", "class_id", "is_distractor"})
#: objects.parquet: labels computed from geometry and pixels.
OBJECT_LABEL_COLUMNS = frozenset(
    {
        "class_name",
        "status",
        "visible_pixels",
        "unoccluded_pixels",
        "visibility",
        "bbox",
        "bbox_amodal",
        "keypoint_names",
        "keypoints",
        "position_cam",
        "rotation_cam",
        "box3d_cam",
        "size",
        "position_world",
        "rotation_world",
    }
)

#: Factor columns renamed in format 2 (version 1 → version 2), applied when reading version 1.
V1_FACTOR_RENAMES = {
    "light.elevation": "lights.sun.elevation",
    "light.azimuth": "lights.sun.azimuth",
    "light.intensity": "lights.sun.intensity",
    "light.color_r": "lights.sun.color.r",
    "light.color_g": "lights.sun.color.g",
    "light.color_b": "lights.sun.color.b",
    "light.ambient": "lights.ambient",
    "camera.look_at_x": "camera.look_at.x",
    "camera.look_at_y": "camera.look_at.y",
    "camera.look_at_z": "camera.look_at.z",
    "ground.color_r": "ground.color.r",
    "ground.color_g": "ground.color.g",
    "ground.color_b": "ground.color.b",
}


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


def shard_dir(root: Path, shard: int) -> Path:
    return root / SHARDS / shard_name(shard)


def sample_file(index: int, modality: str, frame: int | None = None) -> str:
    """File name of one modality of sample ``index`` (of a clip's ``frame``) in its shard."""
    at = "" if frame is None else f".f{frame:04d}"
    return f"{index:06d}{at}.{modality}.{SUFFIX[modality]}"


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` for a relative path that stays inside ``root``; ValueError otherwise.

    Paths come from files on disk (manifests, parquet indexes) that anyone may have edited; a
    reader must never be led to read or hash a file outside the dataset.
    """
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"{root}: path {rel!r} leaves the dataset directory")
    return root / Path(*p.parts)


def shard_table(shard: Path, table: str) -> Path:
    """The file holding shard directory ``shard``'s rows of ``table`` (SAMPLES or OBJECTS):
    the current name, or the format-1/2 one in shards written before (a resumed run, a parent
    dataset being augmented)."""
    current = shard / _SHARD_TABLE[table]
    return current if current.is_file() or not (shard / table).is_file() else shard / table
