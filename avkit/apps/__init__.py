"""The audio-visual applications, built on io, data, models and the engine.

One module per application: audio-guided clip selection, visually guided sound separation, and
prompting or captioning with video-language models. The CLI commands (``avkit select``,
``avkit separate``, ``avkit ask``, ``avkit caption``) are thin layers over these modules.
"""
