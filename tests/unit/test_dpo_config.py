"""spec -> DPOConfig (beta, loss type, lengths) and the length limits TRL 1.16 no longer applies itself."""
from __future__ import annotations

import pytest

from wizard.engine.dpo import (
    TRL_RANGE,
    Limits,
    TrlVersionError,
    check_trl,
    cut_row,
    dpo_config,
    pair_passes,
    preference_lengths,
    tokenize_pair,
)
from wizard.engine.loader import choose_precision
from wizard.engine.training_args import build_args
from wizard.spec import from_dict

PAIR = {"prompt": [{"role": "user", "content": "What is 2 plus 3?"}],
        "chosen": [{"role": "assistant", "content": "Sure! 2 plus 3 is 5. Hope that helps!"}],
        "rejected": [{"role": "assistant", "content": "Hmm, that's a tricky one. Maybe look it up."}],
        "where": "pairs.jsonl:1"}


def make_spec(**dpo):
    return from_dict({"model": {"id": "smollm2-135m-instruct"}, "task": "dpo", "method": "lora",
                      "data": {"train": "pairs.jsonl", "max_length": 300},
                      "train": {"lr": 3e-4, "batch_size": 2, "grad_accum": 4, "max_steps": 7, "seed": 11,
                                "logging_steps": 3, "save_steps": 5},
                      "dpo": dpo})


def config_of(spec, tmp_path, precompute=False):
    args = build_args(spec, tmp_path, choose_precision("fp32", spec.method), False, has_eval=True)
    return args, dpo_config(spec, args, precompute_ref=precompute)


@pytest.mark.parametrize("loss", ["sigmoid", "ipo", "hinge"])
def test_beta_and_loss_type_reach_the_config(tmp_path, loss):
    _, cfg = config_of(make_spec(beta=0.25, loss_type=loss), tmp_path)
    assert cfg.beta == 0.25
    assert cfg.loss_type == [loss]
    assert cfg.label_smoothing == 0.0


def test_losses_that_need_label_smoothing_get_a_valid_one(tmp_path):
    assert config_of(make_spec(loss_type="robust"), tmp_path)[1].label_smoothing == 0.1
    assert config_of(make_spec(loss_type="exo_pair"), tmp_path)[1].label_smoothing > 0


def test_training_arguments_are_copied_unchanged(tmp_path):
    args, cfg = config_of(make_spec(), tmp_path)
    for name in ("output_dir", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "max_steps", "seed", "logging_steps", "save_steps", "eval_strategy", "lr_scheduler_type",
                 "optim", "bf16", "fp16", "use_cpu", "report_to", "gradient_checkpointing", "save_total_limit"):
        assert getattr(cfg, name) == getattr(args, name), name
    assert cfg.learning_rate == 3e-4 and cfg.max_steps == 7 and cfg.per_device_train_batch_size == 2
    # TRL's own defaults must not leak in (its learning rate is 1e-6, bf16 on, checkpointing on).
    assert cfg.bf16 is False and cfg.gradient_checkpointing is False


def test_lengths_are_enforced_by_tune_wizard_not_trl(tmp_path):
    _, cfg = config_of(make_spec(max_prompt_length=64, max_completion_length=32), tmp_path)
    # TRL 1.16 has a single max_length that cuts the end of prompt + answer; the per-part limits are ours.
    assert cfg.max_length is None
    assert not hasattr(cfg, "max_prompt_length")
    assert Limits.of(make_spec(max_prompt_length=64, max_completion_length=32)) == Limits(64, 32, 300)
    assert cfg.gradient_checkpointing_kwargs == {"use_reentrant": False}


def test_precompute_only_when_pairs_are_seen_more_than_once(tmp_path):
    spec = make_spec()  # 7 steps x 2 x 4 = 56 pairs
    assert pair_passes(spec, 100, spec.train.grad_accum) == pytest.approx(0.56)
    assert pair_passes(spec, 20, spec.train.grad_accum) == pytest.approx(2.8)
    assert config_of(spec, tmp_path, precompute=True)[1].precompute_ref_log_probs is True
    assert config_of(spec, tmp_path)[1].precompute_ref_log_probs is False


def test_limits_keep_the_prompt_end_and_the_answer_start():
    lim = Limits(prompt=4, completion=3, total=100)
    row = {"prompt_ids": [1, 2, 3, 4, 5, 6], "chosen_ids": [7, 8, 9, 10], "rejected_ids": [11, 12]}
    out = cut_row(row, lim)
    assert out == {"prompt_ids": [3, 4, 5, 6], "chosen_ids": [7, 8, 9], "rejected_ids": [11, 12], "_cut": True}
    assert cut_row({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]}, lim)["_cut"] is False


def test_data_max_length_caps_prompt_plus_answer():
    lim = Limits(prompt=512, completion=512, total=256)
    assert lim.fit(20, 300, 10) == (20, 236, 10)      # the answer gives way
    assert lim.fit(300, 20, 5) == (236, 20, 5)        # a long prompt keeps what the answers leave
    p, c, r = lim.fit(300, 300, 300)                  # both long: the prompt keeps half
    assert (p, c, r) == (128, 128, 128) and p + c <= 256


def test_tokenize_pair_splits_like_trl(bundled_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundled_model_dir)
    p, c, r = tokenize_pair(tok, PAIR)
    assert tok.decode(p).endswith("<|im_start|>assistant\n")
    assert tok.decode(c).startswith("Sure! 2 plus 3 is 5.") and "<|im_end|>" in tok.decode(c)
    assert tok.decode(r).startswith("Hmm,")


def test_preference_lengths_reports_counts_and_cuts(bundled_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundled_model_dir)
    line = preference_lengths(make_spec(max_completion_length=8), tok, [PAIR, {**PAIR, "where": "pairs.jsonl:2"}])
    assert line.startswith("preference pairs: 2;")
    assert "over dpo.max_completion_length 8: 2 chosen, 2 rejected" in line
    assert "pairs cut to fit (incl. data.max_length 300): 2 (e.g. pairs.jsonl:1, pairs.jsonl:2)" in line
    assert "0 prompts" in preference_lengths(make_spec(), tok, [PAIR])


def test_the_installed_trl_is_one_dpo_supports():
    from importlib.metadata import version

    assert check_trl() == version("trl")


@pytest.mark.parametrize("installed", ["1.14.1", "1.0.0", "1.17.0", "2.0.0", "not-a-version"])
def test_a_trl_outside_the_range_stops_dpo_with_the_fix(installed):
    with pytest.raises(TrlVersionError) as err:
        check_trl(installed)
    assert err.value.exit_code == 2  # bad environment, told like bad input: problem and fix, no traceback
    assert f"trl {installed}" in str(err.value) and TRL_RANGE in str(err.value)
    assert err.value.hint == f'pip install "trl{TRL_RANGE}"'


def test_a_dpo_run_with_an_unsupported_trl_stops_before_its_run_folder(tmp_path, monkeypatch):
    """A TRL 1.10 found first on sys.path (its metadata, as pip leaves it) stops the run before data, folder
    or model are touched."""
    from wizard.engine.runner import train

    site = tmp_path / "site"
    (site / "trl-1.10.0.dist-info").mkdir(parents=True)
    (site / "trl-1.10.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: trl\nVersion: 1.10.0\n")
    monkeypatch.syspath_prepend(str(site))
    spec = make_spec().model_copy(update={"output_dir": str(tmp_path / "runs")})
    with pytest.raises(TrlVersionError, match="this environment has trl 1.10.0"):
        train(spec)
    assert not (tmp_path / "runs").exists()


def test_pyproject_pins_trl_to_the_range_dpo_checks():
    """The range the package installs and the range a DPO run accepts are one fact: keep them equal."""
    import re
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.M | re.S).group(1)
    trl = [Requirement(d) for d in re.findall(r'"([^"]+)"', deps) if Requirement(d).name == "trl"]
    assert len(trl) == 1 and trl[0].specifier == SpecifierSet(TRL_RANGE)
