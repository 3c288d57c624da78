"""tune-wizard estimate SPEC: peak GPU memory of the spec's training step, broken down, beside full / LoRA /
QLoRA for the same settings, and a verdict against this GPU (or --gpu-memory, or CPU RAM) with what to
change. It downloads no weights. Exit 0 whether or not it fits: it is information."""
from __future__ import annotations

import json

from wizard.hardware import gib_argument


def add_arguments(p) -> None:
    p.add_argument("spec", help="run spec (YAML)")
    p.add_argument("--gpu-memory", type=gib_argument, metavar="GB",
                   help="judge against a GPU with this much free memory (GiB) instead of this machine's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set data.max_length=1024")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--gpus", type=int, metavar="N",
                   help="also show the figure per GPU on N GPUs, with DDP and with FSDP (default: the spec's "
                        "distributed.gpus)")


def _hardware(gpu_memory):
    from wizard import hardware

    if gpu_memory is not None:
        gpu = hardware.GpuInfo(index=0, name="--gpu-memory", total_gb=gpu_memory, free_gb=gpu_memory, bf16=True,
                               compute_capability=(8, 0))
        return hardware.Hardware(gpus=[gpu], cpu_count=0, ram_total_gb=0.0, ram_available_gb=0.0, cpu_bf16=False,
                                 cuda_available=True)
    try:
        return hardware.detect()
    except Exception:  # noqa: BLE001 - no probe: judge against nothing, still print the estimate
        return None


def run(args) -> int:
    from wizard import spec as specmod
    from wizard.estimate import available_memory, estimate_for_spec, method_table, verdict
    from wizard.estimate.memory import part_rows

    spec = specmod.load(args.spec, args.overrides)
    hw = _hardware(args.gpu_memory)
    b = estimate_for_spec(spec, hw)
    avail, where = available_memory(hw) if hw is not None else (None, "unknown")
    fits, advice = verdict(b, avail) if avail else (None, [])
    keep = ("precision", "lora_r", "target_modules", "max_length", "batch_size", "grad_ckpt", "optimizer",
            "lora_dropout", "device", "task", "packed")
    rows = method_table(b.shape, available_gb=avail, **{k: v for k, v in b.inputs.items() if k in keep})
    several = _per_gpu(spec, hw, b, args.gpus)
    if args.json:
        print(json.dumps({"spec": str(args.spec), "model": spec.model.id, "estimate": b.to_dict(), "methods": rows,
                          "available_gb": avail, "against": where, "fits": fits, "advice": advice,
                          **({"gpus": several} if several else {})}, indent=2))
        return 0

    from rich.table import Table

    from wizard.ui import make_console

    console = make_console()
    inp = b.inputs
    pass_ = (f"{inp['max_length']:,} tokens per forward pass (whole rows end to end)" if inp.get("packed")
             else f"{inp['max_length']} tokens x batch {inp['batch_size']}")
    console.print(f"{args.spec}: {spec.model.id} ({b.params / 1e9:.2f}B parameters), {inp['method']} "
                  f"{inp['precision']}, {pass_}, gradient checkpointing {'on' if inp['grad_ckpt'] else 'off'}"
                  + (f" ({inp['grad_ckpt_reason']})" if inp.get("grad_ckpt_reason") else ""))
    if inp.get("packed"):
        # What batching by tokens comes to on this machine, and why (wizard.estimate.batching).
        console.print(f"batching tokens: {inp['batch_tokens']:,} tokens per pass, {inp['grad_accum']} passes per "
                      f"update (~{inp['batch_tokens'] * inp['grad_accum']:,} tokens): {inp['batching_why']}. "
                      "A run fits it again to its GPU when it starts, and to the data: a small dataset keeps "
                      "20 updates an epoch.")
    t = Table(title=f"memory at the peak ({b.peak}), GiB")
    t.add_column("part")
    t.add_column("GiB", justify="right")
    for label, gb in part_rows(b, inp["device"]):
        t.add_row(label, f"{gb:.2f}")
    t.add_row("[bold]total[/bold]", f"[bold]{b.total_gb:.2f}[/bold]")
    console.print(t)

    m = Table(title="the same settings by method, GiB",
              caption="train: adapters (or weights), gradients, optimizer states; other: temporaries, overhead")
    for col in ("method", "weights", "train", "activations", "logits", "other", "total", "fits"):
        m.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        train = r["lora"] + r["gradients"] + r["optimizer"]
        other = r["transient"] + r["overhead"]
        ok = "-" if "fits" not in r else ("yes" if r["fits"] else "no")
        m.add_row(r["method"] + (" *" if r["method"] == inp["method"] else ""), f"{r['weights']:.2f}",
                  f"{train:.2f}", f"{r['activations']:.2f}", f"{r['logits']:.2f}", f"{other:.2f}",
                  f"{r['total']:.2f}", ok)
    console.print(m)
    if avail is None:
        console.print("verdict: no GPU or RAM figure to judge against; pass --gpu-memory GB")
    elif fits:
        console.print(f"verdict: fits in {avail:.1f} GiB of {where} ({b.total_gb:.1f} GiB estimated)")
    else:
        console.print(f"verdict: does NOT fit in {avail:.1f} GiB of {where} ({b.total_gb:.1f} GiB estimated)")
    for line in advice:
        console.print(f"  - {line}")
    for note in b.notes:
        console.print(f"note: {note}")
    if several:
        n = several["gpus"]
        console.print(f"on {n} GPUs: ddp {several['ddp_gb']:.1f} GiB per GPU (a whole copy each, and the gradients' all-reduce buckets), fsdp "
                      f"{several['fsdp_gb']:.1f} GiB per GPU (split); {several['strategy']}: {several['why']}")
        if several.get("update_tokens"):
            console.print(f"  an update: {several['update_tokens']:,} tokens ({several['grad_accum']} passes of "
                          f"{several['batch_tokens']:,} tokens on each of {n} GPUs)")
    return 0


def _per_gpu(spec, hw, b, gpus: int | None) -> dict | None:
    """The figure per GPU on several GPUs (the flag, or the spec's count): DDP (a copy each), FSDP (split), the
    strategy `auto` takes and the global batch (wizard.estimate.strategy, wizard.estimate.batching)."""
    from wizard.estimate import estimate_for_spec, plan_for_spec
    from wizard.estimate.strategy import choose, ddp_gb, processes

    n = gpus or processes(spec.distributed.gpus, len(getattr(hw, "gpus", None) or []))
    if n <= 1:
        return None
    strategy, why = choose(spec, hw, b.shape, n)
    split = estimate_for_spec(spec, hw, shape=b.shape, shards=n)
    out = {"gpus": n, "strategy": strategy, "why": why, "ddp_gb": round(ddp_gb(b), 2),
           "fsdp_gb": round(split.total_gb, 2)}
    if spec.task == "sft" and spec.train.batching == "tokens":
        plan = plan_for_spec(spec, hw, b.shape, processes=n, shards=n if strategy == "fsdp" else 1)
        out.update(batch_tokens=plan.batch_tokens, grad_accum=plan.grad_accum,
                   update_tokens=plan.batch_tokens * plan.grad_accum * n)
    return out
