"""Self-supervised audio-visual pretraining (task: av_mae): masking, token dropping, a loss that never
reads labels, the reconstruction figure, retrieval recall, labelled subsets, and pretrain -> probe ->
fine-tune through the recipes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from avkit.apps.pretraining.metrics import recall_at_k, retrieval_metrics
from avkit.data.subset import stratified_subset
from avkit.engine.config import load_config
from avkit.errors import AvkitError
from avkit.models.av_mae import (
    AVMAE,
    AVMAEEncoder,
    hidden_mask,
    patchify_spectrogram,
    patchify_video,
    random_mask,
    tube_mask,
    unpatchify_spectrogram,
    unpatchify_video,
    visible_count,
)
from avkit.models.flops import count_gflops_call

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {"num_frames": 8, "image_size": 32, "patch_size": 8, "tubelet_size": 2, "n_mels": 16, "audio_frames": 32,
        "audio_patch": 8, "embed_dim": 16, "modality_depth": 1, "depth": 1, "num_heads": 2}


def tiny_batch(b: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.randn(b, 3, 8, 32, 32, generator=g), "audio": torch.randn(b, 16000, generator=g) * 0.1,
            "label": torch.arange(b), "index": torch.arange(b)}


def test_tube_mask_hides_whole_tubes_at_the_ratio() -> None:
    torch.manual_seed(0)
    t, s = 4, 16
    keep = tube_mask(5, (t, s), 0.75)
    assert keep.shape == (5, t * 4)  # 16 - int(0.75 * 16) = 4 visible positions in each of 4 steps
    for row in keep:
        space = (row % s).view(t, -1)
        assert (space == space[0]).all(), "a tube must hide the same spatial patch in every time step"
        assert torch.equal((row // s).view(t, -1)[:, 0], torch.arange(t))
        assert len(set(row.tolist())) == len(row) and torch.equal(row, row.sort().values)
    hidden = hidden_mask(keep, t * s)
    assert hidden.float().mean().item() == pytest.approx(0.75)
    assert not torch.equal(keep[0], keep[1]), "each clip draws its own mask"


def test_random_mask_and_ratios() -> None:
    torch.manual_seed(0)
    keep = random_mask(3, 48, 0.75)
    assert keep.shape == (3, 12)
    assert all(len(set(r.tolist())) == 12 and int(r.max()) < 48 for r in keep)
    assert visible_count(16, 0.9) == 2 and visible_count(16, 0.5) == 8 and visible_count(4, 0.99) == 1
    with pytest.raises(AvkitError, match="masking ratio"):
        visible_count(16, 1.0)


def test_patches_follow_the_embedding_token_order() -> None:
    enc = AVMAEEncoder(**TINY)
    video = torch.randn(2, 3, 8, 32, 32)
    spec = torch.randn(2, 1, 16, 32)
    for m, x, patches in (("video", video, patchify_video(video, 2, 8)), ("audio", spec, patchify_spectrogram(spec, 8))):
        conv: Any = enc.embeds[m].proj
        weight = conv.weight.permute(0, 2, 3, 4, 1).reshape(conv.weight.shape[0], -1)  # (tt, p, p, C) order
        pos: Any = enc.pos[m]
        expected = patches @ weight.t() + conv.bias + pos + enc.type_embed[m]
        torch.testing.assert_close(enc.embed(m, x), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(unpatchify_video(patchify_video(video, 2, 8), video.shape, 2, 8), video)
    torch.testing.assert_close(unpatchify_spectrogram(patchify_spectrogram(spec, 8), spec.shape, 8), spec)


def test_encoder_cost_scales_with_visible_tokens() -> None:
    """Masked tokens are dropped before the encoder: its blocks' FLOPs follow the visible tokens."""
    enc = AVMAEEncoder(**{**TINY, "depth": 2})
    model = AVMAE(enc)
    inputs = enc.inputs(tiny_batch(2))
    embed = count_gflops_call(lambda: [enc.embed(m, x) for m, x in inputs.items()])
    total = enc.num_tokens("video") + enc.num_tokens("audio")
    full = count_gflops_call(enc, inputs) - embed
    costs = []
    for ratio in (0.5, 0.75, 0.9):
        keep = model.masks(2, {"video": ratio, "audio": ratio}, torch.device("cpu"))
        visible = (keep["video"].shape[1] + keep["audio"].shape[1]) / total
        share = (count_gflops_call(enc, inputs, keep) - embed) / full
        assert visible ** 2 <= share <= visible * 1.01, (ratio, visible, share)
        costs.append(share)
    assert costs[0] > costs[1] > costs[2] and costs[2] < 0.2


def pretrain_task(**options: object):  # noqa: ANN201 - the task of the pretraining recipe, tiny
    from avkit.engine.task import make_task

    cfg = load_config(ROOT / "recipes" / "pretrain_av_mae.yaml",
                      [f"model.video_options={TINY}"] + [f"task_options.{k}={v}" for k, v in options.items()])
    return make_task(cfg)


def test_loss_never_reads_labels() -> None:
    task = pretrain_task()
    torch.manual_seed(0)
    model = task.build_model()
    batch = tiny_batch(4)

    def loss(b: dict) -> float:
        torch.manual_seed(1)  # the same masks every call
        value, stats, n = task.train_step(model, b)
        assert n == 4 and set(stats) == {"loss", "recon_video", "recon_audio", "contrastive", "arrow"}
        return float(value.detach())

    reference = loss(batch)
    assert loss({**batch, "label": batch["label"].flip(0)}) == reference
    assert loss({**batch, "label": torch.randint(0, 100, (4,))}) == reference
    assert loss({k: v for k, v in batch.items() if k != "label"}) == reference
    assert loss({**batch, "audio": batch["audio"].flip(0)}) != reference  # the inputs do count


def test_video_only_variant_and_bad_options() -> None:
    task = pretrain_task(audio_mask=1.0)
    assert task.modalities == ["video"]
    model = task.build_model()
    assert "audio" not in model.decoders and "audio" not in model.encoder.embeds
    torch.manual_seed(0)
    loss, stats, _ = task.train_step(model, {"video": torch.randn(2, 3, 8, 32, 32)})  # no sound needed
    assert stats["recon_video"] > 0 and "contrastive" not in stats and torch.isfinite(loss)
    with pytest.raises(AvkitError, match="both 1.0"):
        pretrain_task(audio_mask=1.0, video_mask=1.0)
    with pytest.raises(AvkitError, match="video_mask must be in"):
        pretrain_task(video_mask=1.5)


def test_recall_at_k_hand_case() -> None:
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    video = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.8, 0.6]])
    # similarities (rows: audio): [[0, 0, .8], [1, 1, .6], [.8, .8, .96]]; own pair ranks (ties count against it):
    # clip 0: 2 (0.8 closer, 0 tied); clip 1: 1 (clip 0 tied); clip 2: 0.
    assert recall_at_k(audio, video, (1, 2, 3)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: 1.0}
    same = torch.ones(5, 4)
    assert recall_at_k(same, same, (1, 4, 5)) == {1: 0.0, 4: 0.0, 5: 1.0}  # ties never help
    m = retrieval_metrics(audio, video)
    assert m["a2v_r1"] == pytest.approx(1 / 3) and m["chance_r1"] == pytest.approx(1 / 3) and m["chance_r5"] == 1.0
    assert m["v2a_r1"] == pytest.approx(recall_at_k(video, audio, (1,))[1])


def test_stratified_label_subset() -> None:
    labels = [0] * 50 + [1] * 30 + [2] * 4
    ten = stratified_subset(labels, 0.1, seed=0)
    picked = [labels[i] for i in ten]
    assert picked.count(0) == 5 and picked.count(1) == 3 and picked.count(2) == 1  # at least one per class
    assert ten == stratified_subset(labels, 0.1, seed=0) and ten != stratified_subset(labels, 0.1, seed=1)
    assert set(stratified_subset(labels, 0.01, seed=0)) <= set(ten) <= set(stratified_subset(labels, 0.5, seed=0))
    assert stratified_subset(labels, 1.0) == list(range(len(labels)))
    with pytest.raises(AvkitError, match="label_fraction"):
        stratified_subset(labels, 0.0)


# ---------------------------------------------------------------------------------------------
# pretrain -> probe -> fine-tune through the recipes


@pytest.fixture(scope="module")
def motion_sound(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avkit.data.synthetic import generate

    out = tmp_path_factory.mktemp("av_mae") / "data"
    generate("motion", out, 24, seed=0, size=32, fps=8, duration=1.0, sound_pair=True, appearance=())
    return out


def common(data: Path, out: Path) -> list[str]:
    return [f"data.source={data}", f"train.output_dir={out}", f"model.video_options={TINY}", "data.batch_size=8",
            "train.progress=false", "train.tensorboard=false"]


def test_pretrain_probe_finetune_from_recipes(motion_sound: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from avkit.engine import train
    from avkit.engine.build import build_datasets
    from avkit.engine.checkpoint import load_weights

    pre = tmp_path / "av_mae"
    cfg = load_config(ROOT / "recipes" / "pretrain_av_mae.yaml",
                      common(motion_sound, pre) + ["train.epochs=1", "task_options.figure_clips=2"])
    result = train(cfg, quiet=True)
    row = result.history[-1]
    assert row["train_recon_video"] > 0 and row["train_contrastive"] > 0
    assert 0.0 <= row["val_a2v_r5"] <= 1.0 and row["val_recon_audio"] > 0
    figure = pre / "reconstruction" / "epoch_001.png"
    image = np.asarray(Image.open(figure))
    assert image.shape[0] > 200 and image.std() > 10  # two clips x (frames, spectrogram) rows, not blank
    assert not list((pre / "reconstruction").glob(".*"))  # written atomically: no temporary left

    probe = tmp_path / "probe"
    cfg = load_config(ROOT / "recipes" / "probe_av_mae.yaml",
                      common(motion_sound, probe) + [f"model.init={pre}", "train.epochs=1", "data.label_fraction=0.5"])
    full, _ = build_datasets(load_config(ROOT / "recipes" / "probe_av_mae.yaml",
                                         [f"data.source={motion_sound}", "data.label_fraction=1.0"]).data)
    labelled, _ = build_datasets(cfg.data)
    per_class = {c: full.labels.count(c) for c in set(full.labels)}
    assert sorted(labelled.labels) == sorted(c for c, n in per_class.items() for _ in range(max(1, int(n / 2 + 0.5))))
    result = train(cfg, quiet=True)
    assert result.steps == -(-len(labelled) // 8)
    before, after = load_weights(pre), load_weights(probe)
    encoder = [k for k in before if k.startswith("encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)  # loaded, and frozen by the probe
    assert "head.weight" in after and not any(k.startswith("decoders.") for k in after)

    tune = tmp_path / "finetune"
    cfg = load_config(ROOT / "recipes" / "finetune_av_mae.yaml",
                      common(motion_sound, tune) + [f"model.init={pre}", "train.max_steps=1"])
    train(cfg, quiet=True)
    tuned = load_weights(tune)
    assert any(not torch.equal(before[k], tuned[k]) for k in encoder)  # fine-tuning moves the encoder

    wider = load_config(ROOT / "recipes" / "probe_av_mae.yaml",
                        common(motion_sound, tmp_path / "wide") + [f"model.init={pre}", "model.video_options.depth=2"])
    with pytest.raises(AvkitError, match="do not fit the model"):
        train(wider, quiet=True)


def test_contrastive_embeddings_see_whole_clips() -> None:
    """The InfoNCE embeddings do not depend on the masks (2 of 16 patch positions are too few to pair
    sound and frames) and are the ones retrieval uses."""
    torch.manual_seed(0)
    model = AVMAE(AVMAEEncoder(**TINY)).eval()
    batch = tiny_batch(3)
    _, one, _ = model(batch, {"video": 0.9, "audio": 0.75}, torch.Generator().manual_seed(1))
    _, two, _ = model(batch, {"video": 0.9, "audio": 0.75}, torch.Generator().manual_seed(2))
    whole = model.embed_unmasked(batch)
    for m in ("video", "audio"):
        torch.testing.assert_close(one[m], two[m])
        torch.testing.assert_close(one[m], whole[m])
        assert torch.allclose(one[m].norm(dim=1), torch.ones(3))


def test_classifier_pool_choice() -> None:
    from avkit.models.av_mae import AVMAEClassifier

    batch = tiny_batch(3)
    torch.manual_seed(0)
    widths = {}
    for pool in ("joint", "modality", "both"):
        torch.manual_seed(0)  # the same encoder weights for each choice
        model = AVMAEClassifier(None, pool=pool, **TINY).eval()
        with torch.no_grad():
            feats = model.forward_features(batch)
            joint, own = model.encoder(model.encoder.inputs(batch))
        expected = {"joint": [joint["video"].mean(1), joint["audio"].mean(1)],
                    "modality": [own["video"].mean(1), own["audio"].mean(1)],
                    "both": [joint["video"].mean(1), own["video"].mean(1), joint["audio"].mean(1), own["audio"].mean(1)]}
        torch.testing.assert_close(feats, torch.cat(expected[pool], dim=1))
        widths[pool] = model.out_dim
    assert widths == {"joint": 32, "modality": 32, "both": 64}
    with pytest.raises(AvkitError, match="pool must be one of"):
        AVMAEClassifier(None, pool="max", **TINY)


def test_probe_head_norm_uses_frozen_statistics_in_eval() -> None:
    from avkit.models.av_mae import AVMAEClassifier

    torch.manual_seed(0)
    model = AVMAEClassifier(5, head_norm=True, **TINY)
    head: Any = model.head
    norm: Any = head[0]
    assert isinstance(head[0], torch.nn.BatchNorm1d) and not norm.affine and not list(norm.parameters())
    batch = tiny_batch(4)
    model.train()
    with torch.no_grad():
        model(batch)
    assert int(norm.num_batches_tracked) == 1 and not torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    with torch.no_grad():
        model(tiny_batch(1, seed=3))  # a one-clip training batch: running statistics, no update, no error
    assert int(norm.num_batches_tracked) == 1
    model.eval()
    stats = (norm.running_mean.clone(), norm.running_var.clone())
    with torch.no_grad():
        alone = model({k: v[:1] for k, v in batch.items()})
        together = model(batch)[:1]
    torch.testing.assert_close(alone, together)  # eval: each clip normalised by the stored statistics, not the batch's
    assert torch.equal(norm.running_mean, stats[0]) and torch.equal(norm.running_var, stats[1])
    features = model.forward_features({k: v[:1] for k, v in batch.items()}).detach()
    linear = head[1]
    expected = linear((features - stats[0]) / (stats[1] + norm.eps).sqrt())
    torch.testing.assert_close(alone, expected)
    assert isinstance(AVMAEClassifier(5, **TINY).head, torch.nn.Linear)  # off by default


def moving_squares(b: int, seed: int, step: int = 2) -> torch.Tensor:
    """``[b, 3, 8, 32, 32]`` clips: a square of a random colour on a random flat background, from a random
    place, moving ``step`` pixels per frame to the right (wrapping round)."""
    g = torch.Generator().manual_seed(seed)
    clips = torch.empty(b, 3, 8, 32, 32)
    for i in range(b):
        frame = torch.rand(3, 1, 1, generator=g).expand(3, 32, 32).clone()
        y, x = torch.randint(0, 32, (2,), generator=g).tolist()
        colour = torch.rand(3, 1, 1, generator=g) + 1.0
        for t in range(8):
            clips[i, :, t] = frame
            clips[i, :, t, :, :6] = colour  # drawn at the left edge, then moved into place
            clips[i, :, t, :7] = frame[:, :7]
            clips[i, :, t] = torch.roll(clips[i, :, t], (y, x + step * t), dims=(-2, -1))
    return clips


def _mean_colour(video: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
    return torch.nn.functional.normalize(video.mean((2, 3, 4)), dim=-1)


def _colour_and_direction(video: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Mean colour plus which way the frame moves (+1 right, -1 left, 0 still), from how the next frame
    lines up with this one rolled 2 pixels either way."""
    a, b = video[:, :, :-1], video[:, :, 1:]
    right = (torch.roll(a, 2, dims=-1) - b).abs().mean((1, 2, 3, 4))
    left = (torch.roll(a, -2, dims=-1) - b).abs().mean((1, 2, 3, 4))
    still = (a - b).abs().mean((1, 2, 3, 4))
    direction = torch.where(still < torch.minimum(left, right), 0.0, torch.sign(left - right))
    return torch.nn.functional.normalize(torch.cat([video.mean((2, 3, 4)), direction[:, None]], 1), dim=-1)


def test_arrow_term_asks_for_the_direction_of_motion(monkeypatch) -> None:
    """The arrow-of-time loss of one clip (so its only candidates are itself shifted in space and itself played
    backwards) with hand-made embeddings: one blind to time (mean colour) cannot tell them apart, loss ln 2;
    one that encodes the direction of motion brings it near 0. A still clip has no reversed negative: 0."""
    model = AVMAE(AVMAEEncoder(**{**TINY, "modalities": ["video"]}), arrow=True)

    def loss(embed: Any, video: torch.Tensor) -> float:
        monkeypatch.setattr(model, "arrow_embeddings", embed)
        return float(model.arrow_loss(video, torch.Generator().manual_seed(0)))

    ln2 = float(torch.log(torch.tensor(2.0)))
    for seed, step in [(3, 2), (4, 2), (5, -2), (6, -2)]:
        clip = moving_squares(1, seed=seed, step=step)
        assert abs(loss(_mean_colour, clip) - ln2) < 1e-5
        assert loss(_colour_and_direction, clip) < 0.01
        still = moving_squares(1, seed=seed, step=0)
        assert loss(_mean_colour, still) == loss(_colour_and_direction, still) == 0.0


def test_arrow_term_has_no_reversed_negative_for_a_still_clip() -> None:
    """A clip that is the same backwards cannot be told from its reversal: its loss is InfoNCE against the
    other clips only. A moving clip's loss includes the reversal (and so is larger while they look alike)."""
    torch.manual_seed(0)
    model = AVMAE(AVMAEEncoder(**{**TINY, "modalities": ["video"]}), arrow=True).eval()
    still = moving_squares(4, seed=1, step=0)
    moving = moving_squares(4, seed=1, step=2)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731  (the same shifts each call)
    with torch.no_grad():
        got = model.arrow_loss(still, gen())
        shifts = torch.randint(0, 32 * 32, (4,), generator=gen()).tolist()
        shifted = torch.stack([torch.roll(v, (s // 32, s % 32), dims=(-2, -1)) for v, s in zip(still, shifts)])
        z, zs = model.arrow_embeddings(still), model.arrow_embeddings(shifted)
        expected = torch.nn.functional.cross_entropy(z @ zs.t() / 0.1, torch.arange(4), reduction="none")
        torch.testing.assert_close(got, expected)
        shifted = torch.stack([torch.roll(v, (s // 32, s % 32), dims=(-2, -1)) for v, s in zip(moving, shifts)])
        z, zs = model.arrow_embeddings(moving), model.arrow_embeddings(shifted)
        without = torch.nn.functional.cross_entropy(z @ zs.t() / 0.1, torch.arange(4), reduction="none")
        assert (model.arrow_loss(moving, gen()) > without).all()  # the reversal is one more negative
    task = pretrain_task(arrow_weight=1.0)
    torch.manual_seed(0)
    _, stats, _ = task.train_step(task.build_model(), tiny_batch(4))
    off = pretrain_task(arrow_weight=0.0)
    assert stats["arrow"] > 0 and "arrow" not in off.train_step(off.build_model(), tiny_batch(4))[1]


def test_arrow_anchor_shares_the_audio_visual_pass() -> None:
    """Pretraining passes the anchor's tokens from the audio-visual term's video pass (one pass saved): the
    same loss as encoding the anchor again."""
    torch.manual_seed(0)
    model = AVMAE(AVMAEEncoder(**TINY), arrow=True)
    video = moving_squares(4, seed=2)
    alone = model.arrow_loss(video, torch.Generator().manual_seed(3))
    shared = model.arrow_loss(video, torch.Generator().manual_seed(3), anchor_tokens=model.own_tokens("video", video))
    torch.testing.assert_close(shared, alone, rtol=1e-5, atol=1e-6)
    _, _, extra = model(tiny_batch(4), {"video": 0.9, "audio": 0.75}, torch.Generator().manual_seed(3))
    assert extra["arrow"].shape == (4,) and torch.isfinite(extra["arrow"]).all()
