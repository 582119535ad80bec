"""The audio-visual applications, built on io, data, models and the engine; one package each.

Each package's ``load`` gives its main object, ready to use (torchaudio-bundle style):

- :mod:`avkit.apps.clip_selection` (``avkit select``): ``load(run, preview=None, sampler=None, ...)
  -> ClipSelector`` classifies a long video from a few clips chosen by a cheap audio(-visual) preview.
- :mod:`avkit.apps.separation` (``avkit separate``): ``load(run) -> Separator`` separates the
  sound of the visible sources of a video.
- :mod:`avkit.apps.captioning` (``avkit caption``): ``load(run) -> CaptionerRun`` captions a video
  with avkit's own trained captioner.
- :mod:`avkit.apps.video_llm` (``avkit ask``): ``load(model) -> VideoLLM`` (= ``VideoLLM.from_pretrained``,
  a hub id or a local folder, not a run) answers prompts about a video.

``run`` is a run directory written by ``avkit train``; ``checkpoint="best"`` and ``device=None``
(the GPU when there is one) are the defaults everywhere. The tasks that train them are found
through the ``avkit.tasks`` entry points. The CLI commands are thin layers over these packages;
importing a package stays light (torch loads with the models).
"""
