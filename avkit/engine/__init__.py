"""Fine-tuning engine: recipes -> training runs, checkpoints, resume, DDP, evaluation, classification.

``train(config) -> RunResult``, ``evaluate(run_dir, clips=10, crops=3) -> dict`` and
``classify(video, run_dir) -> list`` are what ``avkit train`` / ``eval`` / ``classify`` call.
"""
from avkit.engine.classify import classify
from avkit.engine.config import (
                                 Config,
                                 DataConfig,
                                 ModelConfig,
                                 OptimConfig,
                                 TrainConfig,
                                 apply_overrides,
                                 config_from_dict,
                                 dump_config,
                                 load_config,
)
from avkit.engine.evaluate import evaluate, load_run
from avkit.engine.step import forward_batch
from avkit.engine.trainer import RunResult, train

__all__ = ["Config", "DataConfig", "ModelConfig", "OptimConfig", "RunResult", "TrainConfig", "apply_overrides",
           "classify", "config_from_dict", "dump_config", "evaluate", "forward_batch", "load_config", "load_run",
           "train"]
