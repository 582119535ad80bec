"""``avkit ask`` / ``avkit.apps.video_llm.model``: tiny random video-LLMs of two families, offline.

The models (LLaVA-NeXT-Video and Qwen2-VL, see ``tests/tiny_vlm.py``) are built from configs,
saved with ``save_pretrained`` once per session and loaded back through the path users take
(``AutoProcessor`` + ``AutoModelForImageTextToText`` from a folder).
"""
from __future__ import annotations

import json
import subprocess
import sys
import wave

import numpy as np
import pytest
from conftest import MEDIA_DIR
from tiny_vlm import FAMILIES, build_llava_image_only, build_text_only, build_tiny_vlm

import avkit.cli.main as cli
from avkit.apps.video_llm.token_budget import plan_budget, round_frames
from avkit.errors import AvkitError
from avkit.io import write_video

pytest.importorskip("transformers")

PROMPT = "What happens in the video?"
FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(autouse=True)
def only_ask(monkeypatch):
    """Build the CLI with just this command, so the test does not depend on the others."""
    monkeypatch.setattr(cli, "COMMANDS", ["ask"])


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny_vlm")
    return {name: build_tiny_vlm(name, root / name) for name in FAMILY_NAMES}


@pytest.fixture(scope="session")
def vlms(models) -> dict:
    from avkit.apps import video_llm

    return {name: video_llm.load(folder) for name, folder in models.items()}


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """16 frames of 32x32 at 8 fps (2 s) with a tone."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    tone = (0.1 * np.sin(np.arange(32000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    return write_video(tmp_path_factory.mktemp("ask") / "clip.mp4", frames, fps=8, audio=tone, sample_rate=16000)


@pytest.fixture(scope="session")
def big_clip(tmp_path_factory):
    """8 frames of 224x224 at 4 fps: large enough for Qwen2-VL's token count to depend on resolution."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("ask_big") / "big.mp4", frames, fps=4)


def ask_json(capsys, *args: str) -> dict:
    assert cli.main(["ask", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, *args: str) -> str:
    assert cli.main(["ask", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avkit ask: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# -- answering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_cli_streams_an_answer(family, models, clip, capsys):
    assert cli.main(["ask", str(clip), PROMPT, "--model", str(models[family]), "--max-new-tokens", "6"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split()) >= 3  # the words of the answer
    assert "8 frames at 0.12" in captured.err and "tokens/s" in captured.err


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_cli_json_fields(family, models, clip, capsys):
    out = ask_json(capsys, str(clip), PROMPT, "--model", str(models[family]), "--max-new-tokens", "5")
    assert out["prompt"] == PROMPT and out["video"] == str(clip) and out["model"] == str(models[family])
    assert out["answer"].strip() and out["tokens"] == 5
    times = out["frames"]["times"]
    assert out["frames"]["count"] == len(times) == 8
    assert all(0 <= t < 2.0 for t in times) and all(a < b for a, b in zip(times, times[1:]))
    assert out["frames"]["size"] == [32, 32]
    assert 0 < out["visual_tokens"] < out["prompt_tokens"]
    for key in ("load", "read", "preprocess", "time_to_first_token", "generate", "tokens_per_second", "total"):
        assert out["timings"][key] > 0, key
    assert out["timings"]["time_to_first_token"] <= out["timings"]["generate"]
    assert out["budget"]["changed"] is False and out["budget"]["message"] is None
    assert out["device"] == "cpu" and out["dtype"] == "float32"
    assert out["generation"]["do_sample"] is False


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_stream_delivers_the_answer(family, vlms, clip):
    pieces: list[str] = []
    answer = vlms[family].ask(clip, PROMPT, num_frames=4, max_new_tokens=10, stream=pieces.append)
    assert len(pieces) >= 2 and "".join(pieces) == answer.answer
    assert answer.tokens == 10 and len(answer.answer.split()) == 10


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_greedy_is_deterministic(family, vlms, clip):
    first = vlms[family].ask(clip, PROMPT, num_frames=4, max_new_tokens=8)
    again = vlms[family].ask(clip, PROMPT, num_frames=4, max_new_tokens=8, seed=123)
    assert first.answer == again.answer


def test_sampling_follows_the_seed(vlms, clip):
    vlm = vlms["qwen2_vl"]
    a = vlm.ask(clip, PROMPT, num_frames=4, max_new_tokens=12, temperature=1.5, seed=7)
    b = vlm.ask(clip, PROMPT, num_frames=4, max_new_tokens=12, temperature=1.5, seed=7)
    assert a.answer == b.answer and a.generation["do_sample"] is True


def test_the_frames_change_the_answer(vlms, clip, big_clip):
    """The visual tokens reach the language model: other frames, other (greedy) answer."""
    vlm = vlms["llava_next_video"]
    assert vlm.ask(clip, PROMPT, max_new_tokens=8).answer != vlm.ask(big_clip, PROMPT, max_new_tokens=8).answer


# -- frame sampling ------------------------------------------------------------------------------


def test_fps_start_end(models, clip, capsys):
    out = ask_json(capsys, str(clip), PROMPT, "--model", str(models["llava_next_video"]), "--fps", "2",
                   "--max-new-tokens", "2")
    assert out["frames"]["times"] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    out = ask_json(capsys, str(clip), PROMPT, "--model", str(models["llava_next_video"]), "--frames", "2",
                   "--start", "1", "--end", "2", "--max-new-tokens", "2")
    assert out["frames"]["times"] == pytest.approx([1.25, 1.75])


def test_qwen_takes_frames_in_pairs(vlms, clip):
    answer = vlms["qwen2_vl"].ask(clip, PROMPT, num_frames=5, max_new_tokens=2)
    assert len(answer.frame_times) == 4 and any("5 -> 4 frames" in n for n in answer.notes)
    answer = vlms["llava_next_video"].ask(clip, PROMPT, num_frames=5, max_new_tokens=2)
    assert len(answer.frame_times) == 5 and not answer.notes


def test_frame_times_reach_qwen2_5_vl(vlms, clip):
    """Qwen2.5-VL's absolute-time positions come from the metadata avkit passes: seconds per frame pair."""
    from avkit.apps.video_llm.model import video_metadata

    vlm = vlms["qwen2_5_vl"]
    for frames, seconds in ((8, 0.5), (4, 1.0)):  # 2 s of video: pairs of frames 0.5 s or 1 s apart
        times, _ = vlm.sample_times(2.0, num_frames=frames, frame_count=16)
        inputs = vlm.processor_inputs(vlm.chat_text(PROMPT), np.zeros((frames, 32, 32, 3), np.uint8),
                                      video_metadata(times, 8.0, 16, 2.0, (32, 32)))
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([seconds])


def test_never_more_frames_than_the_video_has(vlms, clip):
    answer = vlms["llava_next_video"].ask(clip, PROMPT, num_frames=40, max_new_tokens=2)
    assert len(answer.frame_times) == 16 and len(set(answer.frame_times)) == 16
    assert any("the video has 16" in n for n in answer.notes)
    answer = vlms["llava_next_video"].ask(clip, PROMPT, num_frames=10, start=1.0, max_new_tokens=2)
    assert len(answer.frame_times) == len(set(answer.frame_times)) == 8  # 1-2 s holds 8 frames at 8 fps


# -- token budget --------------------------------------------------------------------------------


def test_budget_reduces_frames_and_says_so(models, clip, capsys):
    model = str(models["qwen2_vl"])  # 2 visual tokens per frame at 32x32 (4 per pair)
    out = ask_json(capsys, str(clip), PROMPT, "--model", model, "--frames", "16", "--max-visual-tokens", "20",
                   "--max-new-tokens", "2")
    budget = out["budget"]
    assert budget["changed"] and budget["asked_frames"] == 16 and budget["frames"] == 10
    assert budget["asked_tokens"] == 32 and budget["tokens"] == 20 == out["visual_tokens"]
    assert out["frames"]["count"] == 10 and "16 -> 10 frames" in budget["message"]
    assert cli.main(["ask", str(clip), PROMPT, "--model", model, "--frames", "16", "--max-visual-tokens", "20",
                     "--max-new-tokens", "2"]) == 0
    assert "visual-token budget 20: 16 -> 10 frames" in capsys.readouterr().err


def test_budget_lowers_resolution_after_min_frames(vlms, big_clip):
    # 224x224 -> Qwen2-VL's 112x112 cap: 8 tokens per frame; 8 frames need 64, budget 32.
    answer = vlms["qwen2_vl"].ask(big_clip, PROMPT, num_frames=8, max_visual_tokens=32, max_new_tokens=2)
    assert answer.budget.asked_tokens == 64 and answer.budget.frames == 8
    assert answer.frame_size[0] < 224 and answer.frame_size == tuple(answer.budget.size)
    assert answer.visual_tokens <= 32 and "pixels" in answer.budget.describe()


def test_budget_keeps_resolution_when_it_does_not_help(vlms, big_clip):
    # LLaVA-NeXT-Video crops every frame to the same size: fewer frames is the only saving.
    answer = vlms["llava_next_video"].ask(big_clip, PROMPT, num_frames=8, max_visual_tokens=12, max_new_tokens=2)
    assert answer.frame_size == (224, 224) and len(answer.frame_times) == 3 and answer.visual_tokens == 12


def test_no_budget(vlms, clip):
    answer = vlms["qwen2_vl"].ask(clip, PROMPT, num_frames=16, max_visual_tokens=0, max_new_tokens=2)
    assert len(answer.frame_times) == 16 and not answer.budget.changed


def test_plan_budget_order():
    def cost(size):  # a dynamic-resolution processor: tokens grow with the area
        return size[0] * size[1] / 100

    p = plan_budget(32, (100, 200), cost, 10_000)
    assert not p.changed and p.tokens == 6400
    p = plan_budget(32, (100, 200), cost, 3_000, step=2)  # frames first: 15 -> 14 (pairs)
    assert (p.frames, p.size) == (14, (100, 200)) and p.tokens <= 3000
    p = plan_budget(32, (100, 200), cost, 1_000, min_frames=8)  # 8 frames need 1600: lower resolution
    assert p.frames == 8 and p.size[0] < 100 and p.tokens <= 1000 and abs(p.size[1] - 2 * p.size[0]) <= 2
    p = plan_budget(32, (100, 200), cost, 50, min_frames=8)  # even 28 px does not fit 8 frames
    assert p.frames < 8 and min(p.size) >= 28 and not p.over_budget
    p = plan_budget(32, (100, 200), lambda s: 500.0, 100)  # one frame is over budget
    assert p.frames == 1 and p.over_budget and "still over budget" in p.describe()
    assert round_frames(7, 2) == 6 and round_frames(1, 2) == 2


# -- bad input -----------------------------------------------------------------------------------


def test_missing_model_folder(clip, tmp_path, capsys):
    line = one_line_error(capsys, str(clip), PROMPT, "--model", str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in line and "no such model folder" in line


def test_folder_without_config(clip, tmp_path, capsys):
    (tmp_path / "weights.bin").write_bytes(b"x")
    line = one_line_error(capsys, str(clip), PROMPT, "--model", str(tmp_path))
    assert str(tmp_path) in line and "no config.json" in line


def test_not_an_image_text_to_text_model(clip, tmp_path, capsys):
    line = one_line_error(capsys, str(clip), PROMPT, "--model", str(build_text_only(tmp_path / "bert")))
    assert "'bert' is not an image-text-to-text model" in line


def test_image_only_model_is_not_video_capable(clip, tmp_path, capsys):
    line = one_line_error(capsys, str(clip), PROMPT, "--model", str(build_llava_image_only(tmp_path / "llava")))
    assert "no video processor" in line and "takes images, not videos" in line


@pytest.mark.parametrize("how", ["hub client offline", "no route to the hub"])
def test_hub_id_without_network(how, clip, monkeypatch, capsys):
    import huggingface_hub.constants

    import avkit.apps.video_llm.hub as video_llm

    if how == "hub client offline":  # the hub client's own "couldn't connect" error, without its retries
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    else:  # avkit's quick check finds no connection and does not wait for the client's retries
        monkeypatch.setattr(video_llm, "hub_reachable", lambda: False)
    line = one_line_error(capsys, str(clip), PROMPT, "--model", "avkit-test/no-such-video-llm")
    assert "avkit-test/no-such-video-llm" in line and "could not reach the Hugging Face hub" in line
    assert "local model folder" in line


def test_offline_flag_never_downloads(clip, capsys):
    line = one_line_error(capsys, str(clip), PROMPT, "--model", "avkit-test/no-such-video-llm", "--offline")
    assert "not in the local Hugging Face cache" in line


def test_text_file_as_video(models, tmp_path, capsys):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 50)
    line = one_line_error(capsys, str(path), PROMPT, "--model", str(models["qwen2_vl"]))
    assert str(path) in line


def test_audio_only_file(models, tmp_path, capsys):
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    line = one_line_error(capsys, str(path), PROMPT, "--model", str(models["qwen2_vl"]))
    assert str(path) in line and "no video stream" in line


def test_bad_options(models, clip, capsys):
    model = str(models["qwen2_vl"])
    assert "empty" in one_line_error(capsys, str(clip), " ", "--model", model)
    assert "frames must be positive" in one_line_error(capsys, str(clip), PROMPT, "--model", model, "--frames", "0")
    assert "empty time range" in one_line_error(capsys, str(clip), PROMPT, "--model", model, "--start", "5")
    assert "dtype" in one_line_error(capsys, str(clip), PROMPT, "--model", model, "--dtype", "int3")


def test_cuda_asked_without_cuda(models, clip, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    line = one_line_error(capsys, str(clip), PROMPT, "--model", str(models["qwen2_vl"]), "--device", "cuda")
    assert "CUDA is not available" in line


# -- loading contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [False, True])
def test_trust_remote_code_only_when_asked(flag, models, clip, monkeypatch, capsys):
    import transformers

    seen: list[bool] = []
    for name in ("AutoConfig", "AutoProcessor", "AutoModelForImageTextToText"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained

        def spy(*args, _original=original, **kwargs):
            seen.append(kwargs.get("trust_remote_code"))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    args = ["ask", str(clip), PROMPT, "--model", str(models["llava_next_video"]), "--max-new-tokens", "1"]
    assert cli.main(args + (["--trust-remote-code"] if flag else [])) == 0
    assert len(seen) >= 3 and all(x is flag for x in seen)


def test_local_folder_loads_offline_without_network(models, vlms):
    from avkit.apps.video_llm.hub import looks_like_path

    assert looks_like_path(str(models["qwen2_vl"])) and not looks_like_path("Qwen/Qwen2-VL-2B-Instruct")
    assert looks_like_path("./models/qwen") and looks_like_path("models/qwen/") and looks_like_path("~/m")
    assert type(vlms["qwen2_vl"].model).__name__ == "Qwen2VLForConditionalGeneration"
    assert type(vlms["llava_next_video"].model).__name__ == "LlavaNextVideoForConditionalGeneration"
    assert vlms["qwen2_vl"].frame_step == 2 and vlms["llava_next_video"].frame_step == 1


def test_cli_module_imports_no_heavy_packages():
    code = ("import sys, avkit.cli.ask, avkit.apps.video_llm.model; "
            "heavy = [m for m in ('torch', 'transformers', 'av') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_are_avkit_errors(vlms, clip):
    with pytest.raises(AvkitError, match="either the number of frames or fps"):
        vlms["qwen2_vl"].ask(clip, PROMPT, num_frames=4, fps=1.0)


# -- a real recording ----------------------------------------------------------------------------


def test_real_video(vlms):
    path = MEDIA_DIR / "video" / "pancake_h264_opus.mkv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from avkit.io import probe

    duration = probe(path).video.duration or probe(path).duration
    for family in FAMILY_NAMES:
        answer = vlms[family].ask(path, "What is being cooked?", num_frames=4, max_new_tokens=4)
        assert answer.tokens == 4 and answer.answer.strip()
        assert len(answer.frame_times) == 4 and all(0 <= t < duration for t in answer.frame_times)
        assert all(a < b for a, b in zip(answer.frame_times, answer.frame_times[1:]))
