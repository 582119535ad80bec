"""``--regions auto``: the sources found in a sound map (``regions.group_positions``), the picture the namer
sees of each (``naming.naming_box``) and the namer's training pictures (``naming.write_naming_crops``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avkit.apps.separation.naming import NAMING_SIDE, naming_box, write_naming_crops
from avkit.apps.separation.regions import group_positions


def _map(cells: dict[tuple[int, int], float], size: int = 8) -> np.ndarray:
    share = np.zeros((size, size))
    for (y, x), v in cells.items():
        share[y, x] = v
    return share


def _corr(groups: list[list[tuple[int, int]]], within: float, between: float, size: int = 8) -> np.ndarray:
    """A correlation matrix over the positions: ``within`` inside each group, ``between`` across groups."""
    label = -np.ones(size * size, int)
    for g, cells in enumerate(groups):
        for y, x in cells:
            label[y * size + x] = g
    same = (label[:, None] == label[None, :]) & (label[:, None] >= 0)
    corr = np.where(same, within, between)
    np.fill_diagonal(corr, 1.0)
    return corr


def _cells(region: np.ndarray) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in np.argwhere(region)}


LEFT = [(3, 0), (3, 1), (4, 0), (4, 1)]
RIGHT = [(3, 6), (3, 7), (4, 6), (4, 7)]


def test_two_players_apart_are_two_sources() -> None:
    share = _map({**{c: 0.4 for c in LEFT}, **{c: 0.3 for c in RIGHT}})
    found = group_positions(share, _corr([LEFT, RIGHT], 0.8, 0.0))
    assert [_cells(r) for r in found] == [set(LEFT), set(RIGHT)]  # strongest first


def test_one_instruments_parts_apart_that_sound_together_are_one_source() -> None:
    share = _map({**{c: 0.4 for c in LEFT}, **{c: 0.3 for c in RIGHT}})
    found = group_positions(share, _corr([LEFT + RIGHT], 0.8, 0.0))
    assert [_cells(r) for r in found] == [set(LEFT) | set(RIGHT)]


def test_touching_hills_are_one_across_a_dip_and_two_across_a_valley() -> None:
    """Two peaks in one row joined by weaker positions (a position between hills joins the higher one);
    their mask changes do not go together, so only the height where they meet decides."""
    row = {(4, 1): 0.5, (4, 2): 0.1, (4, 3): 0.1, (4, 4): 0.4}
    a, b = [(4, 1), (4, 2)], [(4, 3), (4, 4)]
    valley = group_positions(_map(row), _corr([a, b], 0.9, 0.0))
    assert len(valley) == 2 and (4, 1) in _cells(valley[0]) and (4, 4) in _cells(valley[1])
    dip = group_positions(_map({**row, (4, 2): 0.3, (4, 3): 0.3}), _corr([a, b], 0.9, 0.0))
    assert [_cells(r) for r in dip] == [set(a) | set(b)]


def test_weak_positions_and_sources_past_the_limit_are_left_out() -> None:
    spots = [(1, 1), (1, 6), (6, 1), (6, 6)]
    share = _map({(1, 1): 0.5, (1, 6): 0.4, (6, 1): 0.3, (6, 6): 0.05, (3, 3): 0.02})
    corr = _corr([[c] for c in spots], 1.0, 0.0)
    assert [_cells(r) for r in group_positions(share, corr)] == [{(1, 1)}, {(1, 6)}, {(6, 1)}]  # 0.05 < min_share
    assert len(group_positions(share, corr, max_sources=2)) == 2
    assert group_positions(np.zeros((8, 8)), np.eye(64)) == []


@pytest.mark.parametrize("box,expected", [
    ((60, 2, 64, 6), (32.0, 0.0, 64.0, 32.0)),  # a small box in a corner: half of each side, inside the frame
    ((10, 20, 20, 30), (0.0, 9.0, 32.0, 41.0)),  # grown about its centre, moved inside
    ((0, 0, 64, 64), (0.0, 0.0, 64.0, 64.0)),  # already larger: as it is
])
def test_the_namer_sees_at_least_half_of_each_side_around_a_found_box(box, expected) -> None:
    assert naming_box(box, (64, 64)) == pytest.approx(expected)
    x0, y0, x1, y1 = naming_box(box, (48, 96))
    assert x1 - x0 >= NAMING_SIDE * 96 and y1 - y0 >= NAMING_SIDE * 48 and x0 >= 0 and y0 >= 0 and x1 <= 96 and y1 <= 48


def test_naming_crops_cut_every_player_and_label_it(duet, tmp_path: Path) -> None:
    from avkit.data.synthetic import generate
    from avkit.errors import AvkitError, OutputExistsError
    from avkit.io import read_clip

    video, row = duet
    root = video.parent.parent
    generate("gm_instruments", tmp_path / "solo", 1, seed=6, duration=3.0)
    out = tmp_path / "crops"
    written = write_naming_crops(root, out, parts=2) + write_naming_crops(tmp_path / "solo", tmp_path / "crops_solo", parts=2)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    solo = [json.loads(line) for line in (tmp_path / "crops_solo" / "manifest.jsonl").read_text().splitlines()]
    players = [p["label"] for p in row["meta"]["sources"]]
    assert [r["label"] for r in rows] == [players[0]] * 3 + [players[1]] * 3  # each: drawn box and 2 parts
    assert len(solo) == 4 and written == 10  # a solo adds its whole frame
    assert json.loads((out / "classes.json").read_text()) == json.loads((root / "classes.json").read_text())
    for r in rows + solo:
        frames = read_clip((out if r in rows else tmp_path / "crops_solo") / r["path"], audio=False).frames
        assert frames.shape[1] >= 32 and frames.shape[2] >= 32 and frames.shape[1] % 2 == 0 == frames.shape[2] % 2
    with pytest.raises(OutputExistsError, match="crops: already exists"):
        write_naming_crops(root, out, parts=2)  # a dataset there already: not replaced without overwrite
    assert write_naming_crops(root, out, parts=1, overwrite=True) == 4
    write_naming_crops(root, out, parts=2, overwrite=True)
    generate("motion", tmp_path / "motion", 1, seed=0, duration=1.0)
    with pytest.raises(AvkitError, match="no players' boxes"):
        write_naming_crops(tmp_path / "motion", tmp_path / "crops_motion")
    # each player's first picture is the frame around that player, not around the other one
    frames = read_clip(video, audio=False).frames.numpy().astype(float)
    for k, player in enumerate(row["meta"]["sources"]):
        cut = read_clip(out / rows[3 * k]["path"], audio=False).frames.numpy().astype(float)
        h, w = cut.shape[1:3]
        diffs = []
        for other in row["meta"]["sources"]:
            drawn = np.asarray(other["box_per_frame"])
            x0, y0, _, _ = naming_box((drawn[:, 0].min(), drawn[:, 1].min(), drawn[:, 2].max(), drawn[:, 3].max()), (64, 64))
            diffs.append(np.abs(cut - frames[:, int(y0):int(y0) + h, int(x0):int(x0) + w]).mean())
        assert diffs[k] < 10 < diffs[1 - k], (player["label"], diffs)  # two encodings apart; another place


def test_auto_finds_one_source_on_each_side_of_most_duets(tmp_path: Path) -> None:
    """16 generated duets (half of them one instrument twice): the shipped separator's ``find_sources`` puts
    one source on each player in at least 7 (8 today; the greedy grouping it replaced: 0, merging or
    splitting the players; benchmarks/separation_finding.py measures it on 242 held-out duets)."""
    from avkit.apps.separation import load
    from avkit.apps.separation.regions import region_box
    from avkit.apps.separation.video import read_input
    from avkit.data.synthetic import generate, read_manifest

    sep = load()
    generate("gm_instruments", tmp_path, 16, seed=21, duets=0.5, same_duets=0.5, duration=3.0)
    both = 0
    for row in read_manifest(tmp_path):
        clip = read_input(tmp_path / row["path"], sep, output_frames=False)
        masks, _ = sep.find_sources(sep.analyse(clip.audio, clip.net_frames))
        sides = []
        for x0, _, x1, _ in (region_box(m, clip.frame_size) for m in masks):
            nearest = min(row["meta"]["sources"], key=lambda p: abs(p["region"][0] + p["region"][2] - x0 - x1))
            sides.append(nearest["side"])
        both += sorted(sides) == ["left", "right"]
    assert both >= 7


def test_a_regions_box_is_around_its_largest_8_connected_group() -> None:
    from avkit.apps.separation.regions import region_box

    region = np.zeros((8, 8), bool)
    region[[1, 2, 3], [1, 2, 3]] = True  # three cells touching at their corners: one group
    region[6, 5:7] = True  # two cells apart
    assert region_box(region, (64, 64)) == (8.0, 8.0, 32.0, 32.0)
    region[6, 4] = region[5, 4] = True  # now four cells
    assert region_box(region, (64, 64)) == (32.0, 40.0, 56.0, 56.0)
