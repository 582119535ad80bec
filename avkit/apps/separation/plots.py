"""The pictures ``avkit separate`` writes beside the sound.

- :func:`plot_sound_map`: ``soundmap.png``, the frame, the sound map over it (which pixels make the
  sound) and the sources' boxes with their shares of the energy;
- :func:`sound_map_frames`: the frames of ``soundmap.mp4``, the sound map of each moment over the picture
  (:func:`smooth_sound_map` first);
- :func:`highlight` / :func:`upscale`: a source's video dims the other regions; small videos are
  scaled up by an integer factor so a player shows them at a useful size.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from avkit.apps.separation.inference import Source
from avkit.utils import atomic_path

MIN_OUTPUT_SIDE = 128  # small videos are scaled up (nearest) by an integer factor in the output videos


def upscale(frames: np.ndarray) -> np.ndarray:
    """Small frames scaled up (nearest) by the integer factor that brings the short side to >= ``MIN_OUTPUT_SIDE``."""
    short = min(frames.shape[1:3])
    k = int(np.ceil(MIN_OUTPUT_SIDE / short)) if short < MIN_OUTPUT_SIDE else 1
    return frames.repeat(k, axis=1).repeat(k, axis=2) if k > 1 else frames


_DIM = (np.arange(256, dtype=np.float32) * np.float32(0.3)).astype(np.uint8)  # a value dimmed to 30%


def highlight(frames: np.ndarray, box: tuple[float, float, float, float], frame_size: tuple[int, int]) -> np.ndarray:
    """Frames with everything outside ``box`` (pixels of ``frame_size``) dimmed."""
    height, width = frames.shape[1:3]
    sy, sx = height / frame_size[0], width / frame_size[1]
    x0, y0, x1, y1 = (int(np.floor(box[0] * sx)), int(np.floor(box[1] * sy)), int(np.ceil(box[2] * sx)),
                      int(np.ceil(box[3] * sy)))
    out = _DIM[frames]  # a table look-up: a float copy of a long video took seconds and gigabytes
    out[:, y0:y1, x0:x1] = frames[:, y0:y1, x0:x1]
    return out


def _heat(share: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map ``[..., h, w]`` in [0, 1] resized (bilinear) to ``size``: ``[..., H, W]``."""
    t = torch.as_tensor(share, dtype=torch.float32)
    lead = t.shape[:-2]
    t = t.reshape(-1, 1, *t.shape[-2:])
    t = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t.reshape(*lead, *size).clamp(0, 1).numpy()


# matplotlib's "inferno" colour map, 256 entries of 8-bit RGB (tests/test_separation_plots.py checks it), so the
# pictures need no matplotlib (importing it is 0.3 s of an ``avkit separate`` that has a 2 s budget, issue 21)
_INFERNO = np.frombuffer(bytes.fromhex(
    "00000401000501010601010802010a02020c02020e03021004031204031405041706041907051b08051d09061f0a0722"
    "0b07240c08260d08290e092b10092d110a30120a32140b34150b37160b39180c3c190c3e1b0c411c0c431e0c451f0c48"
    "210c4a230c4c240c4f260c51280b53290b552b0b572d0b592f0a5b310a5c320a5e340a5f3609613809623909633b0964"
    "3d09653e0966400a67420a68440a68450a69470b6a490b6a4a0c6b4c0c6b4d0d6c4f0d6c510e6c520e6d540f6d550f6d"
    "57106e59106e5a116e5c126e5d126e5f136e61136e62146e64156e65156e67166e69166e6a176e6c186e6d186e6f196e"
    "71196e721a6e741a6e751b6e771c6d781c6d7a1d6d7c1d6d7d1e6d7f1e6c801f6c82206c84206b85216b87216b88226a"
    "8a226a8c23698d23698f24699025689225689326679526679727669827669a28659b29649d29649f2a63a02a63a22b62"
    "a32c61a52c60a62d60a82e5fa92e5eab2f5ead305dae305cb0315bb1325ab3325ab43359b63458b73557b93556ba3655"
    "bc3754bd3853bf3952c03a51c13a50c33b4fc43c4ec63d4dc73e4cc83f4bca404acb4149cc4248ce4347cf4446d04545"
    "d24644d34743d44842d54a41d74b3fd84c3ed94d3dda4e3cdb503bdd513ade5238df5337e05536e15635e25734e35933"
    "e45a31e55c30e65d2fe75e2ee8602de9612bea632aeb6429eb6628ec6726ed6925ee6a24ef6c23ef6e21f06f20f1711f"
    "f1731df2741cf3761bf37819f47918f57b17f57d15f67e14f68013f78212f78410f8850ff8870ef8890cf98b0bf98c0a"
    "f98e09fa9008fa9207fa9407fb9606fb9706fb9906fb9b06fb9d07fc9f07fca108fca309fca50afca60cfca80dfcaa0f"
    "fcac11fcae12fcb014fcb216fcb418fbb61afbb81dfbba1ffbbc21fbbe23fac026fac228fac42afac62df9c72ff9c932"
    "f9cb35f8cd37f8cf3af7d13df7d340f6d543f6d746f5d949f5db4cf4dd4ff4df53f4e156f3e35af3e55df2e661f2e865"
    "f2ea69f1ec6df1ed71f1ef75f1f179f2f27df2f482f3f586f3f68af4f88ef5f992f6fa96f8fb9af9fc9dfafda1fcffa4"
), dtype=np.uint8).reshape(256, 3)
_INFERNO_FLOAT = torch.tensor(_INFERNO, dtype=torch.float32)


def _overlay(frames: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Blend an inferno-coloured ``heat [..., H, W]`` in [0, 1] over ``frames [..., H, W, 3]``.

    The colours are indexed as matplotlib's colormap indexes a float in [0, 1] and the blend is float32 (in torch:
    the same pixels as numpy's float32; one-off, the command on a 640x480 clip 4.9 s against 5.2): 2.7x faster than
    matplotlib's float64 RGBA on 80 frames of 128 px, the same pixels but for rounding (at most 1 in 255)."""
    frames = np.asarray(frames)
    out = np.empty(frames.shape, np.uint8)
    for i in np.ndindex(frames.shape[:-3]):  # a frame at a time: its float copies stay in the cache (2.3x faster
        h = torch.as_tensor(heat[i], dtype=torch.float32)  # on 800x332 than a chunk of 32 at once, same pixels)
        colours = _INFERNO_FLOAT[(h * 256).long().clamp_(0, 255)]
        alpha = (h * 0.5 + 0.35).unsqueeze(-1)
        blend = torch.from_numpy(np.array(frames[i], np.uint8)).float().mul_(1 - alpha)
        blend.add_(colours.mul_(alpha))
        out[i] = blend.clamp_(0, 255).to(torch.uint8).numpy()
    return out


PANEL_HEIGHT = 240  # px of each picture in soundmap.png
BOX_COLOURS = [(0, 229, 255), (255, 234, 0), (255, 64, 129), (118, 255, 3), (255, 145, 0), (213, 0, 249)]


def plot_sound_map(path: Path, frame: np.ndarray, share: np.ndarray, sources: Sequence[Source],
                   frame_size: tuple[int, int], title: str = "") -> Path:
    """``soundmap.png``: the frame, the sound map over it with its colour scale, and the sources' regions
    (in ``frame_size`` pixels) with their shares of the energy; drawn with Pillow and written atomically."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = frame_size
    panel_w = max(1, round(width * PANEL_HEIGHT / height))
    size = (PANEL_HEIGHT, panel_w)
    picture = Image.fromarray(np.ascontiguousarray(frame)).resize(
        (panel_w, PANEL_HEIGHT), Image.Resampling.NEAREST if frame.shape[0] < PANEL_HEIGHT else Image.Resampling.BILINEAR)
    pixels = np.asarray(picture)
    top = float(share.max())
    mapped = _overlay(pixels, _heat(share / max(top, 1e-6), size))
    boxed = picture.copy()

    font = ImageFont.load_default(size=13)
    big = ImageFont.load_default(size=15)
    pad, head, scale_w = 10, 24, 70  # margins, a panel's title band, the colour scale and its labels
    suptitle = 28 if title else 0
    canvas = Image.new("RGB", (3 * panel_w + 4 * pad + scale_w, suptitle + head + PANEL_HEIGHT + pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        while len(title) > 4 and draw.textlength(title, font=big) > canvas.width - 2 * pad:
            title = title[: len(title) // 2 - 2] + "..." + title[len(title) // 2 + 2:]  # a long file name
        draw.text((canvas.width // 2, 8), title, fill="black", font=big, anchor="mt")
    y = suptitle + head
    xs = [pad, 2 * pad + panel_w, 3 * pad + 2 * panel_w + scale_w]
    for x, img, name, short in ((xs[0], picture, "frame", "frame"),
                                (xs[1], Image.fromarray(mapped), "sound map: which pixels make the sound", "sound map"),
                                (xs[2], boxed, "sources (share of the energy)", "sources")):
        canvas.paste(img, (x, y))
        name = name if draw.textlength(name, font=font) <= panel_w + pad else short  # a narrow (portrait) picture
        draw.text((x + panel_w // 2, y - 6), name, fill="black", font=font, anchor="md")
    # the colour scale beside the sound map: 0 at the bottom, the map's largest share at the top
    bar_x = xs[1] + panel_w + 6
    ramp = np.linspace(1.0, 0.0, PANEL_HEIGHT, dtype=np.float32)
    bar = _INFERNO[np.clip((ramp * 256).astype(np.int64), 0, 255)]
    canvas.paste(Image.fromarray(np.repeat(bar[:, None], 12, axis=1)), (bar_x, y))
    draw.text((bar_x + 16, y), f"{top:.2f}", fill="black", font=font, anchor="lt")
    draw.text((bar_x + 16, y + PANEL_HEIGHT), "0", fill="black", font=font, anchor="lb")
    draw.text((bar_x + 16, y + PANEL_HEIGHT // 2), "share", fill="black", font=font, anchor="lm")
    sx, sy = panel_w / width, PANEL_HEIGHT / height
    for k, src in enumerate(sources):
        x0, y0, x1, y1 = src.box
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        left, upper = xs[2] + round(x0 * sx), y + round(y0 * sy)
        right, lower = xs[2] + round(x1 * sx) - 1, y + round(y1 * sy) - 1
        draw.rectangle((left, upper, right, lower), outline=colour, width=2)
        label = f"{k}: {100 * src.energy:.0f}%" + (" (rest)" if "rest" in src.label else "")
        draw.text((left + 4, upper + 3), label, fill=colour, font=font, stroke_width=1, stroke_fill="black")
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def smooth_sound_map(frame_share: np.ndarray, fps: float, hop_s: float) -> np.ndarray:
    """The sound map of each moment (``frame_share [h, w, T]``, one per STFT frame of ``hop_s`` seconds)
    smoothed over about one video frame (``fps``), for :func:`sound_map_frames`."""
    width = max(1, int(round(1 / fps / hop_s)))
    kernel = np.ones(width) / width
    return np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="same"), 2, frame_share)


def sound_map_frames(frames: np.ndarray, times: np.ndarray, smooth_share: np.ndarray, hop_s: float) -> np.ndarray:
    """``soundmap.mp4``'s frames: ``frames`` (shown at ``times``, s) with the sound map of the moment over them
    (``smooth_share [h, w, T]`` from :func:`smooth_sound_map`)."""
    stft_t = (np.asarray(times) / hop_s).round().astype(int).clip(0, smooth_share.shape[2] - 1)
    heat = _heat(np.moveaxis(smooth_share[..., stft_t], 2, 0), frames.shape[1:3])
    return _overlay(frames, heat)
