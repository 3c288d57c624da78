"""The rough training time (wizard.estimate.duration) and the wizard's warning when it is hours."""
from __future__ import annotations

import dataclasses
import io

from rich.console import Console

from tests.unit.test_init_flow import offline  # noqa: F401
from tests.unit.test_questions import _machine
from wizard.estimate import shape_for_model
from wizard.estimate.duration import H200_FLOPS, device_speed, estimate_duration, human
from wizard.init.context import Context
from wizard.init.flow import run_wizard

TWO_CORES = dataclasses.replace(_machine(None), cpu_count=2)


def test_the_measured_runs_come_back_out_of_the_model():
    # The H200 measurement: 2048-token passes of a 7.6B QLoRA at 0.198 s each.
    h200 = dataclasses.replace(_machine(24), gpus=[dataclasses.replace(_machine(24).gpus[0], name="NVIDIA H200")])
    d = estimate_duration(7.6e9, 2048 * 100, 100, method="qlora", task="sft", checkpointing=False, hardware=h200)
    assert abs(d.seconds / 100 - 0.198) < 0.01
    # The demo on two cores: ~100 tokens/s.
    demo = estimate_duration(0.135e9, 640 * 50, 100, method="qlora", task="sft", checkpointing=False,
                             hardware=TWO_CORES)
    assert round(demo.tokens_per_s) == 100 and human(demo.seconds) == "5 min"


def test_device_classes_scale_by_name_and_say_when_unknown():
    a10 = _machine(24)  # named NVIDIA A10
    assert device_speed(a10)[0] == H200_FLOPS * 0.13
    odd = dataclasses.replace(a10, gpus=[dataclasses.replace(a10.gpus[0], name="Mystery X1")])
    assert "speed unknown" in device_speed(odd)[1]
    assert device_speed(TWO_CORES)[1] == "CPU, 2 cores"


def test_a_7b_qlora_on_a_two_core_cpu_is_hours_and_the_wizard_says_so(tmp_path):
    seven = shape_for_model("qwen2.5-7b-instruct").params
    d = estimate_duration(seven, 400 * 70 * 3, 100, method="qlora", task="sft", checkpointing=True,
                          hardware=TWO_CORES)
    assert d.long and d.seconds > 10 * 3600
    ctx = Context(hardware=TWO_CORES, cwd=tmp_path, no_start=True,
                  preset={"hub": "huggingface", "model": "qwen2.5-7b-instruct", "dataset": "bundled:mix"})
    buf = io.StringIO()
    run_wizard(ctx, Console(file=buf, width=300, color_system=None), interactive=False, use_defaults=True,
               answers_file="lab.yaml")
    screen = buf.getvalue()
    assert "Time: ~" in screen and "(CPU, 2 cores)" in screen and "warning: that is hours on this machine" in screen
    # The demo on the same machine: minutes, no warning.
    ctx = Context(hardware=TWO_CORES, cwd=tmp_path, no_start=True, preset={"hub": "demo", "name": "demo"})
    buf = io.StringIO()
    run_wizard(ctx, Console(file=buf, width=300, color_system=None), interactive=False, use_defaults=True,
               answers_file="lab.yaml")
    assert " min at ~" in buf.getvalue() and "that is hours" not in buf.getvalue()
