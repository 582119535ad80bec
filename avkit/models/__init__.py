"""The video model zoo: every family from the lecture, built by ``create_model(name, **options)``.

Each family lives in its own file and registers its builders on import; ``registry.FAMILIES`` lists
the files, imported when a model is first looked up (a model whose file bears its name imports only that file).
"""
from avkit.models.registry import create_model, list_models, model_entry, register_model

__all__ = ["create_model", "list_models", "model_entry", "register_model"]
