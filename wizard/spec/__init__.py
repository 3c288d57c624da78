"""The run spec: the one validated description of a run (`model.py`) and its commented YAML (`yaml_writer.py`).

Every field's description, default, choices and bounds live on the pydantic model; the wizard, the YAML
comments and the error messages read them from there (`fields.py`). `aliases.py` maps other trainers'
names to the fields, for the did-you-mean hints of spec files and of the wizard's answers files.
"""
from wizard.spec.aliases import ALIASES
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
                               task_method_problem,
)

__all__ = ["ALIASES", "SPEC_VERSION", "DatasetSource", "DataSpec", "DpoSpec", "LoraSpec", "ModelSpec", "QuantSpec", "RunSpec",
           "TrainSpec", "apply_overrides", "describe_errors", "dump", "from_dict", "load", "locate", "read_yaml",
           "resolve_paths", "task_method_problem"]
