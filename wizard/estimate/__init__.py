"""The memory and throughput model: a model's shape (`shape.py`), the memory breakdown of a run, the verdict
against a GPU and `recommend()` (`memory.py`). The engine, `estimate`, `validate` and the wizard all ask here."""
from wizard.estimate.advice import fitting_change, verdict
from wizard.estimate.batching import Plan
from wizard.estimate.memory import (
                                    AUTO_CKPT_HEADROOM,
                                    GIB,
                                    PART_LABELS,
                                    Breakdown,
                                    available_memory,
                                    estimate,
                                    estimate_for_spec,
                                    method_table,
                                    plan_for_spec,
                                    recommend,
)
from wizard.estimate.shape import Shape, shape_for_model, shape_from_config

__all__ = ["Plan", "AUTO_CKPT_HEADROOM", "GIB", "PART_LABELS", "Breakdown", "available_memory", "estimate",
           "estimate_for_spec", "fitting_change", "method_table", "plan_for_spec", "recommend", "verdict", "Shape", "shape_for_model",
           "shape_from_config"]
