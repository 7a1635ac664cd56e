"""The ``hand`` font (pen-stroke digits) and the ``wobble`` bend of any glyph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

import synthcv
from synthcv.assets import AssetError, build_mesh, glyph_outline
from synthcv.assets.handwriting import (
    PEN_WIDTH,
    REPERTOIRES,
    TEMPLATES,
    hand_outline,
    hand_variant,
    hand_variants,
)


def _solid(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)


@pytest.mark.parametrize("char", list("0123456789"))
@pytest.mark.parametrize("repertoire", sorted(REPERTOIRES))
def test_every_hand_template_builds_a_closed_solid_of_the_asked_height(char, repertoire):
    assert hand_variants(char, repertoire) >= 2  # more than one way of writing every digit
    for style in range(12):  # every template (weights sum to at most 8) and a few repeats
        for wobble in (0.0, 0.1):
            asset = {"glyph": char, "font": "hand", "height": 0.1, "depth": 0.01}
            asset = {**asset, "style": style, "wobble": wobble, "stroke": 0.02}
            mesh = build_mesh({**asset, "repertoire": repertoire})
            s = _solid(mesh)
            assert s.is_watertight and s.volume > 0, (char, style, wobble)
            assert mesh.extents[1] == pytest.approx(0.1, rel=1e-9)
            assert mesh.source == f"glyph:hand:{char}"


def test_a_straight_one_is_a_pen_line_with_round_caps():
    # template 0 of "1" is a vertical line 1 unit long: with round caps of the pen's radius
    # the ink is PEN_WIDTH wide and 1 + PEN_WIDTH tall, then scaled to the asked height
    outline = glyph_outline("1", "hand", height=1.0, style=0)
    x0, y0, x1, y1 = outline.bounds
    assert y1 - y0 == pytest.approx(1.0)
    assert x1 - x0 == pytest.approx(PEN_WIDTH / (1 + PEN_WIDTH), rel=1e-3)
    # a wider pen (stroke grows each side by stroke x height) gives a relatively wider line
    bold = glyph_outline("1", "hand", height=1.0, style=0, stroke=0.03)
    assert bold.bounds[2] - bold.bounds[0] > x1 - x0


def test_style_picks_the_template_and_seeds_the_wander():
    a = glyph_outline("7", "hand", style=3, wobble=0.08)
    b = glyph_outline("7", "hand", style=3, wobble=0.08)
    assert a.equals_exact(b, 0.0)
    same_template = [s for s in range(4, 200) if hand_variant("7", s) == hand_variant("7", 3)]
    c = glyph_outline("7", "hand", style=same_template[0], wobble=0.08)
    assert not a.equals_exact(c, 1e-6)  # same way of writing, another wander
    # without wobble only the template matters
    by_variant: dict[int, object] = {}
    for s in range(30):
        g = glyph_outline("7", "hand", style=s)
        v = hand_variant("7", s)
        assert by_variant.setdefault(v, g).equals_exact(g, 1e-12)
    assert sorted(by_variant) == list(range(hand_variants("7")))  # every template is reached
    assert not by_variant[0].equals(by_variant[1])
    # the crossbar template has more ink than the plain 7
    assert len(TEMPLATES["7"][1]) == 2 and by_variant[1].area > by_variant[0].area


def test_templates_are_drawn_as_often_as_people_write_them():
    # most people write a plain "1": it has weight 4 of 6
    counts = np.bincount([hand_variant("1", s) for s in range(6000)], minlength=3)
    assert counts.tolist() == [4000, 1000, 1000]
    counts = np.bincount([hand_variant("4", s) for s in range(300)], minlength=3)
    assert counts.tolist() == [100, 100, 100]  # unweighted digits: all templates equally


def test_wobble_bends_printed_fonts_too_and_keeps_them_solid():
    plain = glyph_outline("4", "DejaVuSans", 0.1)
    bent = glyph_outline("4", "DejaVuSans", 0.1, wobble=0.08, style=5)
    assert bent.is_valid and not bent.equals_exact(plain, 1e-4)
    assert bent.area == pytest.approx(plain.area, rel=0.25)  # bent, not smeared
    assert glyph_outline("4", "DejaVuSans", 0.1, wobble=0.08, style=5).equals_exact(bent, 0.0)
    for char in "0468":
        mesh = build_mesh({"glyph": char, "wobble": 0.12, "style": 11})
        assert _solid(mesh).is_watertight


def test_aspect_sets_how_wide_the_writing_is():
    # the plain "0" is an ellipse 0.72 wide and 1 tall drawn with a round pen: aspect scales
    # the skeleton, so the ink's width is 0.72 * aspect + pen and its height stays 1 + pen
    for aspect in (0.8, 1.0, 1.25):
        g = glyph_outline("0", "hand", height=1.0, style=0, aspect=aspect)
        x0, _, x1, _ = g.bounds
        assert (x1 - x0) * (1 + PEN_WIDTH) == pytest.approx(0.72 * aspect + PEN_WIDTH, rel=0.02)
    # with a wobble it replaces the width draw only: the same style bends the same way
    a = glyph_outline("8", "hand", style=7, wobble=0.15, aspect=1.0)
    b = glyph_outline("8", "hand", style=7, wobble=0.15, aspect=1.2)
    ratio = (b.bounds[2] - b.bounds[0]) / (a.bounds[2] - a.bounds[0])
    assert 1.1 < ratio < 1.25
    # a printed font's outline is scaled before slant and pen: exactly aspect x its width
    plain = glyph_outline("4", "DejaVuSans", height=1.0)
    narrow = glyph_outline("4", "DejaVuSans", height=1.0, aspect=0.7)
    width = lambda g: g.bounds[2] - g.bounds[0]  # noqa: E731
    assert width(narrow) == pytest.approx(0.7 * width(plain), rel=1e-3)
    assert narrow.area == pytest.approx(0.7 * plain.area, rel=1e-3)
    m = build_mesh({"glyph": "4", "font": "cmti10", "aspect": 0.7, "shear": 20})
    assert _solid(m).is_watertight


def test_aspect_is_recorded_and_tested_against_its_spec(tmp_path):
    from synthcv.conformance import check_conformance

    spec = synthcv.load_spec(
        Path(__file__).resolve().parents[1] / "examples" / "digits_hand.yaml",
        overrides={"objects": {"defaults": {"asset": {"aspect": {"uniform": [0.8, 1.2]}}}}},
    )
    synthcv.generate(spec, tmp_path / "d", count=40, progress=False)
    ds = synthcv.open_dataset(tmp_path / "d")
    values = [ds[i]["objects"][0]["glyph.aspect"] for i in range(len(ds))]
    assert all(0.8 <= v <= 1.2 for v in values) and np.std(values) > 0.05
    rows = check_conformance(tmp_path / "d").rows
    row = next(r for r in rows if r.factor == "glyph.aspect")
    assert row.spec_path.endswith("asset.aspect") and not row.flagged


#: Ink areas of the original hand's 4s, 6s and 8s (styles 0-5, wobble 0.1), measured before
#: repertoire 2 existed: a spec that does not ask for it must keep drawing these digits.
REPERTOIRE_1_AREAS = {
    "4": [0.264599, 0.304755, 0.244899, 0.274432, 0.251089, 0.265681],
    "6": [0.275885, 0.244981, 0.309178, 0.294397, 0.268569, 0.24875],
    "8": [0.323875, 0.417001, 0.355711, 0.398181, 0.409594, 0.400726],
}


def test_the_original_repertoire_still_draws_the_same_digits():
    for char, areas in REPERTOIRE_1_AREAS.items():
        got = [hand_outline(char, style, 0.1).area for style in range(6)]
        assert got == pytest.approx(areas, abs=2e-6), char
        explicit = [hand_outline(char, s, 0.1, repertoire=1).area for s in range(6)]
        assert explicit == got


@pytest.mark.parametrize(("older", "added"), [(1, {"4": 2, "6": 2, "8": 2}), (2, {"2": 1, "7": 2})])
def test_a_new_repertoire_adds_its_ways_of_writing_and_nothing_else(older, added):
    """Repertoire 2 adds 4s, 6s and 8s to the original hand; 3 adds a 2 and two 7s to 2.
    Every other digit, and every style that picks an older template, is drawn as before."""
    newer = older + 1
    for char in "0123456789":
        n_old, n_new = hand_variants(char, older), hand_variants(char, newer)
        if char in added:
            assert n_new == n_old + added[char]
            # every template is drawn, the new ones included, as style runs
            assert {hand_variant(char, s, newer) for s in range(40)} == set(range(n_new))
            new = [s for s in range(40) if hand_variant(char, s, newer) >= n_old]
            assert new and all(
                not hand_outline(char, s, 0.0, repertoire=newer).equals(
                    hand_outline(char, s, 0.0, repertoire=older)
                )
                for s in new
            )
        else:
            assert n_new == n_old
            for s in range(8):
                assert hand_outline(char, s, 0.1, repertoire=newer).equals(
                    hand_outline(char, s, 0.1, repertoire=older)
                )
    assert all(hand_variants(c, 3) == len(TEMPLATES[c]) for c in "0123456789")
    with pytest.raises(ValueError, match=r"repertoire 4 is not one of \[1, 2, 3\]"):
        hand_variants("4", 4)


def test_repertoire_is_recorded_and_validated_in_a_spec(tmp_path):
    from synthcv.spec import SpecError

    examples = Path(__file__).resolve().parents[1] / "examples"
    hand_only = synthcv.load_spec(
        examples / "digits_hand.yaml",
        overrides={"objects": {"defaults": {"asset": {"font": "hand"}}}},
    )
    two = synthcv.load_spec(
        examples / "digits_hand.yaml",
        overrides={"objects": {"defaults": {"asset": {"font": "hand", "repertoire": 2}}}},
    )
    assert two.spec_hash != hand_only.spec_hash  # a new repertoire, a new dataset
    synthcv.generate(two, tmp_path / "d", count=24, progress=False)
    ds = synthcv.open_dataset(tmp_path / "d")
    rows = [ds[i]["objects"][0] for i in range(len(ds))]
    assert all(r["glyph.repertoire"] == 2 for r in rows)
    assert all(0 <= r["glyph.variant"] < hand_variants(r["glyph.text"], 2) for r in rows)
    with pytest.raises(SpecError, match=r"asset\.repertoire: got 4, expected a number in \[1, 3\]"):
        synthcv.load_spec(
            examples / "digits_hand.yaml",
            overrides={"objects": {"defaults": {"asset": {"repertoire": 4}}}},
        )


def test_stroke_ends_overshoot_stop_short_and_hook_within_their_bounds():
    """A straight stroke 1 unit long, many hands: its ends move along the stroke by at most
    0.12 (short) / 0.1 (over) times the amount, a hook adds at most 0.1 away from the end at
    a sharp angle, and all three happen; 0 changes nothing."""
    from synthcv.assets.handwriting import stroke_ends

    line = np.column_stack([np.zeros(9), np.linspace(1.0, 0.0, 9)])
    assert np.array_equal(stroke_ends([line], np.random.default_rng(0), 0.0)[0], line)
    longer = shorter = hooked = 0
    for seed in range(400):
        (out,) = stroke_ends([line], np.random.default_rng(seed), 1.0)
        on_axis = np.abs(out[:, 0]) < 1e-9
        body = out[on_axis]
        top, bottom = body[:, 1].max(), body[:, 1].min()
        assert 1.0 - 0.12 - 1e-9 <= top <= 1.1 + 1e-9 and -0.1 - 1e-9 <= bottom <= 0.12 + 1e-9
        longer += top > 1.0 + 1e-6
        shorter += top < 1.0 - 1e-6
        off = out[~on_axis]
        assert len(off) <= 2 and all(i in (0, len(out) - 1) for i in np.flatnonzero(~on_axis))
        for i in np.flatnonzero(~on_axis):  # a hook: short, and bent away from the stroke
            end = out[1] if i == 0 else out[-2]
            assert np.linalg.norm(out[i] - end) <= 0.1 + 1e-9
        hooked += len(off)
    assert longer > 100 and shorter > 100
    assert 0.4 * 400 < hooked < 0.6 * 400  # starts 35 %, ends 15 %


def test_flourish_changes_only_the_ends_and_is_recorded(tmp_path):

    for char in "0123456789":
        for s in range(4):
            plain = hand_outline(char, s, 0.1, repertoire=2)
            assert hand_outline(char, s, 0.1, repertoire=2, flourish=0.0).equals(plain)
            drawn = hand_outline(char, s, 0.1, repertoire=2, flourish=1.0)
            assert drawn.equals(hand_outline(char, s, 0.1, repertoire=2, flourish=1.0))
            # the same figure: most of the ink is shared, only the ends moved
            assert drawn.intersection(plain).area > 0.7 * plain.area
    assert any(
        not hand_outline(c, s, 0.1, flourish=1.0).equals(hand_outline(c, s, 0.1))
        for c in "17"
        for s in range(4)
    )
    _recorded_and_validated(tmp_path, "flourish", 5, r"got 5, expected a number in \[0, 4\]")


def _recorded_and_validated(tmp_path: Path, key: str, bad: float, pattern: str) -> None:
    """A hand parameter drawn per sample lands in the objects table as ``glyph.<key>``, and an
    out-of-range value is refused with its spec path."""
    from synthcv.spec import SpecError

    examples = Path(__file__).resolve().parents[1] / "examples"
    over = {"objects": {"defaults": {"asset": {"font": "hand", key: {"uniform": [0, 1]}}}}}
    spec = synthcv.load_spec(examples / "digits_hand.yaml", overrides=over)
    synthcv.generate(spec, tmp_path / "d", count=8, progress=False)
    ds = synthcv.open_dataset(tmp_path / "d")
    values = [ds[i]["objects"][0][f"glyph.{key}"] for i in range(len(ds))]
    assert all(0 <= v <= 1 for v in values) and len(set(values)) > 1
    wrong = {"objects": {"defaults": {"asset": {key: bad}}}}
    with pytest.raises(SpecError, match=rf"asset\.{key}: {pattern}"):
        synthcv.load_spec(examples / "digits_hand.yaml", overrides=wrong)


def _pieces(geom) -> int:
    return len(getattr(geom, "geoms", [geom]))


def test_pen_pressure_varies_the_width_so_thinning_breaks_thin_parts(tmp_path):

    plain_breaks = pressed_breaks = 0
    for char in "0123456789":
        for s in range(4):
            plain = hand_outline(char, s, 0.1)
            assert hand_outline(char, s, 0.1, pressure=0.0).equals(plain)  # 0: the round pen
            pressed = hand_outline(char, s, 0.1, pressure=0.7)
            assert pressed.equals(hand_outline(char, s, 0.1, pressure=0.7))  # seeded by style
            assert _pieces(pressed) == _pieces(plain)  # a pen that presses and lifts, unbroken
            # the same skeleton: the ink overlaps, but its width is no longer the pen's
            assert pressed.intersection(plain).area > 0.5 * plain.area
            assert not pressed.equals(plain)
            # thinning a constant pen thins it everywhere; a pressed one breaks where it was thin
            plain_breaks += _pieces(glyph_outline(char, "hand", 1.0, stroke=-0.03, style=s)) - 1
            pressed_breaks += (
                _pieces(glyph_outline(char, "hand", 1.0, stroke=-0.03, style=s, pressure=0.7)) - 1
            )
    assert plain_breaks <= 2 and pressed_breaks >= 10, (plain_breaks, pressed_breaks)
    solid = _solid(build_mesh({"glyph": "8", "font": "hand", "pressure": 0.7, "stroke": -0.03}))
    assert solid.is_watertight and solid.volume > 0

    _recorded_and_validated(tmp_path, "pressure", 1.5, r"got 1\.5, expected a number in \[0, 1\]")


@pytest.mark.parametrize(
    ("asset", "pattern"),
    [
        ({"glyph": "A", "font": "hand"}, r"hand font writes only the digits 0123456789, not 'A'"),
        ({"glyph": "7", "font": "hand", "wobble": 0.5}, r"wobble got 0.5, expected a fraction"),
        ({"glyph": "7", "style": -1}, r"style got -1, expected an integer >= 0"),
        ({"glyph": "7", "style": 1.5}, r"style got 1.5"),
        ({"glyph": "7", "font": "hand", "aspect": 5}, r"aspect got 5.0, expected a width factor"),
        ({"glyph": "7", "font": "hand", "repertoire": 1.5}, r"repertoire got 1.5, expected one"),
        ({"glyph": "7", "font": "hand", "flourish": -1}, r"flourish got -1.0, expected a number"),
        ({"glyph": "7", "font": "hand", "pressure": 2}, r"pressure got 2.0, expected a number"),
    ],
)
def test_bad_hand_assets_are_explained(asset, pattern):
    with pytest.raises(AssetError, match=pattern):
        build_mesh(asset)


def test_hand_digits_spec_records_the_variant_and_validates(tmp_path):
    from pathlib import Path

    from synthcv.preflight import check_resources

    spec = synthcv.load_spec(
        Path(__file__).resolve().parents[1] / "examples" / "digits_hand.yaml",
        overrides={"objects": {"defaults": {"asset": {"font": "hand"}}}},
    )
    assert check_resources(spec) == []
    out = tmp_path / "hand"
    synthcv.generate(spec, out, count=12, progress=False)
    ds = synthcv.open_dataset(out)
    seen = set()
    for i in range(len(ds)):
        (obj,) = ds[i]["objects"]
        assert obj["glyph.font"] == "hand" and obj["class_name"] == obj["glyph.text"]
        assert 0 <= obj["glyph.variant"] < hand_variants(obj["glyph.text"])
        seen.add((obj["glyph.text"], obj["glyph.variant"]))
        assert 0.02 <= obj["glyph.wobble"] <= 0.12 and -20 <= obj["glyph.shear"] <= 35
        assert np.count_nonzero(ds[i]["instance"]) > 20  # the digit is in view
    assert len(seen) > 3
