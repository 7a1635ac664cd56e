"""The manifest's own integrity: a digest over its content, and consistency with the indexes.

The manifest lists the sha256 of every other file, so it is what makes a dataset verifiable;
an edit to it (a renamed class, a changed count) would otherwise pass every checksum and
silently change what readers and exporters produce. The digest is the sha256 of the manifest's
canonical JSON (keys sorted, no spaces) without the ``manifest_digest`` key itself. It guards
against accidental and naive edits, not against someone who recomputes it.
"""

from __future__ import annotations

import json
from typing import Any

from synthcv.fileio import sha256_text

DIGEST_KEY = "manifest_digest"


def digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != DIGEST_KEY}
    return sha256_text(json.dumps(body, sort_keys=True, separators=(",", ":")))


def with_digest(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, DIGEST_KEY: digest(manifest)}


def problems(manifest: dict[str, Any], num_samples: int) -> list[str]:
    """What is wrong with a manifest read from disk; [] when it is intact and consistent."""
    found = []
    version = manifest.get("format_version")
    if isinstance(version, int) and version >= 2:
        stored = manifest.get(DIGEST_KEY)
        if stored is None:
            found.append(f"manifest.json has no {DIGEST_KEY} (required from format 2 on)")
        elif stored != digest(manifest):
            found.append(
                "manifest.json was changed after it was written (its content no longer matches "
                f"its {DIGEST_KEY})"
            )
    count = manifest.get("count")
    if count is not None and count != num_samples:
        found.append(f"manifest.json says count {count!r} but samples.parquet has {num_samples}")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str)
        for c in classes
    ):
        found.append("manifest.json: classes must be a list of {id, name}")
    elif [c["id"] for c in classes] != list(range(1, len(classes) + 1)):
        found.append("manifest.json: class ids must be 1..C in order")
    if not isinstance(manifest.get("files", {}), dict):
        found.append("manifest.json: files must map relative paths to sha256")
    return found
