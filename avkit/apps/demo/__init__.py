"""``avkit demo``: a local web page (Gradio) to look at and listen to every application (docs/demo.md).

```python
from avkit.apps import demo

demo.serve(demo.DemoOptions(runs=["avkit_runs/quickstart"]), port=7860)   # blocks; http://127.0.0.1:7860
```

Importing this package loads neither Gradio nor torch: :func:`serve` does.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avkit.apps.demo.app import DemoOptions

__all__ = ["serve", "DemoOptions"]


def serve(options: DemoOptions, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve the page on ``host:port`` until interrupted. Uploads and results live in a temporary folder that is
    removed on exit; Gradio's analytics are off and ``share`` (a public Gradio link) only when asked."""
    from avkit.environment import require

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before Gradio loads: no usage reports
    require("gradio")  # a broken install is one line with the fix
    with tempfile.TemporaryDirectory(prefix="avkit-demo-") as tmp:
        os.environ["GRADIO_TEMP_DIR"] = str(Path(tmp) / "uploads")  # where Gradio keeps uploads
        from avkit.apps.demo.app import build, theme

        options.workdir = Path(tmp)
        page = build(options)
        page.queue(default_concurrency_limit=1)  # one model run at a time on a small machine
        page.launch(server_name=host, server_port=port, share=share, inbrowser=False, show_error=False,
                    max_file_size=f"{options.max_upload_mb:g}mb", ssr_mode=False, mcp_server=False, quiet=True,
                    footer_links=[], theme=theme(), allowed_paths=[str(tmp)])


def __getattr__(name: str) -> object:
    if name == "DemoOptions":
        from avkit.apps.demo.app import DemoOptions

        return DemoOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
