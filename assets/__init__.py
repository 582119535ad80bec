"""Models shipped with avkit (installed as ``avkit.assets``): ``separation/`` is the sound separation model
that ``avkit separate`` uses without ``--run``; ``flow/`` the RAFT-small weights that ``build_raft("small")``
and ``compute_flow(frames, "raft")`` use (each folder has a MODEL_CARD.md)."""
