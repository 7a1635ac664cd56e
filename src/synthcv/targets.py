"""The one label convention for classification: which object a sample is about, and its label.

Every classification source — the torch adapter, the generative models' data, the tasks
harness, the label-aware augmentations — asks this module, so "the class of a sample" means the
same thing everywhere:

- **target object**: the largest visible (≥ 1 visible pixel) labelled object: not a
  distractor, ``class_id`` ≥ 1. Ties go to the lower instance id, so the choice is stable.
- **label**: 0-based, ``class_id - 1`` (the position of the class in the manifest's class
  list, which is the spec's order), or :data:`NO_LABEL` (-1) when the sample has no target.
  -1 works as ``ignore_index`` in ``torch.nn.CrossEntropyLoss``.
- **detection and segmentation** keep the manifest's class ids (1..C, 0 = background), the
  convention of torchvision's detection models and of semantic maps.
- **aligning with another label space** (e.g. synthetic digits against real MNIST labels) is a
  separate, explicit step: :func:`label_space_by_name` maps classes named by integers to those
  integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NO_LABEL = -1


def is_labelled(obj: Mapping[str, Any]) -> bool:
    """A labelled object: not a distractor and with a class id ≥ 1."""
    return not obj.get("is_distractor") and int(obj.get("class_id") or 0) > 0


def target_object(objects: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The object a classification sample is about (see the module docstring), or None."""
    cands = [o for o in objects if is_labelled(o) and int(o.get("visible_pixels") or 0) > 0]
    if not cands:
        return None
    return max(cands, key=lambda o: (int(o["visible_pixels"]), -int(o["instance_id"])))


def label_of_class_id(class_id: int) -> int:
    """The 0-based label of a 1-based manifest class id."""
    return int(class_id) - 1


def target_label(objects: Iterable[Mapping[str, Any]]) -> int:
    """The sample's 0-based label, or :data:`NO_LABEL` if no labelled object is visible."""
    tgt = target_object(objects)
    return NO_LABEL if tgt is None else label_of_class_id(int(tgt["class_id"]))


def label_space_by_name(classes: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """class_id → label in the label space named by the classes.

    Classes named by integers ("0".."9") map to those integers, so synthetic digits share the
    labels of real digit datasets whatever order or subset the spec lists; otherwise the
    standard 0-based label.
    """
    classes = list(classes)
    names = [str(c["name"]) for c in classes]
    if names and all(n.lstrip("-").isdigit() for n in names):
        return {int(c["id"]): int(c["name"]) for c in classes}
    return {int(c["id"]): label_of_class_id(int(c["id"])) for c in classes}
