"""A second look at the linear probe of ``benchmarks/pretraining.py``: a converged one (docs/pretraining.md).

The benchmark's probe is the recipe (``recipes/probe_av_mae.yaml``: a linear head trained with AdamW for 30
epochs on augmented clips); its random-init baseline may simply not have converged. Here both encoders'
features (exactly what the probe's head sees: ``AVMAEClassifier.forward_features``, the joint tokens
mean-pooled per modality) of one centre clip per video are standardised and fed to a logistic regression
run to convergence (scikit-learn, L2, C=1, not tuned on val), on the same stratified label subsets
(``data.label_seed`` = seed). Scored on the 300 val clips, overall and per class group.

Needs a finished ``benchmarks/pretraining.py`` work folder (its data and ``seedN/pretrain_av`` runs):

    python benchmarks/pretraining_probe.py --work /tmp/avkit_pretraining --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.01, 0.1, 1.0)


def features(init: str, data: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (features [N, D], labels [N])}`` of the probe recipe's model with ``model.init=init``."""
    import torch

    from avkit.data.dataset import collate
    from avkit.engine.build import build_dataset, build_model
    from avkit.engine.config import load_config
    from avkit.engine.step import pooled_features

    cfg = load_config(ROOT / "recipes" / "probe_av_mae.yaml", [f"data.source={data}", f"model.init={init}"])
    torch.manual_seed(seed)
    model: Any = build_model(cfg.model, 12, log=lambda _: None).eval()
    out = {}
    for split in ("train", "val"):
        ds = build_dataset(cfg.data, split, train=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate)
        feats, labels = [], []
        with torch.no_grad():
            for batch in loader:  # test-mode items hold one view: [B, 1, ...]
                batch.update(video=batch["video"][:, 0], audio=batch["audio"][:, 0])
                feats.append(pooled_features(model, batch).numpy())
                labels.append(batch["label"].numpy())
        out[split] = (np.concatenate(feats), np.concatenate(labels))
    return out


def probe(feats: dict[str, tuple[np.ndarray, np.ndarray]], fraction: float, seed: int,
          groups: list[str]) -> dict[str, float]:
    """Logistic regression on the stratified ``fraction`` of the training clips; val accuracy by group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from avkit.data.subset import stratified_subset

    (x, y), (xv, yv) = feats["train"], feats["val"]
    keep = stratified_subset(list(y), fraction, seed)
    scaler = StandardScaler().fit(x[keep])
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(x[keep]), y[keep])
    right = clf.predict(scaler.transform(xv)) == yv
    scores = {"overall": float(right.mean())}
    for group in sorted(set(groups)):
        mask = np.isin(yv, [i for i, g in enumerate(groups) if g == group])
        scores[group] = float(right[mask].mean())
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/avkit_pretraining"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    data = args.work / "data"
    classes = json.loads((data / "classes.json").read_text())
    groups = [c["group"] for c in classes]
    print(f"# python benchmarks/pretraining_probe.py --work {args.work} --seeds {' '.join(map(str, args.seeds))}")
    print("| seed | encoder | " + " | ".join(f"{f:.0%} labels: overall (motion)" for f in FRACTIONS) + " |")
    print("|---|---|" + "---:|" * len(FRACTIONS))
    gains = []
    for seed in args.seeds:
        rows = {}
        for name, init in (("AV-pretrained", str(args.work / f"seed{seed}" / "pretrain_av" / "last.safetensors")),
                           ("random init", "")):
            feats = features(init, data, seed)
            rows[name] = [probe(feats, f, seed, groups) for f in FRACTIONS]
            print(f"| {seed} | {name} | " + " | ".join(f"{r['overall']:.1%} ({r['motion']:.1%})" for r in rows[name])
                  + " |", flush=True)
        gains.append([(a["overall"] - b["overall"]) * 100 for a, b in zip(rows["AV-pretrained"], rows["random init"])])
    for seed, gain in zip(args.seeds, gains):
        print(f"seed {seed}: pretrained minus random init, points: "
              + ", ".join(f"{f:.0%} {g:+.1f}" for f, g in zip(FRACTIONS, gain)))


if __name__ == "__main__":
    main()
