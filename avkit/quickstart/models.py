"""The model families the quickstart compares, each with its measured epochs and time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avkit.quickstart.config import QuickstartConfig


@dataclass
class QuickModel:
    """One row of the comparison: a display name and the recipe's ``model`` section."""

    name: str
    lecture: str  # what the row shows, in the lecture's words
    model: dict[str, Any]
    lr: float = 3e-3
    epoch_share: float = 1.0  # of QuickstartConfig.epochs (and warm-up) this model trains for
    seconds: float = 60.0  # its measured training time (docs/quickstart.md): parallel jobs start the longest first

    def epochs(self, cfg: QuickstartConfig) -> tuple[int, int]:
        """(epochs, warm-up epochs) for this model under ``cfg``."""
        return max(1, round(cfg.epochs * self.epoch_share)), round(cfg.warmup_epochs * self.epoch_share)


def default_models() -> list[QuickModel]:
    """The families the quickstart compares, each at its tiny CPU size."""
    cnn = {"backbone": "cnn", "width": 16}
    # BatchNorm, and global average pooling instead of fc6/fc7: the direction of motion is the
    # same anywhere in the frame, and position-specific fc layers overfit a few hundred clips.
    c3d = {"width": 8, "fc_dim": None, "batch_norm": True}
    return [
        QuickModel("single_frame", "2D CNN per frame, scores averaged", {"video": "single_frame", "video_options": cnn},
                   seconds=59),
        # Max, not mean: a mean of per-frame features into a linear head is the same function as
        # single_frame's mean of per-frame scores. The max keeps which features fired at some
        # time (a spread of orientations, say) and loses only their order, so it can tell rotation
        # from sliding but not left from right: at most about half of the motion classes.
        QuickModel("late_fusion_pool", "per-frame features, max-pooled over time",
                   {"video": "late_fusion_pool", "video_options": {**cnn, "pool": "max"}}, seconds=48),
        # Two thirds of the epochs, to keep the quickstart under 10 minutes: it stays at chance on
        # the motion classes at 30 epochs too (17% val motion, train accuracy 39% at epoch 20 and
        # 44% at 30; 2026-12-03), so the cut costs the comparison nothing.
        QuickModel("late_fusion_concat", "per-frame features concatenated into an MLP",
                   {"video": "late_fusion_concat", "video_options": {**cnn, "num_frames": 8, "hidden": 64}},
                   epoch_share=2 / 3, seconds=28),
        # Twice the epochs: it is the cheapest model (a quarter of single_frame's time per epoch)
        # and still underfits at 30 (train accuracy 78%, val motion 53%; 60 epochs: 83%, measured
        # with torch 2.14.1 on 2026-12-02).
        QuickModel("early_fusion", "frames stacked into the first conv",
                   {"video": "early_fusion", "video_options": {**cnn, "num_frames": 8}}, epoch_share=2.0,
                   seconds=49),
        # 45 epochs: at 30 its training accuracy was still 70-84% and val motion 62-79% over two
        # runs (torch 2.14.1, 2026-12-02); its loss falls late, after the warm-up.
        QuickModel("c3d", "slow fusion: 3x3x3 convs", {"video": "c3d", "video_options": c3d}, epoch_share=1.5,
                   seconds=130),
        QuickModel("two_stream", "RGB stream + stacked optical flow stream",
                   {"video": "two_stream", "video_options": {**cnn, "flow_fields": 4}}, seconds=65),
        # C3D's own epochs: with a fifth of them (6) it reached 98% on the motion classes in one
        # run and 76% in another (the sound gives left-or-right and up-or-down, not which, so its
        # video branch must still learn the direction, as slowly as C3D alone); docs/quickstart.md.
        QuickModel("c3d+audio", "C3D + log-mel CNN, concat fusion",
                   {"video": "c3d", "video_options": c3d,
                    "audio": "audio_cnn", "audio_options": {"width": 8}, "fusion": "concat"}, epoch_share=1.5,
                   seconds=200),
    ]
