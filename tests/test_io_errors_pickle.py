"""Every avkit exception survives pickling with its message and attributes (issue #26: a worker's
MediaError could not be unpickled in the parent, and ``avkit generate`` waited forever)."""
from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import avkit
from avkit.errors import AvkitError, DependencyError, MediaError

# Modules that need optional packages; a missing one is reported, not a failure.
OPTIONAL = ("transformers", "peft", "accelerate", "tensorboard", "mir_eval", "fast_bss_eval", "torchcodec")


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def error_classes() -> list[type]:
    """AvkitError and every subclass defined anywhere in the avkit package."""
    for info in pkgutil.walk_packages(avkit.__path__, "avkit."):
        if info.name.endswith("__main__"):  # runs the CLI when imported
            continue
        try:
            importlib.import_module(info.name)
        except ImportError as err:
            if getattr(err, "name", None) and err.name.split(".")[0] in OPTIONAL:
                continue
            raise
    classes = {AvkitError} | all_subclasses(AvkitError)
    return sorted((c for c in classes if c.__module__.startswith("avkit")), key=lambda c: c.__qualname__)


def make(cls: type) -> AvkitError:
    """An instance with a distinct string for every required argument of ``__init__``."""
    params = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
              if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return cls(*[f"{cls.__name__}-{p.name}-value" for p in params] or ["a message"])


CLASSES = error_classes()


def test_the_walk_finds_the_known_errors():
    assert {AvkitError, MediaError, DependencyError} <= set(CLASSES)
    assert len(CLASSES) >= 4


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_round_trip(cls, protocol):
    err = make(cls)
    try:
        raise err
    except AvkitError as raised:
        back = pickle.loads(pickle.dumps(raised, protocol=protocol))
    assert type(back) is cls
    assert str(back) == str(err) and back.args == err.args
    assert back.__dict__ == err.__dict__
    assert isinstance(back, ValueError)


def test_media_error_attributes():
    back = pickle.loads(pickle.dumps(MediaError("/x/clip.mp4", "truncated")))
    assert (back.path, back.reason, str(back)) == ("/x/clip.mp4", "truncated", "/x/clip.mp4: truncated")
    back = pickle.loads(pickle.dumps(DependencyError("torchaudio", "torchaudio fails to load; fix: pip ...")))
    assert back.package == "torchaudio" and str(back) == "torchaudio fails to load; fix: pip ..."
