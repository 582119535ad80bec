"""The captioner: label layout and masked loss, what each stage trains, LoRA, training through the
engine, save/reload, and ``avkit caption``. Tiny everything: 16x16 clips, a 1-layer LM of width 32,
runs of one or two epochs made once per session."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import avkit.cli.main as cli
from avkit.apps import captioning
from avkit.apps.captioning.model import IGNORE, LoRALinear, add_lora, caption_loss, merge_lora
from avkit.apps.captioning.task import CaptioningTask
from avkit.engine.config import config_from_dict
from avkit.engine.optim import build_optimizer
from avkit.engine.trainer import train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread while this module runs: these models are tiny, and two threads on a busy
    2-core machine were measured 10-20x slower than one (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_LM = {"kind": "llama", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
MAX_TOKENS = 24


def recipe(out: Path, stage: Any, sources: list[str], *, audio: bool = True, epochs: int = 1,
           model: dict | None = None, **opts: Any) -> dict:
    return {
        "task": "captioning",
        "task_options": {"stage": stage, "sources": sources, "lm": TINY_LM, "max_new_tokens": MAX_TOKENS,
                         "audio_features": {"n_mels": 16, "hop_length": 320}, **opts},
        "data": {"num_frames": 8, "fps": 8.0, "size": 16, "batch_size": 4, "cache": True, "flip": False},
        "model": {"video": "c3d", "video_options": {"width": 4, "fc_dim": None, "batch_norm": True},
                  "audio": "audio_cnn" if audio else "", "audio_options": {"width": 4}, **(model or {})},
        "optim": {"optimizer": "adamw", "lr": 0.003, "warmup_epochs": 0},
        "train": {"output_dir": str(out), "epochs": epochs, "progress": False, "tensorboard": False, "seed": 0},
    }


@pytest.fixture(scope="session")
def caption_data(tmp_path_factory) -> dict[str, Any]:
    from avkit.data.synthetic import generate

    d = tmp_path_factory.mktemp("caption_data")
    generate("motion", d / "motion", num=20, seed=0, size=16, duration=1.0)
    generate("longvideo", d / "long", num=2, seed=0, size=16, duration=6.0, segments=(1, 1), silent_actions=(1, 1),
             sound_distractors=(0, 0), segment_duration=(1.0, 1.5))
    return {"dir": d, "sources": [str(d / "motion"), str(d / "long")]}


@pytest.fixture(scope="session")
def runs(caption_data, tmp_path_factory) -> dict[str, Any]:
    """An lm-stage run, a stage-1 audio-visual run on it, and stage-2 runs (whole LM, LoRA) on that."""
    d = tmp_path_factory.mktemp("caption_runs")
    src = caption_data["sources"]
    out: dict[str, Any] = {"dir": d}
    lm = recipe(d / "lm", "lm", src, epochs=3)
    lm["optim"]["lr"] = 0.01
    out["lm"] = train(lm, quiet=True)
    out["s1"] = train(recipe(d / "s1", 1, src, language_model=str(d / "lm")), quiet=True)
    out["s2"] = train(recipe(d / "s2", 2, src, model={"init": str(d / "s1")}), quiet=True)
    out["lora"] = train(recipe(d / "lora", 2, src, model={"init": str(d / "s1")}, lora=2), quiet=True)
    return out


def tiny_task(caption_data, tmp_path: Path, stage: Any, **kw: Any) -> CaptioningTask:
    cfg = config_from_dict(recipe(tmp_path / "unused", stage, caption_data["sources"], **kw))
    task = CaptioningTask(cfg)
    train_set, _ = task.datasets()
    task.setup(train_set)
    return task


def a_batch(task: CaptioningTask, n: int = 4) -> dict[str, Any]:
    return task.collate([task.train_set[i] for i in range(n)])


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def steps(task: CaptioningTask, model: torch.nn.Module, batch: dict, n: int = 3) -> list[float]:
    opt = build_optimizer(model, task.cfg.optim)
    model.train()
    losses = []
    for _ in range(n):
        loss, _, _ = task.train_step(model, batch)
        loss.backward()
        loss = loss.detach()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def changed(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


# -- inputs and loss -------------------------------------------------------------------------------

def test_label_layout_and_loss_only_on_caption_tokens(caption_data, tmp_path) -> None:
    task = tiny_task(caption_data, tmp_path, 1)
    model = task.build_model(pretrained=False).eval()
    batch = a_batch(task)
    embeds, attention, labels = model.inputs(batch)
    prefix = model.prefix(batch).shape[1]
    n_video = model.video_encoder.forward_tokens(batch["video"]).shape[1]
    n_audio = model.audio_encoder.forward_tokens(model.spectrogram(batch)).shape[1]
    prompt = task.tokenizer(task.opts.prompt, add_special_tokens=False)["input_ids"]
    assert prefix == 1 + len(prompt) + n_video + n_audio
    ids, mask = batch["caption_ids"], batch["caption_mask"]
    assert (labels[:, :prefix] == IGNORE).all()  # <bos>, prompt, video and audio tokens
    assert torch.equal(labels[:, prefix:][mask], ids[mask]) and (labels[:, prefix:][~mask] == IGNORE).all()
    eos = task.tokenizer.eos_token_id
    lengths = mask.sum(1)
    assert all(int(ids[i, lengths[i] - 1]) == eos for i in range(len(ids)))  # every caption ends in <eos>
    assert torch.equal(attention[:, prefix:].bool(), mask) and attention[:, :prefix].all()

    logits = model.lm(inputs_embeds=embeds, attention_mask=attention).logits
    loss, sums, counts = caption_loss(logits, labels)
    # The same as cross-entropy over the caption positions alone ...
    pos = (labels[:, 1:] != IGNORE)
    manual = torch.nn.functional.cross_entropy(logits[:, :-1][pos], labels[:, 1:][pos])
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert torch.equal(counts, lengths)
    # ... and untouched by whatever the model predicts at the prompt, encoder-token and padding positions.
    noisy = logits.clone()
    scored = torch.zeros_like(labels, dtype=torch.bool)
    scored[:, :-1] = pos
    noisy[~scored] = torch.randn_like(noisy[~scored]) * 50
    assert caption_loss(noisy, labels)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    # Giving the prompt positions labels would count them: they are really left out. (Counts, not
    # the mean: an untrained LM's loss is near log(vocabulary) at every position, so the mean
    # with them moved by as little as 4e-4 in some runs.)
    leaky = labels.clone()
    leaky[:, 1:prefix] = ids[:, :1]
    assert torch.equal(caption_loss(logits, leaky)[2], counts + (prefix - 1))


# -- stages ----------------------------------------------------------------------------------------

def test_stage_1_trains_the_projector_only_when_the_encoders_are_frozen(caption_data, runs, tmp_path) -> None:
    task = tiny_task(caption_data, tmp_path, 1, language_model=str(runs["dir"] / "lm"), train_video_encoder=False,
                     train_audio_encoder=False)
    model = task.build_model()
    assert not any(p.requires_grad for p in model.lm.parameters())
    before = snapshot(model)
    steps(task, model, a_batch(task))
    after = snapshot(model)
    assert not changed(before, after, "lm.")
    assert not changed(before, after, "video_encoder.")  # BatchNorm statistics too: frozen encoders stay in eval mode
    assert not changed(before, after, "audio_encoder.")
    assert changed(before, after, "video_projector.") and changed(before, after, "audio_projector.")
    # its LM is the lm run's (loaded from its best weights)
    lm_best = load_file(runs["dir"] / "lm" / "best.safetensors")
    assert all(torch.equal(lm_best[k], before[k]) for k in lm_best if k.startswith("lm."))


def test_stage_1_run_keeps_the_language_model_of_stage_lm(runs) -> None:
    lm = load_file(runs["dir"] / "lm" / "best.safetensors")
    s1 = load_file(runs["dir"] / "s1" / "best.safetensors")
    assert all(torch.equal(lm[k], s1[k]) for k in lm)
    assert any(k.startswith("video_encoder.") for k in s1) and any(k.startswith("audio_projector.") for k in s1)


def test_stage_2_trains_the_language_model(runs) -> None:
    s1 = load_file(runs["dir"] / "s1" / "best.safetensors")
    s2 = load_file(runs["dir"] / "s2" / "best.safetensors")
    assert s1.keys() == s2.keys()
    assert any(not torch.equal(s1[k], s2[k]) for k in s1 if k.startswith("lm.model.layers"))
    assert any(not torch.equal(s1[k], s2[k]) for k in s1 if k.startswith("video_projector."))


def test_stage_2_with_lora_trains_adapters_and_keeps_the_base_weights(runs) -> None:
    s1 = load_file(runs["dir"] / "s1" / "best.safetensors")
    lora = load_file(runs["dir"] / "lora" / "best.safetensors")
    adapters = [k for k in lora if "lora_" in k]
    assert adapters and any(lora[k].abs().sum() > 0 for k in adapters if k.endswith("lora_b"))
    for k, v in s1.items():  # every stage-1 LM weight is there, unchanged (q/v under .base)
        if k.startswith("lm."):
            key = k.replace(".q_proj.", ".q_proj.base.").replace(".v_proj.", ".v_proj.base.")
            assert torch.equal(v, lora[key]), k
    # the exported Hugging Face folder holds the merged weights: plain q_proj, different from stage 1
    merged = load_file(runs["dir"] / "lora" / "language_model" / "model.safetensors")
    q = next(k for k in merged if k.endswith("q_proj.weight"))
    assert not torch.equal(merged[q], s1[f"lm.{q}"])


def test_lora_starts_as_the_base_layer_and_merges_exactly() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("q_proj", torch.nn.Linear(6, 5))
    x = torch.randn(3, 6)
    base = net(x)
    assert add_lora(net, rank=2, alpha=4.0, targets=("q_proj",)) == ["q_proj"]
    assert isinstance(net.q_proj, LoRALinear) and torch.allclose(net(x), base)
    with torch.no_grad():
        net.q_proj.lora_b.normal_()
    assert not torch.allclose(net(x), base)
    merged = merge_lora(net)
    assert isinstance(merged.q_proj, torch.nn.Linear) and torch.allclose(merged(x), net(x), atol=1e-6)


def test_a_short_training_run_lowers_the_loss(caption_data, runs, tmp_path) -> None:
    history = runs["lm"].history  # text-only stage, 3 epochs
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    task = tiny_task(caption_data, tmp_path, 2, model={"init": str(runs["dir"] / "s1")})
    model = task.build_model()
    losses = steps(task, model, a_batch(task), n=15)
    assert losses[-1] < 0.75 * losses[0]


def test_language_model_from_a_hugging_face_folder(caption_data, runs, tmp_path) -> None:
    folder = runs["dir"] / "lm" / "language_model"  # exported by the lm run: config, weights, tokenizer
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    task = tiny_task(caption_data, tmp_path, 1, language_model=str(folder))
    model = task.build_model()
    best = load_file(runs["dir"] / "lm" / "best.safetensors")
    state = model.state_dict()
    assert all(torch.equal(best[k], state[k]) for k in best if k.startswith("lm.model."))


def test_bad_options_are_one_line_errors(caption_data, tmp_path) -> None:
    from avkit.errors import AvkitError

    src = caption_data["sources"]
    with pytest.raises(AvkitError, match=r"task_options.lora_alpah' \(did you mean lora_alpha\?\)"):
        CaptioningTask(config_from_dict(recipe(tmp_path, 1, src, lora_alpah=1)))
    with pytest.raises(AvkitError, match="task_options.lm.layers"):
        CaptioningTask(config_from_dict(recipe(tmp_path, 1, src, lm={"layers": 2})))
    with pytest.raises(AvkitError, match="stage must be"):
        CaptioningTask(config_from_dict(recipe(tmp_path, 3, src)))
    with pytest.raises(AvkitError, match="model.init"):
        CaptioningTask(config_from_dict(recipe(tmp_path, 2, src)))
    with pytest.raises(AvkitError, match="not a folder"):
        tiny_task(caption_data, tmp_path, 1, language_model=str(tmp_path / "missing"))


def test_resume_continues_a_captioning_run_exactly(caption_data, tmp_path) -> None:
    src = caption_data["sources"]
    full = train(recipe(tmp_path / "full", "lm", src, epochs=2), quiet=True)
    part_cfg = recipe(tmp_path / "part", "lm", src, epochs=2)
    part_cfg["train"]["stop_after_epoch"] = 1
    train(part_cfg, quiet=True)
    resumed = train(recipe(tmp_path / "part", "lm", src, epochs=2), resume=True, quiet=True)
    assert resumed.steps == full.steps
    a, b = load_file(tmp_path / "full" / "last.safetensors"), load_file(tmp_path / "part" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model."))


# -- save / reload and the CLI ---------------------------------------------------------------------

def test_reloaded_run_writes_the_same_greedy_captions_as_in_training(runs) -> None:
    run_dir = runs["dir"] / "s1"
    saved = [json.loads(line) for line in (run_dir / "val_captions.jsonl").read_text().splitlines()]
    captioner = captioning.load(run_dir, device="cpu")
    task = captioner.task
    task.datasets()
    batch = task.val_collate([task.val_set[c["index"]] for c in saved])
    again = captioner.caption_batch(batch, max_new_tokens=MAX_TOKENS)
    assert again == [c["caption"] for c in saved]
    twice = captioning.load(run_dir, device="cpu").caption_batch(batch, max_new_tokens=MAX_TOKENS)
    assert twice == again


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_avkit_caption_writes_the_caption(runs, capsys, tmp_path) -> None:
    run_dir = runs["dir"] / "s1"
    captioner = captioning.load(run_dir, device="cpu")
    task = captioner.task
    task.datasets()
    saved = {c["index"]: c["caption"] for c in map(json.loads, (run_dir / "val_captions.jsonl").read_text().splitlines())}
    index = next(i for i in saved if task.val_set.records[i].kind == "motion")  # a whole clip: its centre window
    video = task.val_set.records[index].path

    code, out, err = _cli(["caption", video, "--run", str(run_dir), "--max-new-tokens", str(MAX_TOKENS)], capsys)
    assert code == 0 and out == saved[index] + "\n"
    code, out, _ = _cli(["caption", video, "--run", str(run_dir), "--json", "--max-new-tokens", str(MAX_TOKENS)], capsys)
    result = json.loads(out)
    assert code == 0 and result["caption"] == saved[index] and result["modalities"] == ["video", "audio"]
    assert len(result["frame_times"]) == 8
    code, out, _ = _cli(["caption", video, "--run", str(run_dir), "--beams", "2", "--start", "0"], capsys)
    assert code == 0 and out.strip()

    target = tmp_path / "caption.txt"
    assert _cli(["caption", video, "--run", str(run_dir), "-o", str(target)], capsys)[0] == 0
    assert target.read_text().strip()
    code, out, err = _cli(["caption", video, "--run", str(run_dir), "-o", str(target)], capsys)
    assert code == 2 and "already exists" in err and out == "" and len(err.strip().splitlines()) == 1
    code, _, _ = _cli(["caption", video, "--run", str(run_dir), "-o", str(target), "--overwrite", "--json"], capsys)
    assert code == 0 and json.loads(target.read_text())["caption"]


@pytest.mark.parametrize("case, text", [
    ("missing_run", "run directory not found"),
    ("text_video", "text.mp4"),
    ("missing_video", "missing.mp4"),
    ("lm_run", "language-model-only"),
    ("not_a_run", "not an avkit run directory"),
])
def test_avkit_caption_bad_input_is_one_line(runs, capsys, tmp_path, case, text) -> None:
    video = next((runs["dir"].parent).glob("caption_data*/motion/clips/000000.mp4"))
    (tmp_path / "text.mp4").write_text("not a video\n")
    (tmp_path / "plain").mkdir()
    run_dir = {"missing_run": tmp_path / "nope", "lm_run": runs["dir"] / "lm", "not_a_run": tmp_path / "plain"}.get(
        case, runs["dir"] / "s1")
    video = {"text_video": tmp_path / "text.mp4", "missing_video": tmp_path / "missing.mp4"}.get(case, video)
    code, out, err = _cli(["caption", str(video), "--run", str(run_dir)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("avkit caption: error:") and text in err and len(err.strip().splitlines()) == 1


def test_caption_cli_module_is_light() -> None:
    code = ("import sys, avkit.cli.caption as c; assert c.REQUIRES; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_hold_out_leaves_whole_combinations_out_of_training(caption_data, tmp_path) -> None:
    """task_options.hold_out N: no training (or validation) clip shows a held-out (object, colour,
    motion) combination, every other clip is kept, and the choice is a fixed function of the
    combination (the same in every dataset), so a test clip of a held-out combination asks for a
    caption the captioner never saw whole."""
    from avkit.apps.captioning.data import CaptionRecord, combination, held_out, read_sources
    from avkit.errors import AvkitError

    records = read_sources(caption_data["sources"], "train")
    assert {held_out(r, 3) for r in records} == {True, False}  # this data has both kinds
    cfg = config_from_dict(recipe(tmp_path / "unused", "lm", caption_data["sources"], hold_out=3))
    kept = CaptioningTask(cfg).datasets()[0].records
    assert [r.caption for r in kept] == [r.caption for r in records if not held_out(r, 3)]
    out = {combination(r) for r in records if held_out(r, 3)}
    assert out and not out & {combination(r) for r in kept}
    again = CaptionRecord(path="x", caption="", attributes=dict(records[0].attributes))
    assert held_out(again, 3) == held_out(records[0], 3) and not held_out(records[0], 0)
    with pytest.raises(AvkitError, match="hold_out"):
        CaptioningTask(config_from_dict(recipe(tmp_path / "u2", "lm", caption_data["sources"], hold_out=-1)))
