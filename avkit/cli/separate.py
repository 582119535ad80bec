"""``avkit separate``: separate the sounds of a video with the shipped separation model or a trained run."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avkit.apps.separation.inference import Separator
    from avkit.apps.separation.video import SeparationResult

REQUIRES = ("torch", "av")  # loaded (or reported in one line) before the command runs

EPILOG = """examples:
  avkit separate duet.mp4 --out sep/duet
        one WAV and one video per source the model finds, the residual, soundmap.png/.mp4
        (no --run: the model shipped with avkit, trained on sampled General MIDI instruments)
  avkit separate duet.mp4 --run runs/separation_gm --out sep/halves --regions 2x1
        one source per grid cell (2 columns, 1 row); 'whole' for the whole frame
  avkit separate duet.mp4 --run runs/separation_instruments --out sep/boxes --regions "0,0,16,32;16,0,32,32"
        one source per box x0,y0,x1,y1 (pixels, or fractions of the frame when all values are <= 1)
  avkit separate a.mp4 b.mp4 --run runs/separation_instruments --out sep/mix
        the classic demonstration: mix the sounds of two videos, separate each from its own
        picture, print SDR/SIR/SAR/SI-SDR of the model, the mixture and the ideal-mask oracles
  avkit separate duet.mp4 --run runs/separation_instruments --out sep/duet --no-video --json
  avkit separate duet.mp4 --run runs/separation_gm --stems runs/separation_gm_audio --out sep/duet --regions 2x1
        two sources: an audio-only run (visual: none) gives the sounds, the pictured run says whose
        each is (the shipped model does this with its own audio-only network; --stems none turns it off)
  avkit separate duet.mp4 --out sep/duet --regions 2x1 --instruments violin,flute
        two different instruments, named by you (one per region, in order): separated by their
        timbres (by default the shipped model names them from the pictures when it is sure;
        --instruments none always uses the networks; 'avkit separate --instruments list' names the choices)

Outputs (in --out; an existing non-empty folder only with --overwrite, which replaces the files
an earlier 'avkit separate' wrote there): source_K.wav (32-bit float, the model's sample rate),
source_K.mp4 (the picture, other regions dimmed, with the separated sound), residual.wav/.mp4
(mixture minus the sources), mixture.wav, soundmap.png (which pixels make the sound, and the
sources' regions), soundmap.mp4 (the sound map over time) and separation.json (regions, energy
shares, timings; metrics in the two-video mode). A sound longer than 64 s is separated 60 s at a time
(windows cross-faded over 4 s), so memory does not grow with the video's length. Train your own run with
recipes/separation_gm.yaml.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("separate", help="separate the sounds of a video by what its picture shows",
                              description="Separate the sound sources of a video, guided by its picture, with a "
                                          "model trained by 'avkit train' (task: separation). Give two videos to "
                                          "mix their sounds and separate them again, with metrics.",
                              epilog=EPILOG)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video with sound (two videos: the mix demonstration)")
    p.add_argument("--run", default=None,
                   help="separation run directory written by 'avkit train' (default: the model shipped with avkit)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--regions", default="auto",
                   help="auto (the model finds the sources), whole, grid:CxR (or CxR), or boxes 'x0,y0,x1,y1;...' "
                        "in pixels of the picture as displayed (fractions when all values are <= 1)")
    p.add_argument("--max-sources", type=int, default=4, help="with --regions auto: at most this many sources")
    p.add_argument("--no-video", action="store_true", help="write the WAVs and soundmap.png only (faster)")
    p.add_argument("--stems", default=None, metavar="RUN",
                   help="an audio-only separation run whose stems the model orders when it has a slot per source "
                        "('none': the pictured model alone; default: the model's own, which only the shipped one has)")
    p.add_argument("--instruments", default="auto", metavar="NAMES",
                   help="the instrument of each source, comma-separated (violin,flute): separate them by timbre; "
                        "'auto' (default): named from the pictures by the shipped model, used when it is sure and "
                        "the sound bears the names out; 'none': the networks only; 'list': print the names")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights of the run")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier 'avkit separate' output in --out")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from avkit.apps.separation import separate_pair, separate_video
    from avkit.apps.separation.regions import parse_regions
    from avkit.apps.separation.timbre import check_instruments, instruments
    from avkit.errors import AvkitError

    if args.instruments == "list":
        print("\n".join(sorted(instruments())))
        return 0
    given = None
    if args.instruments not in ("auto", "none"):
        given = check_instruments([n.strip() for n in args.instruments.split(",")])
    if len(args.videos) > 2:
        raise AvkitError(f"give one video, or two for the mix demonstration (got {len(args.videos)})")
    if args.max_sources < 1:
        raise AvkitError(f"--max-sources must be >= 1, got {args.max_sources}")
    parse_regions(args.regions)  # a bad --regions fails before anything is loaded
    if len(args.videos) == 2 and args.regions != "auto":
        raise AvkitError("--regions is for one video; with two videos each is separated from its whole picture")
    with _status(enabled=not args.json) as say:
        model = _model(args) if args.stems or args.instruments == "none" else args.run
        if len(args.videos) == 2:
            result = separate_pair(args.videos[0], args.videos[1], model, args.out, overwrite=args.overwrite,
                                   videos=not args.no_video, checkpoint=args.checkpoint, device=args.device,
                                   instruments=given, progress=say)
        else:
            result = separate_video(args.videos[0], model, args.out, regions=args.regions,
                                    overwrite=args.overwrite, videos=not args.no_video, max_sources=args.max_sources,
                                    checkpoint=args.checkpoint, device=args.device, instruments=given, progress=say)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    _print(result)
    if given is not None and not any("instrument" in src for src in result.sources):
        print("  (an instrument named for more than one source: separated by the networks, which tell one instrument's "
              "players apart by their motion)")
    return 0


def _model(args: argparse.Namespace) -> Separator:
    """The model of ``--run`` with the stems of ``--stems`` (or none), and no namer with ``--instruments none``."""
    from avkit.apps.separation import load

    separator = load(args.run, args.checkpoint, args.device)
    if args.stems and args.stems.lower() == "none":
        separator.detach_stems()
    elif args.stems:
        separator.attach_stems(load(args.stems, args.checkpoint, args.device))
    if args.instruments == "none":
        separator.detach_namer()
    return separator


@contextlib.contextmanager
def _status(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A transient rich spinner on stderr naming the current step (only on a terminal: an error stays one line)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda msg: None
        return
    from rich.console import Console

    with Console(stderr=True).status("avkit separate") as status:
        yield lambda msg: status.update(f"avkit separate: {msg}")


def _print(result: SeparationResult) -> None:
    from avkit.apps.separation.naming import CONFIDENT

    d = result.to_dict()
    print(f"{len(result.sources)} source(s), {result.duration:.2f} s of audio -> {result.out}")
    for k, src in enumerate(result.sources):
        where = f"{src['label']}, box {src['box']}" if "box" in src else src.get("label", "")
        if "instrument" in src:  # named from the picture (with how sure), or given with --instruments
            how = f"named at p = {src['named']['probability']:.2f}" if "named" in src else "as given"
            where += f", {src['instrument']} ({how}; separated by timbre)"
        elif "named" in src:  # the namer's guess, not used: separation.json says why
            guess = src["named"]
            where += f", looks like {guess['instrument']} (p = {guess['probability']:.2f}, {guess['not_by_timbre']})"
        print(f"  source {k}: {where}, {100 * src['energy']:.1f}% of the energy -> {src['wav']}"
              + (f", {src['video']}" if "video" in src else ""))
    if result.metrics is not None:
        from avkit.apps.separation.metrics import format_table  # scipy: only for the mix mode's scores

        print(format_table({"2": result.metrics["mean"]}, title="metrics (dB; mean over the two sources):"))
    named = [src["named"] for src in result.sources if "named" in src]
    if named and len(named) == len(result.sources) and all(n["probability"] < CONFIDENT for n in named):
        print(f"note: no source looks surely like an instrument the model knows (at p >= {CONFIDENT}; it learnt avkit's "
              "drawn instruments, not camera footage), so the networks separated them; when you know where the "
              "players are and what they play, give --regions and --instruments (docs/separation.md)")
    rtf = d.get("real_time_factor")
    if rtf is not None:
        print(f"separation {result.seconds['separate']:.3f} s ({rtf:.0f}x real time), "
              f"total {result.seconds['total']:.2f} s")
