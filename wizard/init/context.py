"""What the wizard knows about this machine, and the estimate-backed advice its defaults come from.

Every call into wizard.hardware / wizard.estimate / wizard.data goes through here and is guarded: a probe
that fails (no NVML, no network, an odd config) must cost the user advice, never the wizard itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard import hubs
from wizard.catalog import CatalogModel, load_catalog, lookup
from wizard.spec import fields

# The GPU default: the model the QLoRA recipe and ms-swift's examples are measured on, then smaller ones.
PREFERRED = ("qwen2.5-7b-instruct", "qwen2.5-3b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-0.5b-instruct")


@dataclass
class Preview:
    """What a local dataset file looks like, for the user to confirm before it goes into the spec."""

    format: str
    rows: int
    first: list  # [(role, text), ...] rendered as a chat
    notes: list = field(default_factory=list)
    mean_chars: float | None = None  # characters of text per row (the first 1,000 rows)


@dataclass
class Context:
    hardware: Any = None
    hubs: dict = field(default_factory=lambda: {"huggingface": False, "modelscope": False})
    hubs_checked: bool = False
    cwd: Path = field(default_factory=Path.cwd)
    preset: dict = field(default_factory=dict)  # the answers file
    out: Path | None = None                  # --out
    no_start: bool = False
    previous: dict = field(default_factory=dict)  # a previous run's answers (wizard.init.saved): the defaults
    previous_file: Path | None = None
    notes: list = field(default_factory=list)   # what could not be checked, shown in the welcome panel
    _cache: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ probing
    @classmethod
    def probe(cls, **kw) -> Context:
        ctx = cls(**kw)
        try:
            from wizard import hardware

            ctx.hardware = hardware.detect(ctx.cwd)
        except Exception as exc:  # noqa: BLE001 - a broken probe must not stop the wizard
            ctx.notes.append(f"hardware not detected ({type(exc).__name__}: {exc})")
        if hubs.env_on("TUNE_WIZARD_OFFLINE"):
            ctx.notes.append("TUNE_WIZARD_OFFLINE is set: hubs not asked")
            return ctx
        try:
            ctx.hubs = hubs.reachable(timeout=3)  # False for a hub an offline flag (HF_HUB_OFFLINE) closes
            ctx.hubs_checked = True
        except Exception as exc:  # noqa: BLE001
            ctx.notes.append(f"hubs not checked ({type(exc).__name__})")
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
            from wizard.hardware import pick_precision

            return {"device": "cuda", "precision": pick_precision("auto", True, getattr(self.gpus[0], "bf16", True))}
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

    def fits(self, model_id: str, method: str, max_length: int | None = None, batch_size: int = 1,
             grad_ckpt: bool = True) -> bool | None:
        """Whether `method` fits this machine's memory (by default at a modest setting: the spec's max_length,
        one row, checkpointing); None when unknown."""
        max_length = max_length or fields.default("data.max_length")
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
        fits = {m: self.fits(model_id, m) for m in fields.choices("method")}
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
        if hubs.env_on("TUNE_WIZARD_OFFLINE"):
            return False
        ok = hubs.answers("huggingface", timeout=5, url=url)
        self.hubs["huggingface"] = ok
        self._cache = {k: v for k, v in self._cache.items() if k[0] != "hub_has"}
        return ok

    def hub_has_model(self, hub: str, repo_id: str, kind: str = "model") -> bool | None:
        """True/False when the hub answered; None when it could not be asked. kind: model or dataset."""
        key = ("hub_has", hub, repo_id, kind)
        if key not in self._cache:
            self._cache[key] = self._ask_hub(hub, repo_id, kind)
        return self._cache[key]

    def _ask_hub(self, hub: str, repo_id: str, kind: str = "model") -> bool | None:
        if not self.hubs.get(hub):
            return None
        return hubs.exists(hub, repo_id, kind, timeout=5)

    # ------------------------------------------------------------------ advice
    def recommend(self, model_id: str, task: str, method: str | None = None) -> dict:
        """wizard.estimate.recommend() for this model on this machine (with `method`: fitted to that method)."""
        key = ("rec", model_id, task, method)
        if key not in self._cache:
            from wizard.estimate import recommend

            try:
                rec = recommend(self.shape(model_id), self.hardware, task, method=method)
            except Exception as exc:  # noqa: BLE001 - an odd shape: advice without a measurement
                rec = recommend(None, self.hardware, task, method=method)
                rec["reason"] = f"estimate unavailable ({type(exc).__name__}); {rec['reason']}"
            self._cache[key] = rec
        return self._cache[key]

    def settings_for(self, model_id: str, task: str, method: str, dataset: str = "") -> dict:
        """Recommended spec values, by dotted path, for the method the user chose (it may differ from the
        recommended one); "reason" says where they come from. Fields it leaves out keep the spec's default."""
        if model_id == self.demo_alias() and task == "sft" and method != "full" and dataset == "bundled:mix":
            if ("demo",) not in self._cache:  # asked for each default: the recipe file is read once
                self._cache[("demo",)] = demo_recipe_settings()
            if self._cache[("demo",)]:
                return dict(self._cache[("demo",)])
        rec = self.recommend(model_id, task, method)
        out = {"data.max_length": rec["max_length"], "train.lr": rec["lr"], "reason": rec["reason"]}
        if rec["batching"] == "tokens":
            # The run fits the budget, accumulation and checkpointing to its GPU and data when it starts;
            # the wizard shows what that comes to here (recommend's batch_tokens and grad_accum).
            out.update({"train.batching": "tokens", "train.batch_tokens": "auto", "train.grad_accum": "auto",
                        "train.gradient_checkpointing": "auto"})
        else:
            out.update({"train.batching": "rows", "train.batch_size": rec["batch_size"],
                        "train.grad_accum": rec["grad_accum"],
                        "train.gradient_checkpointing": "on" if rec["gradient_checkpointing"] else "off"})
        return out

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
    """The bundled demo's measured settings (recipes/demo.yaml), by dotted spec path.

    Generic advice (r 8 on q/v, lr 2e-4, 3 epochs) does not teach a 135M model its new name in minutes on
    a CPU; the demo recipe was tuned and timed to, so the demo model with the demo data gets its values.
    """
    try:
        from wizard.catalog import recipes_dir
        from wizard.spec import load

        spec = load(recipes_dir() / "demo.yaml")
    except Exception:  # noqa: BLE001 - no recipe: the generic advice stands
        return None
    out = dict(_flatten(spec.to_dict()))
    out["reason"] = "the bundled demo's measured settings (recipes/demo.yaml): the new name is learnt in minutes"
    return out


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):  # a section (lora, train, ...); no field of a section holds a mapping
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield prefix + k, v


def _preview(path: str, task: str) -> Preview:
    from wizard.data.load import load_examples
    from wizard.spec import DataSpec

    train, evals, report = load_examples(DataSpec(train=[str(path)]), task, 42)
    fmt = ", ".join(s.format for s in report.sources) or "?"
    first = _as_chat(train[0]) if train else []
    sizes = [sum(len(text) for _, text in _as_chat(ex)) for ex in train[:1000]]
    return Preview(format=fmt, rows=len(train) + len(evals), first=first, notes=list(report.warnings)[:3],
                   mean_chars=sum(sizes) / len(sizes) if sizes else None)


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
