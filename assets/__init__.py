"""Models shipped with avkit (installed as ``avkit.assets``): ``separation/`` is the sound separation model
that ``avkit separate`` uses without ``--run`` (see its MODEL_CARD.md)."""
