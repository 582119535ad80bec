"""A labelled subset of a training set: the same share of every class, chosen by a seed
(``data.label_fraction`` / ``data.label_seed``: semi-supervised comparisons at 1%, 10%, 100% of the labels)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avkit.errors import AvkitError


def stratified_subset(labels: Sequence[int], fraction: float, seed: int = 0) -> list[int]:
    """Ascending indices of ``fraction * n_c`` items (rounded) of each class ``c`` (at least one each),
    drawn without replacement by ``seed``. The same seed and labels give the same subset, and a
    larger fraction's subset holds a smaller one's (each class's items are taken in one seeded order)."""
    if not 0.0 < fraction <= 1.0:
        raise AvkitError(f"data.label_fraction must be in (0, 1], got {fraction}")
    values = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(values):
        items = np.flatnonzero(values == c)
        order = items[rng.permutation(len(items))]
        keep += order[:max(1, int(fraction * len(items) + 0.5))].tolist()  # rounded half up
    return sorted(keep)
