"""Asking a pretrained video-language model about a video (``avkit ask``; docs/video_language.md).

```python
from avkit.apps import video_llm

vlm = video_llm.load("llava-hf/LLaVA-NeXT-Video-7B-hf")   # a hub id or a local folder
answer = vlm.ask("clip.mp4", "What is the person cooking?", num_frames=16)
answer.answer, answer.frame_times, answer.to_dict()
```

:func:`load` is :meth:`VideoLLM.from_pretrained` (a model, not a run directory: these models are
trained elsewhere). Importing this package loads neither torch nor transformers; the model does.
"""
from avkit.apps.video_llm.model import Answer, Timings, VideoLLM
from avkit.apps.video_llm.token_budget import BudgetPlan, plan_budget

load = VideoLLM.from_pretrained

__all__ = ["load", "VideoLLM", "Answer", "Timings", "BudgetPlan", "plan_budget"]
