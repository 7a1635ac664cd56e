"""Continuous training: ``synthcv loop CONFIG`` monitors a production batch against the
champion's training data, maps what drifted to a spec overlay, renders a targeted set, fine-tunes
with replay and promotes the candidate (MLflow alias ``champion``) only through a gate."""

from synthcv.loop.config import LoopConfig, load_loop_config
from synthcv.loop.cycle import run_loop
from synthcv.loop.mapping import load_mapping

__all__ = ["LoopConfig", "load_loop_config", "load_mapping", "run_loop"]
