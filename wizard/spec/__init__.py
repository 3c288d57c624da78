"""The run spec: the one validated description of a run (`model.py`) and its commented YAML (`yaml_writer.py`).

Every field's description, default, choices and bounds live on the pydantic model; the wizard, the YAML
comments and the docs read them from there.
"""
from wizard.spec.model import (
                               SPEC_VERSION,
                               DatasetSource,
                               DataSpec,
                               DpoSpec,
                               LoraSpec,
                               ModelSpec,
                               QuantSpec,
                               RunSpec,
                               TrainSpec,
                               apply_overrides,
                               describe_errors,
                               dump,
                               from_dict,
                               load,
                               locate,
                               read_yaml,
                               resolve_paths,
)

__all__ = ["SPEC_VERSION", "DatasetSource", "DataSpec", "DpoSpec", "LoraSpec", "ModelSpec", "QuantSpec", "RunSpec",
           "TrainSpec", "apply_overrides", "describe_errors", "dump", "from_dict", "load", "locate", "read_yaml",
           "resolve_paths"]
