"""The video model zoo: every family from the lecture, built by ``create_model(name, **options)``.

Each family lives in its own file and registers its builders on import (see ``registry.py``).
"""
from avkit.models.registry import create_model, list_models, model_entry, register_model

# One import per family file; each registers its builders. Keep one module per line.
# fmt: off
# families: begin
# families: end
# fmt: on

__all__ = ["create_model", "list_models", "model_entry", "register_model"]
