"""avkit: audio-visual video understanding.

Read video with its sound (:mod:`avkit.io`), sample clips and build datasets (:mod:`avkit.data`),
train the lecture's video model families (:mod:`avkit.models`), and run the audio-visual
applications from Python or from the ``avkit`` command line.
"""
from avkit.errors import AvkitError, DependencyError, MediaError, OutputExistsError

__version__ = "0.1.0"

__all__ = ["AvkitError", "DependencyError", "MediaError", "OutputExistsError", "__version__"]
