"""Separation by each instrument's timbre: supervised NMF with per-instrument, per-pitch spectra.

The networks learn one sound bank's timbres and transfer poorly to recordings of other instruments
(docs/separation.md, "A separator that is told the instruments"); a model of each instrument as the
spectra of its notes transfers far better once something says *which* instruments play: the pictures
(:class:`~avkit.apps.separation.inference.Separator` names them with the shipped instrument classifier) or
the user (``avkit separate --instruments violin,flute``).

Each instrument's dictionary holds, for every key of its range (+-3) at two velocities, the attack (first
6 STFT frames) and sustain (the rest, up to two thirds of the note) spectra of the note rendered from the
bank avkit trains on (pretty_midi's TimGM6mb; never the bank the benchmark's recordings come from), each
normalised to sum 1. A mixture's magnitude STFT is fitted with the named instruments' dictionaries side by
side (activations only; multiplicative updates of the KL divergence, from a fixed start so runs repeat),
and each source gets the ratio mask of its own part. Rendering a dictionary takes 0.2-0.8 s, so it is kept in
the user's cache (``avkit.utils.user_cache_dir``), keyed by everything it is made from.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from avkit.apps.separation.stft import Spectral, STFTConfig
from avkit.errors import AvkitError
from avkit.utils import atomic_path, user_cache_dir

# Chosen on a held-out bank (benchmarks/separation_timbre_tuning.py): 40 updates of the activations, then 10 that
# also fit each instrument's gain per frequency bin, separate within 0.1 dB of the best setting tried (50 + 20) in
# less time than 50 updates without gains took; +0.31 dB in unison and +0.27 dB on other notes at the same onsets
# over those 50. Dropping the atoms that stay silent all through the mixture after 10 updates changes nothing but
# the time.
ITERATIONS = 40  # multiplicative updates of the activations alone
PRUNE_AFTER = 10  # updates before the silent atoms are dropped ...
PRUNE_BELOW = 1e-2  # ... silent: their largest activation below this share of the largest one
FILTER_UPDATES = 10  # then updates of the activations and each instrument's gains
FILTER_LIMIT = 4.0  # the gains stay within [1 / FILTER_LIMIT, FILTER_LIMIT]
# Gains refit an instrument the bank's spectra find in the sound; when they give one less than this share of the
# mixture's energy, its name is likely wrong and no gains are fitted, so that it stays nearly silent and
# ``Separator.unheard`` (at half this share) sends the mixture to the networks as before the gains.
FILTER_MIN_SHARE = 0.01
KEY_MARGIN = 3  # keys beyond the instrument's usual range that its dictionary still covers
VELOCITIES = (60, 110)
NOTE_SECONDS = 0.8
ATTACK_FRAMES = 6


def instruments() -> tuple[str, ...]:
    """The instruments that have a dictionary: the gm_instruments kind's (General MIDI names, snake_case)."""
    from avkit.data.synthetic.music import BY_NAME

    return tuple(BY_NAME)


def check_instruments(names: Sequence[str]) -> list[str]:
    """``names`` as a list, or a one-line error naming the first unknown one and the choices."""
    known = instruments()
    for name in names:
        if name not in known:
            raise AvkitError(f"unknown instrument {name!r}; choose from {', '.join(sorted(known))}")
    return list(names)


@functools.lru_cache(maxsize=64)
def dictionary(instrument: str, cfg: STFTConfig) -> torch.Tensor:
    """``[F, K]`` float32: the attack and sustain spectra of each of ``instrument``'s notes (see the module
    docstring) on ``cfg``'s linear STFT grid, each summing to 1; rendered once, then read from the cache."""
    check_instruments([instrument])
    path = _cache_file(instrument, cfg)
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.dtype == np.float32 and cached.ndim == 2 and cached.shape[0] == cfg.n_fft // 2 + 1 \
                and np.isfinite(cached).all():
            return torch.from_numpy(cached)
    except (OSError, ValueError):  # not there, or damaged: render it again
        pass
    atoms = _render(instrument, cfg)
    try:
        with atomic_path(path) as tmp:
            np.save(tmp, atoms.numpy())
    except (OSError, AvkitError):  # a cache that cannot be written only costs the rendering next time
        pass
    return atoms


def _render(instrument: str, cfg: STFTConfig) -> torch.Tensor:
    """:func:`dictionary`'s atoms, rendered from the bank."""
    from avkit.data.synthetic import soundfont
    from avkit.data.synthetic.music import BY_NAME

    font, inst = soundfont.load(), BY_NAME[instrument]
    spectral = Spectral(cfg)
    atoms = []
    for key in range(max(inst.low - KEY_MARGIN, 21), min(inst.high + KEY_MARGIN, 108) + 1):
        for velocity in VELOCITIES:
            wave = font.note(inst.program, key, velocity, NOTE_SECONDS, cfg.sample_rate)
            mag = spectral.stft(torch.from_numpy(wave)).abs()  # [F, T]
            sustain_end = max(ATTACK_FRAMES + 1, 2 * mag.shape[1] // 3)
            for part in (mag[:, :ATTACK_FRAMES], mag[:, ATTACK_FRAMES:sustain_end]):
                atom = part.mean(1)
                atoms.append(atom / atom.sum().clamp_min(1e-9))
    return torch.stack(atoms, 1).float()


def _cache_file(instrument: str, cfg: STFTConfig) -> Path:
    """The cache file of a dictionary, named by a hash of all it is made from: the instrument, the STFT, this
    module's settings, the bank file, and the code that renders it (a change to any is a new file)."""
    from avkit.data.synthetic import music, soundfont

    bank = soundfont.bank_path()
    code = b"".join(Path(m.__file__).read_bytes() for m in (soundfont, music) if m.__file__) + Path(__file__).read_bytes()
    key = json.dumps([instrument, dataclasses.asdict(cfg), KEY_MARGIN, VELOCITIES, NOTE_SECONDS, ATTACK_FRAMES,
                      bank.name, bank.stat().st_size, hashlib.sha1(code).hexdigest()])
    return user_cache_dir("timbre", f"{instrument}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy")


def timbre_masks(mag: torch.Tensor, names: Sequence[str], cfg: STFTConfig, iterations: int = ITERATIONS,
                 filter_updates: int = FILTER_UPDATES, filter_limit: float = FILTER_LIMIT) -> torch.Tensor:
    """Ratio masks ``[N, F, T]``, one per instrument of ``names``, for the magnitude STFT ``mag [F, T]``:
    ``iterations`` updates of the activations alone, then ``filter_updates`` of the activations and of each
    instrument's gain per frequency bin (module docstring)."""
    dicts = [dictionary(name, cfg).to(mag.device) for name in check_instruments(names)]
    owner = torch.cat([torch.full((d.shape[1],), k, device=mag.device) for k, d in enumerate(dicts)])
    w = torch.cat(dicts, 1)
    v = mag.float()
    h = torch.as_tensor(np.random.default_rng(0).random((w.shape[1], v.shape[1])), dtype=torch.float32,
                        device=v.device) + 0.1
    for step in range(iterations):
        if step == PRUNE_AFTER:
            peak = h.amax(1)
            keep = peak >= PRUNE_BELOW * peak.max()
            w, h, owner = w[:, keep], h[keep], owner[keep]
        h *= w.T @ (v / (w @ h + 1e-9))  # KL's update; its denominator, each atom's sum, is 1
    sizes = [int((owner == k).sum()) for k in range(len(dicts))]  # each instrument's atoms, side by side
    parts = _parts(w, h, sizes)  # each instrument's part [N, F, T], before any gains
    if filter_updates and _smallest_share(parts, v) < FILTER_MIN_SHARE:
        filter_updates = 0
    gains = torch.ones(len(dicts), v.shape[0], device=v.device)  # [N, F]
    for _ in range(filter_updates):
        ratio = v / ((gains[:, :, None] * parts).sum(0) + 1e-9)
        gains *= ((ratio * parts).sum(2) + 1e-9) / (parts.sum(2) + 1e-9)  # KL's update of a gain per bin
        gains.clamp_(1 / filter_limit, filter_limit)
        filtered = w * gains[owner].T
        ratio = v / ((gains[:, :, None] * parts).sum(0) + 1e-9)  # filtered @ h, from the parts at hand
        h *= (filtered.T @ ratio) / filtered.sum(0)[:, None]
        parts = _parts(w, h, sizes)
    parts = gains[:, :, None] * parts
    return parts / (parts.sum(0, keepdim=True) + 1e-12)


def _parts(w: torch.Tensor, h: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``[N, F, T]``: each instrument's part of the fit ``w @ h``, its atoms being the next ``sizes[k]``."""
    return torch.stack([wk @ hk for wk, hk in zip(torch.split(w, list(sizes), 1), torch.split(h, list(sizes), 0))])


def _smallest_share(parts: torch.Tensor, v: torch.Tensor) -> float:
    """The smallest share of ``v``'s energy that the ratio masks of the instruments' ``parts`` give one of them."""
    energy = ((parts / (parts.sum(0) + 1e-12) * v) ** 2).sum((1, 2))
    return float(energy.min() / (v.pow(2).sum() + 1e-12))


def separate_by_timbre(spectral: Spectral, mix_spec: torch.Tensor, names: Sequence[str], length: int) -> np.ndarray:
    """Waveforms ``[N, length]`` (float32) of the instruments ``names`` in the mixture whose complex STFT is
    ``mix_spec [F, T]``: :func:`timbre_masks` applied with the mixture's phase."""
    masks = timbre_masks(mix_spec.abs(), names, spectral.cfg)
    return spectral.apply_mask(mix_spec, masks, length).cpu().numpy().astype(np.float32)
