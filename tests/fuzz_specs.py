"""Mutation fuzzing of dataset specs: bad specs derived from examples/*.yaml.

:func:`iter_mutants` yields ``(name, spec)`` pairs, deterministic for a seed: ``spec`` is a dict
(for ``load_spec(dict)``), YAML text (``str``) or raw bytes (for a file: not UTF-8, ...).
:func:`reproducers` yields the reliability issue's reproducers F01-F16 the same way.
:func:`write_mutant` turns any of them into a spec file (next to copies of the examples, so
``extends: digits.yaml`` resolves), for driving the same mutants through the CLI::

    for name, spec in iter_mutants(300, seed=0):
        path = write_mutant(name, spec, workdir)
        subprocess.run(["synthcv", "generate", str(path), "--out", ...])

Mutators are small functions ``(rng, spec_dict) -> dict | str | bytes`` listed in
:data:`MUTATORS`; add one by writing a function and appending it. They receive a private deep
copy and may modify it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

Spec = dict[str, Any] | str | bytes
Mutator = Callable[[random.Random, dict[str, Any]], Spec]
Path_ = tuple[str | int, ...]

# --------------------------------------------------------------------------- the seed corpus


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _trim(v: Any) -> Any:
    """Keep preflight cheap: long choices and many classes cut to four (every font of every
    digit class is built once per new variant)."""
    if isinstance(v, dict):
        items = list(v.items())
        if "classes" in v and isinstance(v["classes"], dict):
            v = {**v, "classes": dict(list(v["classes"].items())[:4])}
            items = list(v.items())
        if set(v) == {"choice"} and isinstance(v["choice"], list):
            return {"choice": v["choice"][:4]}
        if set(v) == {"choice"} and isinstance(v["choice"], dict):
            return {"choice": dict(list(v["choice"].items())[:4])}
        return {k: _trim(x) for k, x in items}
    if isinstance(v, list):
        return [_trim(x) for x in v]
    return v


def seed_corpus() -> list[tuple[str, dict[str, Any]]]:
    """``(name, raw spec dict)`` of every example spec, ``extends:`` merged in, trimmed."""
    out = []
    for p in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        while isinstance(data, dict) and "extends" in data:
            parent = yaml.safe_load((p.parent / data.pop("extends")).read_text())
            data = _merge(parent, data)
        out.append((p.stem, _trim(data)))
    return out


# --------------------------------------------------------------------------- tree helpers


def _nodes(d: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, d
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _nodes(v, (*path, i))


def _pick(rng: random.Random, d: dict, want: Callable[[Any], bool]) -> Path_ | None:
    found = [p for p, v in _nodes(d) if p and want(v)]
    return rng.choice(found) if found else None


def _set(d: Any, path: Path_, value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _leaf(v: Any) -> bool:
    return not isinstance(v, dict | list)


def _replace(rng: random.Random, d: dict, want: Callable[[Any], bool], values: list) -> dict:
    path = _pick(rng, d, want) or _pick(rng, d, _leaf)
    if path is not None:
        value = rng.choice(values)
        _set(d, path, value if _leaf(value) else copy.deepcopy(value))
    return d


def _text(d: dict) -> str:
    return yaml.safe_dump(d, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- mutators


def delete_key(rng: random.Random, d: dict) -> Spec:
    path = _pick(rng, d, lambda v: isinstance(v, dict) and v) or ()
    node = d
    for k in path:
        node = node[k]
    if node:
        del node[rng.choice(list(node))]
    return d


def rename_key(rng: random.Random, d: dict) -> Spec:
    path = _pick(rng, d, lambda v: isinstance(v, dict) and v) or ()
    node = d
    for k in path:
        node = node[k]
    if node:
        key = rng.choice(list(node))
        s = str(key)
        typo = rng.choice([s + "s", s[:-1], s.upper(), s[::-1], "_" + s, s.replace("e", "a")])
        node[typo or "x"] = node.pop(key)
    return d


def wrong_type(rng: random.Random, d: dict) -> Spec:
    values = ["abc", [1, 2], {"x": 1}, True, None, 3, -1.5, [], {}, "", [[1]], "1e3"]
    return _replace(rng, d, _leaf, values)


def huge_number(rng: random.Random, d: dict) -> Spec:
    values = [1e300, -1e300, 10**30, 10**400, 1e20, 2**64, 1e6, 10**7 + 1, 8193, 1.7e308]
    return _replace(rng, d, _is_num, values)


def negative_or_zero(rng: random.Random, d: dict) -> Spec:
    path = _pick(rng, d, _is_num)
    if path is not None:
        node = d
        for k in path[:-1]:
            node = node[k]
        v = node[path[-1]]
        node[path[-1]] = rng.choice([-abs(v) - 1, 0, -0.0, 1e-300, -1e-9])
    return d


def non_finite(rng: random.Random, d: dict) -> Spec:
    return _replace(rng, d, _is_num, [float("nan"), float("inf"), float("-inf")])


def non_finite_text(rng: random.Random, d: dict) -> Spec:
    path = _pick(rng, d, _is_num)
    if path is not None:
        _set(d, path, "__NONFINITE__")
    token = rng.choice([".nan", ".inf", "-.inf", ".NaN", "1e999"])
    return _text(d).replace("__NONFINITE__", token)


def huge_string(rng: random.Random, d: dict) -> Spec:
    s = rng.choice(["a" * 300, "a" * 5000, "x" * 20000, "é" * 3000, "a/" * 200 + "x.png"])
    return _replace(rng, d, lambda v: isinstance(v, str), [s])


def deep_nesting(rng: random.Random, d: dict) -> Spec:
    value: Any = 1.0
    for _ in range(rng.choice([70, 300, 2000])):
        value = rng.choice([[value], {"uniform": value}])
    path = _pick(rng, d, _leaf)
    if path is not None:
        _set(d, path, value)
    return d


def deep_nesting_text(rng: random.Random, d: dict) -> Spec:
    n = rng.choice([65, 500, 3000])
    key = rng.choice(["camera", "count", "objects", "zzz"])
    body = "[" * n + "1" + "]" * n if rng.random() < 0.5 else "{a: " * n + "1" + "}" * n
    d.pop(key, None)
    return _text(d) + f"{key}: {body}\n"


def alias_bomb_text(rng: random.Random, d: dict) -> Spec:
    levels = rng.choice([6, 9, 12])
    text = 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n"
    key = rng.choice(["count", "camera", "seed", "objects"])
    d.pop(key, None)
    return text + _text(d) + f"{key}: [{','.join([f'*a{levels - 1}'] * 9)}]\n"


def alias_harmless_text(rng: random.Random, d: dict) -> Spec:
    """Anchors and aliases as people use them: must still load (or fail cleanly)."""
    d.pop("lights", None)
    return _text(d) + "lights: {ambient: &c {uniform: [0.3, 0.5]}, sun: {intensity: *c}}\n"


def shared_reference_bomb(rng: random.Random, d: dict) -> Spec:
    a: list = ["x"] * 9
    for _ in range(rng.choice([5, 8, 10])):
        a = [a] * 9
    return _replace(rng, d, _leaf, [None]) | {rng.choice(["count", "camera"]): a}


def self_reference(rng: random.Random, d: dict) -> Spec:
    loop: dict = {"uniform": [0, 1]}
    loop["again"] = loop
    target = rng.choice(["camera", "objects", "lights"])
    section = d.get(target) if isinstance(d.get(target), dict) else {}
    section = dict(section)
    section[rng.choice(["distance", "pose", "sun", "loop"])] = loop
    d[target] = section
    return d


def bad_distribution(rng: random.Random, d: dict) -> Spec:
    values = [
        {"gaussian": [0, 1]},
        {"uniform": [1]},
        {"uniform": [2, 1]},
        {"randint": [1, 1e30]},
        {"randint": [0.5, 2]},
        {"choice": []},
        {"choice": {}},
        {"choice": {"a": -1}},
        {"normal": [0, -1]},
        {"normal": [0, 1], "clip": [2, 1]},
        {"loguniform": [-1, 1]},
        {"uniform": [0, 1], "clip": [0, 1]},
        {"uniform": [0, 1], "normal": [0, 1]},
        {"uniform": ["a", "b"]},
        {"choice": [[1], {"a": 2}]},
        {"uniform": [-1e308, 1e308]},
    ]
    return _replace(rng, d, lambda v: _is_num(v) or (isinstance(v, dict) and len(v) <= 2), values)


def swap_list_dict(rng: random.Random, d: dict) -> Spec:
    path = _pick(rng, d, lambda v: isinstance(v, dict | list) and v)
    if path is not None:
        node = d
        for k in path:
            node = node[k]
        _set(d, path, list(node.values()) if isinstance(node, dict) else dict(enumerate(node)))
    return d


SWEEP_FIELDS = [
    "camera.elevation",
    "camera.distance",
    "objects.count",
    "lights.ambient",
    "ground.texture",
    "image.width",
    "objects.classes",
    "",
    "camera.nope",
    "a" * 500,
    "objects.classes.nosuch.scale",
    "objects.pose.rotation",
    "distractors.assets[0].size",
    "camera.look_at",
    "sweep.field",
]


def wrong_sweep_field(rng: random.Random, d: dict) -> Spec:
    d["sweep"] = {"field": rng.choice(SWEEP_FIELDS), "values": [1, 2]}
    return d


def wrong_sweep_values(rng: random.Random, d: dict) -> Spec:
    field = rng.choice(SWEEP_FIELDS[:5])
    kind = rng.random()
    if kind < 0.5:
        bad = ["abc", -5, 1e6, float("nan"), None, True, [1, 2], {"uniform": [0, 1]}, "/etc/passwd"]
        d["sweep"] = {"field": field, "values": rng.sample(bad, k=rng.randint(1, 4))}
    elif kind < 0.8:
        d["sweep"] = {
            "field": field,
            "linspace": rng.choice(
                [[0, 10, 10**9], [0, float("inf"), 3], [80, 10, 3], [0, 1, 0], [0, 1, 2.5], [0]]
            ),
        }
    else:
        d["sweep"] = rng.choice(
            [
                {"field": field},
                {"field": field, "values": [], "linspace": [0, 1, 2]},
                {"field": field, "values": []},
                {"field": field, "values": list(range(20_000))},
                "camera.elevation",
            ]
        )
    return d


BAD_PATHS = [
    "/etc/passwd",
    "/dev/zero",
    "/tmp",
    "a" * 300 + ".png",
    "x\0y.png",
    "../../../../../etc/shadow",
    "~nosuchuser/x.png",
    "/nonexistent/x.obj",
    "missing.ttf",
    "./",
    "checker_bleu",
    str(REPO / "README.md"),
    "/proc/self/mem",
]


def bad_path(rng: random.Random, d: dict) -> Spec:
    value = rng.choice(BAD_PATHS)
    where = rng.choice(["ground", "material", "font", "mesh", "extends"])
    if where == "ground":
        d.setdefault("ground", {})
        if isinstance(d["ground"], dict):
            d["ground"]["texture"] = value
    elif where == "extends":
        d["extends"] = value
    else:
        classes = d.get("objects", {}).get("classes", {})
        if isinstance(classes, dict) and classes:
            c = classes[rng.choice(list(classes))]
            if where == "material":
                c.setdefault("material", {})["texture"] = value
            elif where == "font":
                c["asset"] = {"glyph": "7", "font": value}
            else:
                c["asset"] = {"mesh": value, "size": 0.1}
    return d


def not_utf8(rng: random.Random, d: dict) -> Spec:
    data = _text(d).encode()
    cut = rng.randrange(len(data) + 1)
    return data[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\x00", b"\xed\xa0\x80"]) + data[cut:]


def huge_int_text(rng: random.Random, d: dict) -> Spec:
    key = rng.choice(["count", "seed"])
    d.pop(key, None)
    return (
        _text(d) + f"{key}: {rng.choice(['1' + '0' * 5000, '-' + '9' * 1500, '0x' + 'f' * 3000])}\n"
    )


def top_level_garbage(rng: random.Random, d: dict) -> Spec:
    return rng.choice(
        ["", "[]", "42", "null", "- a\n- b\n", "{{{", ":", "\t", "'", "~", "---\n---\n"]
    )


def yaml_tags(rng: random.Random, d: dict) -> Spec:
    tag = rng.choice(
        [
            "!!python/object/apply:os.system ['true']",
            "!!binary aGVsbG8=",
            "2001-02-30",
            "2001-12-14t21:59:43.10-05:00",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!unknown 5",
            "*undefined_alias",
            "<<: {a: 1}",
        ]
    )
    key = rng.choice(["count", "seed", "camera"])
    d.pop(key, None)
    return _text(d) + f"{key}: {tag}\n"


def boundary_number(rng: random.Random, d: dict) -> Spec:
    values = [179, 179.0, 0, 90.0001, -90.0001, 1000, 1000.0001, 1e4, 10001, 0.3, 0.31, 2**63]
    return _replace(rng, d, _is_num, values)


def image_too_big(rng: random.Random, d: dict) -> Spec:
    d["image"] = {
        "width": rng.choice([8192, 9000, 4096]),
        "height": rng.choice([8192, 4096]),
        "supersample": rng.choice([1, 2, 3, 8]),
    }
    return d


MUTATORS: list[Mutator] = [
    delete_key,
    rename_key,
    wrong_type,
    huge_number,
    negative_or_zero,
    non_finite,
    non_finite_text,
    huge_string,
    deep_nesting,
    deep_nesting_text,
    alias_bomb_text,
    alias_harmless_text,
    shared_reference_bomb,
    self_reference,
    bad_distribution,
    swap_list_dict,
    wrong_sweep_field,
    wrong_sweep_values,
    bad_path,
    not_utf8,
    huge_int_text,
    top_level_garbage,
    yaml_tags,
    boundary_number,
    image_too_big,
]


#: Mutators whose result cannot be walked again (too deep, shared, circular): applied last.
TERMINAL = {"deep_nesting", "shared_reference_bomb", "self_reference"}


def iter_mutants(n: int = 300, seed: int = 0) -> Iterator[tuple[str, Spec]]:
    """``n`` mutated specs, the same for the same seed: each an example spec with one
    mutator applied (a dict result sometimes gets a second one)."""
    rng = random.Random(seed)
    corpus = seed_corpus()
    for i in range(n):
        base_name, base = corpus[i % len(corpus)]
        spec: Spec = copy.deepcopy(base)
        names = []
        for _ in range(2 if rng.random() < 0.3 else 1):
            if not isinstance(spec, dict) or (names and names[-1] in TERMINAL):
                break
            m = rng.choice(MUTATORS)
            names.append(m.__name__)
            spec = m(rng, spec)
        yield f"{i:03d}-{base_name}-{'+'.join(names)}", spec


# --------------------------------------------------------------------------- reproducers

_CUBE = "objects: {classes: {c: {asset: {primitive: cube, size: 0.05}}}}\n"


def _bomb() -> str:
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        text += f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    return (
        text
        + "count: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
        + "objects: {classes: {c: {asset: {primitive: cube}}}}\n"
    )


def reproducers() -> Iterator[tuple[str, Spec]]:
    """The reliability issue's reproducers F01-F16 (content as filed)."""
    small = "count: 1\nimage: {width: 32, height: 32}\n"
    yield "F01_nan_constant", small + "camera: {fov: .nan}\n" + _CUBE
    yield (
        "F02_font_not_a_font",
        small + 'objects: {classes: {c: {asset: {glyph: "7", font: /etc/passwd}}}}\n',
    )
    yield "F03_texture_name_too_long", small + f"ground: {{texture: {'a' * 300}}}\n" + _CUBE
    yield "F04_extends_binary", "extends: /bin/ls\n" + _CUBE
    yield "F05_spec_not_utf8", b"count: 1\n\xff\xfe\n" + _CUBE.encode()
    yield (
        "F06_randint_inf",
        "count: 1\nobjects: {count: {randint: [1, .inf]},"
        " classes: {c: {asset: {primitive: cube}}}}\n",
    )
    yield (
        "F07_deep_nesting",
        "count: 1\n" + _CUBE + "camera: {distance: " + "[" * 1000 + "1" + "]" * 1000 + "}\n",
    )
    yield "F08_int_5000_digits", "count: 1" + "0" * 5000 + "\n" + _CUBE
    yield "F09_yaml_alias_bomb", _bomb()
    yield (
        "F10_texture_not_an_image",
        "count: 2\nimage: {width: 32, height: 32}\nground: {texture: /etc/passwd}\n" + _CUBE,
    )
    yield (
        "F11_lookat_1e20_hang",
        (
            "count: 1\nseed: 3\nimage: {width: 128, height: 128}\n"
            "camera: {look_at: [0, 1.0e+20, 0.05], azimuth: {uniform: [0, 360]}}\n"
            "ground: {texture: none}\n"
            "objects: {classes: {c: {asset: {primitive: cube, size: 0.08}}}}\n"
        ),
    )
    yield (
        "F12_huge_image_bad_alloc",
        (
            "extends: digits.yaml\nobjects:\n  defaults:\n    asset:\n"
            "      font: {choice: {hand: 2.0, DejaVuSans: 0.1}}\n"
            "      style: {randint: [0, 999999]}\n"
            "image:\n  width: 8192\n  height: 8192\n"
        ),
    )
    yield (
        "F13_sweep_count_1e6_segv",
        (
            "count: 4\nseed: 3\nimage: {width: 128, height: 128}\n"
            "objects: {count: {randint: [2, 4]}, classes: {duck: {asset: {pybullet: duck}},"
            " cube: {asset: {primitive: cube, size: 0.08}}}}\n"
            "sweep: {field: objects.count, values: [-5, 1000000.0]}\noutputs: {shard_size: 8}\n"
        ),
    )
    yield (
        "F14_sweep_error_at_top_level",
        "count: 1\nsweep: {field: image.width, values: [8, 16]}\n" + _CUBE,
    )
    yield (
        "F15_far_tiny_blank_images",
        "count: 2\nimage: {width: 32, height: 32}\ncamera: {far: 1.0e-9}\n" + _CUBE,
    )
    yield (
        "F16_sweep_value_wrong_type",
        small + "sweep: {field: camera.elevation, values: [abc]}\n" + _CUBE,
    )


# --------------------------------------------------------------------------- drivers


def prepare_workdir(workdir: Path) -> Path:
    """``workdir`` with copies of the example specs, so ``extends: digits.yaml`` resolves."""
    workdir.mkdir(parents=True, exist_ok=True)
    for p in EXAMPLES.glob("*.yaml"):
        (workdir / p.name).write_text(p.read_text())
    return workdir


def write_mutant(name: str, spec: Spec, workdir: Path) -> Path:
    """A spec file for any mutant. Dicts are written as YAML (NaN as ``.nan``, shared lists as
    anchors and aliases, so an alias bomb stays a bomb); a dict too deep for PyYAML's writer
    becomes the same value as nested flow text."""
    path = workdir / f"{name}.yaml"
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    elif isinstance(spec, str):
        path.write_text(spec)
    else:
        try:
            path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        except RecursionError:
            path.write_text("count: " + "[" * 3000 + "1" + "]" * 3000 + "\n")
    return path
