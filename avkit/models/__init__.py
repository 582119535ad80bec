"""The video model zoo: every family from the lecture, built by ``create_model(name, **options)``.

Each family lives in its own file and registers its builders on import (see ``registry.py``).
"""
import avkit.models.audio_ast  # noqa: F401,E402
import avkit.models.audio_cnn  # noqa: F401,E402
import avkit.models.av_mae  # noqa: F401,E402
import avkit.models.c3d  # noqa: F401,E402
import avkit.models.conv_recurrent  # noqa: F401,E402
import avkit.models.early_fusion  # noqa: F401,E402
import avkit.models.hf_video  # noqa: F401,E402
import avkit.models.i3d  # noqa: F401,E402
import avkit.models.late_fusion  # noqa: F401,E402
import avkit.models.recurrent  # noqa: F401,E402

# One import per family file; each registers its builders. Keep one module per line.
# fmt: off
# families: begin
import avkit.models.single_frame  # noqa: F401,E402
import avkit.models.torchvision_video  # noqa: F401,E402
import avkit.models.two_stream  # noqa: F401,E402
import avkit.models.video_transformer  # noqa: F401,E402
from avkit.models.registry import create_model, list_models, model_entry, register_model

# families: end
# fmt: on

__all__ = ["create_model", "list_models", "model_entry", "register_model"]
