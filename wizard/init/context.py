"""What the wizard knows about this machine, and the estimate-backed advice its defaults come from.

Every call into wizard.hardware / wizard.estimate / wizard.data goes through here and is guarded: a probe
that fails (no NVML, no network, an odd config) must cost the user advice, never the wizard itself.
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.catalog import CatalogModel, load_catalog, lookup

METHODS = ("qlora", "lora", "full")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Used only where the estimate cannot say anything (an unknown model shape): the QLoRA recipe's values.
FALLBACK = {"method": "qlora", "max_length": 2048, "batch_size": 1, "grad_accum": 16,
            "gradient_checkpointing": True, "lr": 2e-4, "reason": "the QLoRA recipe's defaults"}
LR = {("sft", "qlora"): 2e-4, ("sft", "lora"): 2e-4, ("sft", "full"): 1e-5,
      ("dpo", "qlora"): 5e-5, ("dpo", "lora"): 5e-5}
TOTAL_BATCH = 16
# The GPU default: the model the QLoRA recipe and ms-swift's examples are measured on, then smaller ones.
PREFERRED = ("qwen2.5-7b-instruct", "qwen2.5-3b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-0.5b-instruct")


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Preview:
    """What a local dataset file looks like, for the user to confirm before it goes into the spec."""

    format: str
    rows: int
    first: list  # [(role, text), ...] rendered as a chat
    notes: list = field(default_factory=list)


@dataclass
class Context:
    hardware: Any = None
    hubs: dict = field(default_factory=lambda: {"huggingface": False, "modelscope": False})
    hubs_checked: bool = False
    disk_free_gb: float | None = None
    cwd: Path = field(default_factory=Path.cwd)
    preset: dict = field(default_factory=dict)  # the answers file
    out: Path | None = None                  # --out
    no_start: bool = False
    notes: list = field(default_factory=list)   # what could not be checked, shown in the welcome panel
    _cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ probing
    @classmethod
    def probe(cls, **kw) -> Context:
        ctx = cls(**kw)
        try:
            from wizard import hardware

            ctx.hardware = hardware.detect(ctx.cwd)
            ctx.disk_free_gb = getattr(ctx.hardware, "disk_free_gb", None)
        except Exception as exc:  # noqa: BLE001 - a broken probe must not stop the wizard
            ctx.notes.append(f"hardware not detected ({type(exc).__name__}: {exc})")
        if _env_on("TUNE_WIZARD_OFFLINE"):
            ctx.notes.append("TUNE_WIZARD_OFFLINE is set: hubs not asked")
            return ctx
        try:
            from wizard import hardware

            ctx.hubs = dict(hardware.hubs_reachable(timeout=3))
            ctx.hubs_checked = True
        except Exception as exc:  # noqa: BLE001
            ctx.notes.append(f"hubs not checked ({type(exc).__name__})")
        if _env_on("HF_HUB_OFFLINE"):
            ctx.hubs["huggingface"] = False
        return ctx

    @property
    def gpus(self) -> list:
        """The GPUs torch can train on (NVML may list cards a CPU build of torch cannot use)."""
        if hasattr(self.hardware, "usable_gpus"):
            return list(self.hardware.usable_gpus)
        return list(getattr(self.hardware, "gpus", None) or [])

    def memory(self) -> tuple[float | None, str]:
        """(GiB available for training, what it is): GPU 0's free memory, else the available CPU RAM."""
        from wizard.estimate import available_memory

        return available_memory(self.hardware)

    def device(self) -> dict:
        """estimate()'s device and precision for this machine, as `tune-wizard run` would pick them."""
        if self.gpus:
            return {"device": "cuda", "precision": "bf16" if getattr(self.gpus[0], "bf16", True) else "fp16"}
        return {"device": "cpu", "precision": "fp32"} if self.hardware is not None else {}

    # ------------------------------------------------------------------ models
    def demo_alias(self) -> str:
        for m in load_catalog().values():
            if m.bundled:
                return m.alias
        return next(iter(load_catalog()))

    def hub_models(self, hub: str) -> list[CatalogModel]:
        key = "hf" if hub == "huggingface" else "ms"
        return [m for m in load_catalog().values() if getattr(m, key)]

    def shape(self, model_id: str) -> dict | None:
        key = ("shape", model_id)
        remote = not lookup(model_id) and not Path(model_id).expanduser().exists()
        if remote and not any(self.hubs.values()):
            return None  # its config.json would come from a hub that is not answering: don't wait on it
        if key not in self._cache:
            try:
                from wizard.estimate import shape_for_model

                self._cache[key] = shape_for_model(model_id)
            except Exception:  # noqa: BLE001 - unknown model: no estimate, generic defaults
                self._cache[key] = None
        return self._cache[key]

    def _context_len(self, model_id: str) -> int:
        entry = lookup(model_id)
        return entry.context if entry else 4096

    def fits(self, model_id: str, method: str, max_length: int = 2048, batch_size: int = 1,
             grad_ckpt: bool = True) -> bool | None:
        """Whether `method` fits this machine's memory (by default at a modest setting); None when unknown."""
        key = ("fits", model_id, method, max_length, batch_size, grad_ckpt)
        if key in self._cache:
            return self._cache[key]
        avail, _ = self.memory()
        shape = self.shape(model_id)
        result = None
        if shape and avail:
            try:
                from wizard.estimate import estimate, verdict

                b = estimate(shape, method=method, max_length=min(max_length, self._context_len(model_id)),
                             batch_size=batch_size, grad_ckpt=grad_ckpt, **self.device())
                result = bool(verdict(b, avail)[0])
            except Exception:  # noqa: BLE001
                result = None
        self._cache[key] = result
        return result

    def fit_marks(self, model_id: str) -> str:
        """e.g. "✓ qlora ✓ lora ✗ full"; empty when this machine's memory is unknown."""
        fits = {m: self.fits(model_id, m) for m in METHODS}
        if all(v is None for v in fits.values()):
            return ""
        return " ".join(f"{'?' if ok is None else ('✓' if ok else '✗')} {m}" for m, ok in fits.items())

    def default_model(self, hub: str) -> str:
        """The demo on a CPU; on a GPU the first of PREFERRED whose QLoRA fits, else the largest that fits."""
        models = {m.alias: m for m in self.hub_models(hub)}
        if self.gpus:
            for alias in PREFERRED:
                if alias in models and self.fits(alias, "qlora"):
                    return alias
            ok = [m for m in models.values() if m.chat and m.params_b <= 8.5 and self.fits(m.alias, "qlora")]
            if ok:
                return max(ok, key=lambda m: m.params_b).alias
        demo = self.demo_alias()
        if demo in models or not models:
            return demo
        return min(models.values(), key=lambda m: m.params_b).alias

    def probe_endpoint(self, url: str) -> bool:
        """A Hugging Face mirror given in the wizard: does it answer? (The welcome probe asked huggingface.co.)"""
        if _env_on("TUNE_WIZARD_OFFLINE"):
            return False
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/api/models?limit=1", timeout=5):
                ok = True
        except urllib.error.HTTPError:
            ok = True  # it answered, if not to this path
        except Exception:  # noqa: BLE001
            ok = False
        self.hubs["huggingface"] = ok
        self._cache = {k: v for k, v in self._cache.items() if k[0] != "hub_has"}
        return ok

    def hub_has_model(self, hub: str, repo_id: str) -> bool | None:
        """True/False when the hub answered; None when it could not be asked."""
        key = ("hub_has", hub, repo_id)
        if key not in self._cache:
            self._cache[key] = self._ask_hub(hub, repo_id)
        return self._cache[key]

    def _ask_hub(self, hub: str, repo_id: str) -> bool | None:
        if not self.hubs.get(hub):
            return None
        if hub == "huggingface":
            base = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            url = f"{base}/api/models/{repo_id}"
        else:
            url = f"https://www.modelscope.cn/api/v1/models/{repo_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if hub == "modelscope":
                    body = json.loads(resp.read().decode("utf-8", "replace") or "{}")
                    return bool(body.get("Success", body.get("Code") == 200))
                return True
        except urllib.error.HTTPError as exc:
            # Hugging Face answers 401 for a repository that does not exist (or is private).
            return False if exc.code in (401, 404) else None
        except Exception:  # noqa: BLE001 - timeouts, DNS, proxies: unknown
            return None

    # ------------------------------------------------------------------ advice
    def recommend(self, model_id: str, task: str) -> dict:
        key = ("rec", model_id, task)
        if key not in self._cache:
            rec = dict(FALLBACK)
            shape = self.shape(model_id)
            if shape is not None:
                try:
                    from wizard.estimate import recommend

                    got = recommend(shape, self.hardware, task)
                    rec.update({k: v for k, v in dict(got).items() if v is not None})
                except Exception as exc:  # noqa: BLE001
                    rec["reason"] = f"estimate unavailable ({type(exc).__name__}); the QLoRA recipe's defaults"
            if task == "dpo" and rec["method"] == "full":
                rec["method"] = "lora"  # DPO needs an adapter: the reference model is the base with it off
            self._cache[key] = rec
        return self._cache[key]

    def settings_for(self, model_id: str, task: str, method: str, dataset: str = "") -> dict:
        """Recommended hyperparameters for the method the user chose (it may differ from the recommended one)."""
        if model_id == self.demo_alias() and task == "sft" and method != "full" and dataset == "bundled:mix":
            demo = demo_recipe_settings()
            if demo:
                return demo
        rec = dict(self.recommend(model_id, task))
        if method != rec["method"]:
            rec["lr"] = LR.get((task, method), rec["lr"])
            length, batch, ckpt = int(rec["max_length"]), int(rec["batch_size"]), bool(rec["gradient_checkpointing"])
            if self.fits(model_id, method, length, batch, ckpt) is False:
                # The chosen method needs more than the recommended one: checkpointing, one row, shorter rows.
                ckpt, batch = True, 1
                while length > 256 and self.fits(model_id, method, length, 1, True) is False:
                    length //= 2
            rec.update(method=method, max_length=length, batch_size=batch, gradient_checkpointing=ckpt)
        rec["grad_accum"] = max(1, round(TOTAL_BATCH / max(1, int(rec["batch_size"]))))
        return rec

    # ------------------------------------------------------------------ data
    def preview(self, path: str, task: str) -> Preview:
        """Load a local dataset the way `tune-wizard run` will; raises wizard.errors.DataError if it can't."""
        key = ("preview", str(Path(path).resolve()), task)
        if key not in self._cache:
            self._cache[key] = _preview(path, task)
        return self._cache[key]

    def bundled_data(self) -> dict[str, Path]:
        from wizard.catalog import recipes_dir

        d = recipes_dir() / "data"
        # Held-out files are for checking a trained model, not for training it.
        return {p.stem: p for p in sorted(d.glob("*.jsonl")) if "heldout" not in p.stem} if d.is_dir() else {}


def demo_recipe_settings() -> dict | None:
    """The bundled demo's measured settings (recipes/demo.yaml), as wizard answers.

    Generic advice (r 8 on q/v, lr 2e-4, 3 epochs) does not teach a 135M model its new name in minutes on
    a CPU; the demo recipe was tuned and timed to, so the demo model with the demo data gets its values.
    """
    try:
        import yaml

        from wizard.catalog import recipes_dir

        raw = yaml.safe_load((recipes_dir() / "demo.yaml").read_text(encoding="utf-8"))
        lora, data, train = raw.get("lora", {}), raw.get("data", {}), raw.get("train", {})
    except Exception:  # noqa: BLE001 - no recipe: the generic advice stands
        return None
    pick = {"lora_r": lora.get("r"), "lora_alpha": lora.get("alpha"), "lora_dropout": lora.get("dropout"),
            "target_modules": lora.get("target_modules"), "max_length": data.get("max_length"),
            "eval_split": data.get("eval_split"), "packing": data.get("packing"),
            **{k: train.get(k) for k in ("lr", "epochs", "max_steps", "batch_size", "grad_accum", "warmup_ratio",
                                         "scheduler", "optimizer", "seed", "logging_steps", "save_steps",
                                         "gradient_checkpointing", "weight_decay")}}
    out = {k: v for k, v in pick.items() if v is not None}
    out["reason"] = "the bundled demo's measured settings (recipes/demo.yaml): the new name is learnt in minutes"
    return out


def _preview(path: str, task: str) -> Preview:
    from wizard.data.load import load_examples
    from wizard.spec import DataSpec

    train, evals, report = load_examples(DataSpec(train=[str(path)]), task, 42)
    fmt = ", ".join(s.format for s in report.sources) or "?"
    first = _as_chat(train[0]) if train else []
    return Preview(format=fmt, rows=len(train) + len(evals), first=first, notes=list(report.warnings)[:3])


def _as_chat(example: Any) -> list:
    """A loaded example as [(role, text)]: messages, or prompt/chosen/rejected for preference rows."""
    ex = example if isinstance(example, dict) else getattr(example, "__dict__", {})
    msgs = ex.get("messages") or ex.get("prompt")
    out = []
    if isinstance(msgs, list):
        out += [(m.get("role", "?"), str(m.get("content", ""))) for m in msgs if isinstance(m, dict)]
    elif isinstance(msgs, str):
        out.append(("user", msgs))
    for key in ("completion", "chosen", "rejected"):
        val = ex.get(key)
        if isinstance(val, list):
            out += [(f"{m.get('role', 'assistant')} ({key})" if key != "completion" else m.get("role", "assistant"),
                     str(m.get("content", ""))) for m in val if isinstance(m, dict)]
        elif isinstance(val, str):
            out.append((f"assistant ({key})" if key != "completion" else "assistant", val))
    return out
