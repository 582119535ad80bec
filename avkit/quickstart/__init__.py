"""The quickstart: the lecture's model comparison, on motion data avkit generates itself.

``avkit quickstart`` runs :func:`run_quickstart`:

1. generate the synthetic ``motion`` set (6 classes that differ only in motion, 4 that differ only
   in appearance; any single frame of a motion class says nothing about its class);
2. read it back through :class:`~avkit.data.VideoDataset` with the clip sampler (decode speed);
3. train tiny versions of single-frame, late fusion (pooling and concatenation), early fusion, C3D,
   two-stream and an audio-visual model with the same engine ``avkit train`` uses, evaluate each
   with multi-clip averaging and print a table (accuracy on motion-only classes, on
   appearance-only classes, overall, params, GFLOPs, train time) plus a plot
   (``compare=False`` / ``--no-train`` stops after step 2).

The lecture's picture comes out: single-frame at chance on the motion classes, late fusion by
pooling in between (it keeps what happened but not in which order), 3D and two-stream models at
90% or more. Measured tables are in docs/quickstart.md. Everything is an ordinary Python call a
user can repeat or change.

The package, top to bottom: :mod:`~avkit.quickstart.models` (the families compared),
:mod:`~avkit.quickstart.config` (settings, checks, the recipe of one model),
:mod:`~avkit.quickstart.run` (the steps, and ``--overwrite`` through
:class:`~avkit.staging.StagedOutput`: only an earlier quickstart's own outputs, only once the new
run is complete), :mod:`~avkit.quickstart.workers` (step 3, side by side in forked processes) and
:mod:`~avkit.quickstart.report` (tables, results.md, the plot).

torch, the engine and the data pipeline are imported inside the functions that use them, so that
``avkit --help`` (which reads this package's defaults) starts without loading torch.
"""
from avkit.quickstart.config import QuickstartConfig, check_config, recipe
from avkit.quickstart.models import QuickModel, default_models
from avkit.quickstart.report import group_accuracy, plot_results, results_markdown, results_table
from avkit.quickstart.run import MARKER, OUTPUTS, is_quickstart_output, read_back, run_quickstart
from avkit.quickstart.workers import TrainSets, plan_jobs, train_models, train_one

__all__ = ["MARKER", "OUTPUTS", "QuickModel", "QuickstartConfig", "TrainSets", "check_config", "default_models",
           "group_accuracy", "is_quickstart_output", "plan_jobs", "plot_results", "read_back", "recipe",
           "results_markdown", "results_table", "run_quickstart", "train_models", "train_one"]
