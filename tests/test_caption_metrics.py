"""Caption metrics on hand-computed examples, and attribute parsing against the generators' own captions."""
from __future__ import annotations

import math

import pytest

from avkit.apps.captioning.data import build_tokenizer, clip_caption, detokenize
from avkit.apps.captioning.metrics import (
    attribute_accuracy,
    caption_scores,
    cider_d,
    corpus_bleu,
    parse_attributes,
    truth_attributes,
    vocabulary,
    words,
)


def test_words_lowercase_and_drop_punctuation_keeping_inner_hyphens() -> None:
    assert words("A blue bar spins counter-clockwise, in place.") == ["a", "blue", "bar", "spins", "counter-clockwise",
                                                                      "in", "place"]


# -- BLEU ------------------------------------------------------------------------------------------

def test_bleu_of_identical_captions_is_one() -> None:
    caps = ["a red bar slides left across the frame", "a static white striped disc with a hum"]
    result = corpus_bleu(caps, caps)
    assert result.bleu == pytest.approx(1.0) and result.brevity_penalty == 1.0 and result.smoothed_orders == []


def test_bleu_of_a_known_partial_overlap() -> None:
    # unigrams 5/6 (the second "the" is clipped), bigrams 3/5, trigrams 2/4, 4-grams 1/3, equal lengths
    result = corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]])
    assert result.precisions == pytest.approx([5 / 6, 3 / 5, 2 / 4, 1 / 3])
    assert result.bleu == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)  # 0.5373


def test_bleu_brevity_penalty_and_closest_reference_length() -> None:
    result = corpus_bleu(["the cat sat on"], [["the cat sat on the mat"]])
    assert result.precisions == [1.0] * 4
    assert result.brevity_penalty == pytest.approx(math.exp(1 - 6 / 4)) and result.bleu == pytest.approx(math.exp(-0.5))
    # Two references: the one closest in length (4 words) is used, so no penalty.
    assert corpus_bleu(["the cat sat on"], [["the cat sat on the mat", "the cat sat on"]]).bleu == pytest.approx(1.0)


def test_bleu_smooths_only_an_order_without_any_match() -> None:
    # "a b c d e" vs "a b c x d e": unigrams 5/5, bigrams 3/4, trigrams 1/3, 4-grams 0/2 -> 0.1/2
    result = corpus_bleu(["a b c d e"], [["a b c x d e"]])
    assert result.precisions == pytest.approx([1.0, 3 / 4, 1 / 3, 0.0]) and result.smoothed_orders == [4]
    bp = math.exp(1 - 6 / 5)
    assert result.bleu == pytest.approx(bp * (1.0 * 3 / 4 * 1 / 3 * 0.1 / 2) ** 0.25)
    # at corpus level a second sentence with a 4-gram match removes the smoothing
    both = corpus_bleu(["a b c d e", "p q r s"], [["a b c x d e"], ["p q r s"]])
    assert both.smoothed_orders == [] and both.precisions[3] == pytest.approx(1 / 3)


# -- CIDEr-D ---------------------------------------------------------------------------------------

def test_cider_of_identical_captions_with_distinct_references_is_ten() -> None:
    refs = ["a b c d", "e f g h"]
    score, per_clip = cider_d(refs, refs)
    assert score == pytest.approx(10.0) and per_clip == pytest.approx([10.0, 10.0])


def test_cider_worked_example() -> None:
    # Clip 1 "a b" = its reference: unigram and bigram cosines 1, no 3/4-grams -> (1 + 1) / 4 * 10 = 5.
    # Clip 2 "c e" vs "c d": unigram cosine (log2)^2 / (sqrt2 log2)^2 = 0.5, bigram 0 -> 0.5 / 4 * 10 = 1.25.
    score, per_clip = cider_d(["a b", "c e"], ["a b", "c d"])
    assert per_clip == pytest.approx([5.0, 1.25]) and score == pytest.approx(3.125)


def test_cider_ngrams_every_clip_has_weigh_nothing_and_length_is_penalised() -> None:
    score, _ = cider_d(["the", "the"], ["the", "the"])
    assert score == 0.0  # idf log(2/2) = 0
    long = "a b c d e f g h i j k l m n o p q r s t"
    _, full = cider_d([long, "z y"], [long, "z y"])
    _, short = cider_d(["a b c d e f g h", "z y"], [long, "z y"])
    assert full[0] == pytest.approx(10.0) and 0 < short[0] < 0.5 * full[0]



def test_cider_clips_repeated_ngrams_to_their_count_in_the_reference() -> None:
    # The "D" of CIDEr-D: an n-gram weighs at most what it weighs in the reference, so saying the
    # right phrase twice does not pay; without the clipping the repeated caption scores 6.62, not 3.31.
    refs = ["a red bar slides left", "a blue disc spins clockwise", "a green triangle moves up", "a chime then a knock"]
    _, once = cider_d(refs, refs)
    _, twice = cider_d(["a red bar slides left a red bar slides left"] + refs[1:], refs)
    assert once[0] == pytest.approx(10.0)
    assert twice[0] == pytest.approx(3.311, abs=1e-3) and twice[1:] == once[1:]

# -- attributes ------------------------------------------------------------------------------------

def test_vocabulary_comes_from_the_generators() -> None:
    from avkit.data.synthetic import instruments, motion
    from avkit.data.synthetic.common import PALETTE

    v = vocabulary()
    names = {" ".join(c) for c in v.colours}
    assert set(PALETTE) <= names and {"dark grey", "light grey"} <= names
    assert set(motion.ALL_SHAPES) <= set(v.objects.values())
    assert {spec[1] for spec in motion.TEXTURES.values()} <= set(v.objects.values())
    assert set(v.motion_of_class) == set(motion.CLASSES)
    assert len(set(v.motion_of_class[c] for c in motion.MOTION_CLASSES)) == len(motion.MOTION_CLASSES)
    assert len({v.motion_of_class[c] for c in motion.APPEARANCE_CLASSES}) == 1  # all "static"
    assert v.sound_of_class["move_left"] == v.sound_of_class["move_right"]
    assert v.sound_of_class["rotate_cw"] != v.sound_of_class["rotate_ccw"]
    assert v.silence not in v.sound_of_class.values()
    assert set(instruments.NAMES) <= set(v.sound_keys.values())


@pytest.fixture(scope="module")
def generated_rows(tmp_path_factory) -> list:
    """Manifest rows (and segment indices) of every motion class and of long videos with silent actions."""
    from avkit.data.synthetic import generate, read_manifest

    d = tmp_path_factory.mktemp("caption_parse")
    generate("motion", d / "motion", num=20, seed=3, size=16, duration=0.5)
    generate("longvideo", d / "long", num=3, seed=3, size=16, duration=8.0, segments=(1, 2), silent_actions=(1, 1),
             sound_distractors=(1, 1))
    rows = [(r, None, r["caption"]) for r in read_manifest(d / "motion")]
    for r in read_manifest(d / "long"):
        rows += [(r, k, clip_caption(s["caption"])) for k, s in enumerate(r["meta"]["segments"])]
    return rows


def test_generator_captions_parse_to_the_manifest_truth(generated_rows) -> None:
    kinds = {r["label"] for r, _, _ in generated_rows}
    assert len(kinds) == 10  # every motion class is there
    silent = 0
    for row, seg, caption in generated_rows:
        truth = truth_attributes(row, seg)
        assert parse_attributes(caption) == truth, caption
        silent += truth["sound"] == vocabulary().silence
    assert silent >= 3  # the silent actions of the long videos


def test_parse_examples_and_accuracy() -> None:
    p = parse_attributes("A chime, then a static dark grey and white striped disc, with a steady low hum.")
    assert p == {"object": "striped disc", "colour": "dark grey and white", "motion": "static", "sound": "hum"}
    p = parse_attributes("A blue triangle spins counter-clockwise in place, in silence.")
    assert p == {"object": "triangle", "colour": "blue", "motion": "rotate_ccw", "sound": "silence"}
    assert parse_attributes("nothing here") == {"object": None, "colour": None, "motion": None, "sound": None}
    inst = parse_attributes("A red ellipse pulses in time with a solo flute, 5 notes between 523 and 1047 Hz.")
    assert inst == {"object": "ellipse", "colour": "red", "motion": None, "sound": "flute"}
    acc = attribute_accuracy([{"object": "bar", "motion": None}, {"object": "ellipse", "motion": "x"}],
                             [{"object": "bar", "motion": "move_up"}, {"object": "bar", "motion": None}])
    assert acc["object"] == {"accuracy": 0.5, "count": 2} and acc["motion"] == {"accuracy": 0.0, "count": 1}
    assert math.isnan(acc["sound"]["accuracy"]) and acc["sound"]["count"] == 0


def test_caption_scores_bundle() -> None:
    refs = ["A red bar slides left across the frame, wrapping around the edge, with a tick every quarter of the frame.",
            "A static black and white striped disc, with a steady low hum."]
    truth = [parse_attributes(r) for r in refs]
    out = caption_scores(refs, refs, truth)
    assert out["bleu4"] == pytest.approx(1.0) and out["attributes"]["motion"]["accuracy"] == 1.0


# -- tokenizer -------------------------------------------------------------------------------------

def test_word_level_tokenizer_is_deterministic_and_round_trips(tmp_path) -> None:
    caps = ["A red bar slides left, with a tick.", "A blue bar spins counter-clockwise in place."]
    a, b = build_tokenizer(caps), build_tokenizer(list(caps))
    assert a.get_vocab() == b.get_vocab()
    assert [a.pad_token_id, a.bos_token_id, a.eos_token_id, a.unk_token_id] == [0, 1, 2, 3]
    ids = a(caps[1], add_special_tokens=False)["input_ids"]
    assert detokenize(a.decode(ids)) == caps[1]
    assert a("a purple bar", add_special_tokens=False)["input_ids"][1] == a.unk_token_id
    a.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(caps[0], add_special_tokens=False)["input_ids"] == a(caps[0], add_special_tokens=False)["input_ids"]
