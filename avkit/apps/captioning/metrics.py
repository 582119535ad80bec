"""Caption metrics in plain Python: corpus BLEU-4, CIDEr-D, and attributes parsed from the text.

**Tokens.** Both references and generated captions are lower-cased and split into words
(:func:`words`: letters and digits, a hyphen or apostrophe inside a word kept, so
``counter-clockwise`` is one word); punctuation is dropped, as the COCO evaluation's PTB
tokenizer does.

**BLEU-4** (Papineni et al. 2002), corpus level: clipped n-gram counts (n = 1..4) summed over
the whole corpus, the geometric mean of the four precisions, times the brevity penalty
``exp(1 - r / c)`` when the total candidate length ``c`` is below the total effective reference
length ``r`` (for each sentence the reference length closest to the candidate's, the shorter on
a tie). *Smoothing:* an order with no match at all in the whole corpus would make the score 0;
its match count is then replaced by ``epsilon = 0.1`` (Chen & Cherry 2014, method 1). Orders
with at least one match are not changed, so on any corpus with matches at every order this is
exactly Papineni's BLEU.

**CIDEr-D** (Vedantam et al. 2015), as ``pycocoevalcap``'s ``CiderD``: for n = 1..4 each
sentence is a vector of n-gram counts weighted by ``log(N / df)`` (``N`` = number of clips,
``df`` = number of clips whose references contain the n-gram, at least 1); the candidate's
counts are clipped by the reference's (``min``); the cosine with each reference is multiplied by
the Gaussian length penalty ``exp(-(l_c - l_r)^2 / (2 * 6^2))`` (``l`` = number of bigrams, as
in the reference code), averaged over the references and the four orders, times 10. So a
caption identical to its (only) reference scores 10 when its n-grams are rare in the corpus,
and n-grams that every clip's references contain (``"the"``) weigh nothing.

**Attributes.** :func:`parse_attributes` reads the object (shape or textured-object noun), its
colour(s), the motion and the sound from a caption with the synthetic generators' own
vocabulary (:func:`vocabulary`): colour names from the palette and the texture shades, shape
names, texture nouns and sounds and instrument names are imported from
``avkit.data.synthetic``; the motion and sound phrases of the ``motion`` classes, which the
generator writes inline, are read from probe captions rendered with the generator's own
``draw_object`` (and a tiny ``longvideo`` video for the silent action): for each class (or group
of classes sharing a sound) the shortest word n-gram of its phrase that no other class's caption
contains is its key (``left``, ``spins clockwise``, ``static``, ``tick``, ``knock``, ``silence``,
...). If the generator's wording changes, the keys follow. :func:`truth_attributes` gives the
same four values from a manifest row (and, for a ``longvideo`` segment, its ``meta.segments``
entry), so a caption the generator wrote parses to exactly its clip's truth (tested).
"""
from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ATTRIBUTES = ("object", "colour", "motion", "sound")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
TIME_PREFIX = re.compile(r"^\s*\d+(?:\.\d+)?\s*-\s*\d+(?:\.\d+)?\s*s:\s*")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (punctuation dropped; inner hyphens kept)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _as_token_lists(refs: Sequence[Any]) -> list[list[str]]:
    """One sentence's references: a string or a list of strings -> list of token lists."""
    if isinstance(refs, str):
        refs = [refs]
    return [words(r) if isinstance(r, str) else list(r) for r in refs]


# ---------------------------------------------------------------------------------------------
# BLEU


@dataclass
class BleuResult:
    """Corpus BLEU with its parts (precisions in 0..1, the brevity penalty, lengths)."""

    bleu: float
    precisions: list[float]
    brevity_penalty: float
    candidate_length: int
    reference_length: int
    smoothed_orders: list[int] = field(default_factory=list)  # orders whose zero match count was smoothed


def corpus_bleu(candidates: Sequence[str | Sequence[str]], references: Sequence[Any], max_n: int = 4,
                epsilon: float = 0.1) -> BleuResult:
    """BLEU-``max_n`` of ``candidates`` (one per sentence) against ``references`` (a string or a
    list of strings per sentence); see the module docstring for the smoothing."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference sets")
    matches = [0] * max_n
    totals = [0] * max_n
    c_len = r_len = 0
    for cand, refs in zip(candidates, references):
        hyp = words(cand) if isinstance(cand, str) else list(cand)
        ref_tokens = _as_token_lists(refs)
        if not ref_tokens:
            raise ValueError("every candidate needs at least one reference")
        c_len += len(hyp)
        r_len += min((abs(len(r) - len(hyp)), len(r)) for r in ref_tokens)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(hyp, n)
            best: Counter = Counter()
            for r in ref_tokens:
                best |= ngrams(r, n)  # max count of each n-gram over the references
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if c_len == 0 or any(t == 0 for t in totals):
        return BleuResult(0.0, [0.0] * max_n, 0.0, c_len, r_len)
    smoothed = [n + 1 for n in range(max_n) if matches[n] == 0]
    precisions = [(m if m > 0 else epsilon) / t for m, t in zip(matches, totals)]
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)
    score = bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
    return BleuResult(score, [m / t for m, t in zip(matches, totals)], bp, c_len, r_len, smoothed)


# ---------------------------------------------------------------------------------------------
# CIDEr-D


def cider_d(candidates: Sequence[str | Sequence[str]], references: Sequence[Any], max_n: int = 4,
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """CIDEr-D of the corpus and of each candidate (module docstring); document frequencies
    come from ``references``."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference sets")
    if not candidates:
        return 0.0, []

    def counts(tokens: Sequence[str]) -> Counter:
        out: Counter = Counter()
        for n in range(1, max_n + 1):
            out.update(ngrams(tokens, n))
        return out

    cand_counts = [counts(words(c) if isinstance(c, str) else list(c)) for c in candidates]
    ref_counts = [[counts(r) for r in _as_token_lists(refs)] for refs in references]
    df: Counter = Counter()
    for refs in ref_counts:
        df.update({g for r in refs for g in r})
    log_n = math.log(float(len(ref_counts)))

    def vec(cnt: Counter) -> tuple[list[dict], list[float], int]:
        v: list[dict] = [{} for _ in range(max_n)]
        norms = [0.0] * max_n
        length = 0
        for g, tf in cnt.items():
            n = len(g) - 1
            w = float(tf) * (log_n - math.log(max(1.0, df[g])))
            v[n][g] = w
            norms[n] += w * w
            if n == 1:
                length += tf  # the reference code measures length in bigrams
        return v, [math.sqrt(x) for x in norms], length

    scores = []
    for cand, refs in zip(cand_counts, ref_counts):
        vc, nc, lc = vec(cand)
        total = 0.0
        for ref in refs:
            vr, nr, lr = vec(ref)
            penalty = math.exp(-((lc - lr) ** 2) / (2 * sigma ** 2))
            for n in range(max_n):
                dot = sum(min(w, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, w in vc[n].items())
                if nc[n] != 0 and nr[n] != 0:
                    total += penalty * dot / (nc[n] * nr[n])
        scores.append(10.0 * total / max_n / len(refs))
    return sum(scores) / len(scores), scores


# ---------------------------------------------------------------------------------------------
# the generators' vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """Phrases (word tuples) that name each attribute value, from ``avkit.data.synthetic``."""

    colours: tuple[tuple[str, ...], ...]
    objects: dict[tuple[str, ...], str]  # phrase -> object value (shape or texture noun)
    motion_keys: dict[tuple[str, ...], str]  # key n-gram -> motion value
    sound_keys: dict[tuple[str, ...], str]  # key n-gram -> sound value
    motion_of_class: dict[str, str]  # motion class -> motion value
    sound_of_class: dict[str, str]  # motion class -> sound value (when sounded)
    silence: str  # the sound value of a silent action
    texture_noun: dict[str, str]  # appearance class -> its caption noun


def _distinctive(targets: list[list[str]], others: list[list[str]], banned: set[str], max_n: int = 4
                 ) -> tuple[str, ...]:
    """The shortest (then first) n-gram of ``targets[0]`` without ``banned`` words that occurs in
    every target text and in no other text."""
    def has(text: list[str], gram: tuple[str, ...]) -> bool:
        n = len(gram)
        return any(tuple(text[i:i + n]) == gram for i in range(len(text) - n + 1))

    for n in range(1, max_n + 1):
        for i in range(len(targets[0]) - n + 1):
            gram = tuple(targets[0][i:i + n])
            if any(w in banned for w in gram):
                continue
            if all(has(t, gram) for t in targets) and not any(has(o, gram) for o in others):
                return gram
    raise RuntimeError(f"no distinctive phrase in {' '.join(targets[0])!r}: the generator's captions "
                       "changed in a way avkit.apps.captioning.metrics cannot follow")


@functools.lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The attribute vocabulary of the synthetic generators (computed once: a few ms)."""
    import numpy as np

    from avkit.data.synthetic import instruments, longvideo, motion
    from avkit.data.synthetic.common import PALETTE, shade_name

    shades = {shade_name([v, v, v]) for v in range(256)}
    colour_names = sorted(set(PALETTE) | shades, key=lambda c: (-len(c.split()), c))
    colours = tuple(tuple(words(c)) for c in colour_names)
    texture_noun = {name: spec[1] for name, spec in motion.TEXTURES.items()}
    objects: dict[tuple[str, ...], str] = {}
    for shape in list(motion.ALL_SHAPES) + [inst.shape for inst in instruments.SYNTH_INSTRUMENTS]:
        objects[tuple(words(shape))] = shape
    for noun in texture_noun.values():
        objects[tuple(words(noun))] = noun
    banned = {w for c in colours for w in c} | {w for phrase in objects for w in phrase}

    # Probe captions: one object of every class, drawn by the generator itself.
    cfg = motion.MotionConfig(size=16)
    rng = np.random.default_rng(0)
    background = np.full((cfg.size, cfg.size, 3), 128.0, np.float32)
    visual: dict[str, list[str]] = {}
    sound: dict[str, list[str]] = {}
    for label in motion.CLASSES:
        track = motion.draw_object(cfg, label, rng, np.zeros(1), background, 1.0)
        visual[label], sound[label] = words(track.visual), words(track.sound)
    silent_cfg = longvideo.LongVideoConfig(size=16, duration=4.0, segments=(0, 0), silent_actions=(1, 1),
                                           sound_distractors=(0, 0), segment_duration=(1.0, 1.0))
    silent = longvideo.render(silent_cfg, motion.MOTION_CLASSES[0], np.random.default_rng(0))
    silent_text = words(TIME_PREFIX.sub("", silent.meta["segments"][0]["caption"]))
    silent_sound = [w for w in silent_text if w not in set(visual[motion.MOTION_CLASSES[0]])]
    all_texts = {label: visual[label] + sound[label] for label in motion.CLASSES}
    numbers = {w for w in silent_text if w[0].isdigit()}

    motion_keys: dict[tuple[str, ...], str] = {}
    motion_of_class: dict[str, str] = {}
    groups = [[c] for c in motion.MOTION_CLASSES] + [list(motion.APPEARANCE_CLASSES)]
    for group in groups:
        value = group[0] if len(group) == 1 else None
        others = [all_texts[c] for c in motion.CLASSES if c not in group] + [silent_sound]
        others += [sound[c] for c in group]
        key = _distinctive([visual[c] for c in group], others, banned | numbers)
        value = value or " ".join(key)
        motion_keys[key] = value
        for c in group:
            motion_of_class[c] = value

    sound_keys: dict[tuple[str, ...], str] = {}
    sound_of_class: dict[str, str] = {}
    by_phrase: dict[tuple[str, ...], list[str]] = {}
    for c in motion.CLASSES:
        by_phrase.setdefault(tuple(sound[c]), []).append(c)
    for phrase, group in by_phrase.items():
        others = [all_texts[c] for c in motion.CLASSES if c not in group] + [visual[c] for c in group]
        others.append(silent_text)
        key = _distinctive([list(phrase)], others, banned | numbers)
        sound_keys[key] = " ".join(key)
        for c in group:
            sound_of_class[c] = " ".join(key)
    key = _distinctive([silent_sound], list(all_texts.values()), banned | numbers)
    silence = " ".join(key)
    sound_keys[key] = silence
    for name in instruments.NAMES:
        sound_keys[tuple(words(name))] = name
    return Vocabulary(colours, objects, motion_keys, sound_keys, motion_of_class, sound_of_class, silence,
                      texture_noun)


# ---------------------------------------------------------------------------------------------
# parsing


def _find(tokens: list[str], phrases: Iterable[tuple[str, ...]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """Non-overlapping occurrences ``(start, end, phrase)`` in text order, longer phrases first."""
    hits = []
    for p in sorted(set(phrases), key=lambda p: -len(p)):
        n = len(p)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) == p:
                hits.append((i, i + n, p))
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    out: list[tuple[int, int, tuple[str, ...]]] = []
    end = -1
    for h in hits:
        if h[0] >= end:
            out.append(h)
            end = h[1]
    return out


def parse_attributes(text: str, vocab: Vocabulary | None = None) -> dict[str, str | None]:
    """``{"object", "colour", "motion", "sound"}`` named in ``text`` (None where nothing matches).

    The object is the first shape or texture noun; the colour is every colour named before it
    (``"dark grey and white"`` for a two-tone texture); motion and sound are the first key phrase
    of each (module docstring).
    """
    vocab = vocab or vocabulary()
    tokens = words(TIME_PREFIX.sub("", text))
    obj_hits = _find(tokens, vocab.objects)
    obj = vocab.objects[obj_hits[0][2]] if obj_hits else None
    limit = obj_hits[0][0] if obj_hits else len(tokens)
    colour_hits = [h for h in _find(tokens, vocab.colours) if h[0] < limit]
    colour = " and ".join(" ".join(h[2]) for h in colour_hits) or None
    motion_hits = _find(tokens, vocab.motion_keys)
    sound_hits = _find(tokens, vocab.sound_keys)
    return {"object": obj, "colour": colour,
            "motion": vocab.motion_keys[motion_hits[0][2]] if motion_hits else None,
            "sound": vocab.sound_keys[sound_hits[0][2]] if sound_hits else None}


def truth_attributes(row: Mapping[str, Any], segment: int | None = None, vocab: Vocabulary | None = None
                     ) -> dict[str, str | None]:
    """The four attribute values of a manifest row (``segment``: index into a longvideo row's
    ``meta.segments``); None for what the clip does not have (an instrument's motion, a duet)."""
    vocab = vocab or vocabulary()
    meta = row.get("meta") or {}
    kind = meta.get("kind")
    from avkit.data.synthetic.motion import split_label

    label = split_label(str(row.get("label")))[0]  # move_left_cross (shape labels) -> move_left
    if kind == "instruments":
        if meta.get("duet"):
            return dict.fromkeys(ATTRIBUTES)
        src = (meta.get("sources") or [meta])[0]
        return {"object": src.get("shape"), "colour": src.get("colour"), "motion": None,
                "sound": src.get("label", label)}
    if kind == "longvideo":
        if segment is None:
            raise ValueError("a longvideo row needs the segment index")
        seg = meta["segments"][segment]
        obj_meta = dict(seg.get("object") or {})
        obj_meta.setdefault("shape", seg.get("shape"))
        obj_meta.setdefault("colour", seg.get("colour"))
        sounded = bool(seg.get("sound", True))
    else:
        obj_meta, sounded = meta, True
    texture = obj_meta.get("texture")
    obj: str | None
    colour: str | None
    if texture:
        obj = vocab.texture_noun.get(texture, obj_meta.get("shape"))
        colour = f"{obj_meta.get('colour')} and {obj_meta.get('second_colour')}"
    else:
        obj, colour = obj_meta.get("shape"), obj_meta.get("colour")
    return {"object": obj, "colour": colour, "motion": vocab.motion_of_class.get(label),
            "sound": vocab.sound_of_class.get(label) if sounded else vocab.silence}


def attribute_accuracy(predicted: Sequence[Mapping[str, Any]], truth: Sequence[Mapping[str, Any]]
                       ) -> dict[str, dict[str, float]]:
    """Per attribute: ``{"accuracy", "count"}`` over the clips whose truth has that attribute
    (a missing prediction counts as wrong)."""
    out: dict[str, dict[str, float]] = {}
    for attr in ATTRIBUTES:
        pairs = [(p.get(attr), t.get(attr)) for p, t in zip(predicted, truth) if t.get(attr) is not None]
        right = sum(1 for p, t in pairs if p == t)
        out[attr] = {"accuracy": right / len(pairs) if pairs else float("nan"), "count": len(pairs)}
    return out


def caption_scores(candidates: Sequence[str], references: Sequence[Any],
                   truth: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """BLEU-4, CIDEr-D and (with ``truth``) per-attribute accuracy of generated captions."""
    bleu = corpus_bleu(candidates, references)
    cider, per_clip = cider_d(candidates, references)
    out: dict[str, Any] = {"bleu4": bleu.bleu, "cider": cider, "bleu_precisions": bleu.precisions,
                           "brevity_penalty": bleu.brevity_penalty, "num_clips": len(candidates),
                           "cider_per_clip": per_clip}
    if truth is not None:
        parsed = [parse_attributes(c) for c in candidates]
        out["attributes"] = attribute_accuracy(parsed, truth)
        out["parsed"] = parsed
    return out
