"""RL rollout engines: one training step's rollout on hf (the trainer's model) vs vLLM (synced engine).

The real rollouts of `ponder train` (`SGRPORollout`, `GRPORollout`) run on the tiny reasoner for
the same prompts and seeds: with the hf engine over the trainer's model (``hf``), in a colocated
vLLM engine (``vllm``, `vllm_mode=colocate`) and on a vLLM rollout server on loopback (``server``,
`vllm_mode=server`), each synced from that model before the step (the sync is timed apart, and
counted in the step's wall time as training pays it). Decoded tokens are what the engine
generated (S-GRPO: the full path plus each exit's answer; the shared thinking is not decoded
again). Ratios are against hf.

    python bench/rl_engines.py [--prompts 8] [--group 8] [--steps 2] [--engines hf,vllm,server]
                               [--out bench/results/rl_engines.txt]   # and rl_engines.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console
from rich.table import Table

from ponder.benchmarks.arith import problems
from ponder.engines import TINY_REASONER


def decoded_tokens(out: dict) -> int:
    """Tokens the engine generated for a rollout's rows (injected tokens and re-used thinking excluded)."""
    total = 0
    for ids, mask in zip(out["completion_ids"], out.get("env_mask") or [[1] * len(c) for c in out["completion_ids"]]):
        if 0 in mask:  # an S-GRPO exit: kept thinking (decoded once, in the full path), injected cue, answer
            total += sum(mask[mask.index(0):])
        else:
            total += len(ids)
    return total


def run(args) -> dict[tuple[str, str], dict[str, float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ponder.rl.grpo import GRPORollout
    from ponder.rl.sgrpo import SGRPORollout
    tok = AutoTokenizer.from_pretrained(TINY_REASONER)
    model = AutoModelForCausalLM.from_pretrained(TINY_REASONER)
    items = problems(args.prompts * args.steps, seed=7)
    golds = {p.prompt: str(p.answer) for p in items}
    trainer = SimpleNamespace(model=model, state=SimpleNamespace(global_step=0),
                              args=SimpleNamespace(num_generations=args.group, temperature=0.7,
                                                   max_completion_length=400))
    policies, server = {}, None
    results = {}
    try:
        for engine in args.engines:
            start = time.perf_counter()
            if engine == "vllm":
                from ponder.rl.weight_sync import VLLMPolicy

                policies[engine] = VLLMPolicy(TINY_REASONER, tok, dtype="float32", max_model_len=512)
            elif engine == "server":
                from ponder.rl.rollout_server import ServerPolicy, rollout_server

                server = rollout_server(TINY_REASONER, "float32").start()
                policies[engine] = ServerPolicy(server.base_url, TINY_REASONER, tok)
            if engine != "hf":
                print(f"{engine} engine started in {time.perf_counter() - start:.0f}s", flush=True)
        for algo, make in (("sgrpo", lambda: SGRPORollout(tok, golds, answer_kind="integer", answer_tokens=16)),
                           ("grpo", lambda: GRPORollout(tok, golds, answer_kind="integer"))):
            for engine in args.engines:
                policy = trainer.ponder_policy = policies.get(engine)
                rollout, walls, tokens, syncs = make(), [], [], []
                for step in range(-1, args.steps):  # step -1 warms up (not measured)
                    trainer.state.global_step = max(step, 0) + 1000 * (step < 0)
                    batch = items[max(step, 0) * args.prompts:][:args.prompts]
                    prompts = [p.prompt for p in batch for _ in range(args.group)]
                    t0 = time.perf_counter()
                    out = rollout(prompts, trainer)  # vllm: on_policy syncs first (a new step)
                    if step >= 0:
                        walls.append(time.perf_counter() - t0)
                        tokens.append(decoded_tokens(out))
                        if policy is not None:
                            syncs.append(policy.sync_seconds[-1])
                results[(algo, engine)] = {"wall": statistics.mean(walls), "tokens": statistics.mean(tokens),
                                           "sync": statistics.mean(syncs) if syncs else 0.0}
                print(algo, engine, results[(algo, engine)], flush=True)
    finally:
        for policy in policies.values():
            policy.close()
        if server is not None:
            server.stop()
    return results


def table(res: dict, args) -> Table:
    t = Table(title=f"one rollout step on the tiny reasoner, {args.prompts} prompts x group {args.group}, "
                    f"T=0.7, 2 CPU cores (mean of {args.steps} steps; ratios against hf)")
    for col in ("algorithm", "engine", "decoded tokens", "tokens/s", "wall s per step", "weight sync s"):
        t.add_column(col, justify="right")
    for algo in ("sgrpo", "grpo"):
        hf = res[(algo, "hf")]
        for engine in args.engines:
            r = res[(algo, engine)]
            tps, base_tps = r["tokens"] / r["wall"], hf["tokens"] / hf["wall"]
            ratio = (lambda a, b: f" ({a / b:.2f}x)") if engine != "hf" else (lambda a, b: "")
            t.add_row(algo, engine, f"{r['tokens']:.0f}", f"{tps:.0f}{ratio(tps, base_tps)}",
                      f"{r['wall']:.2f}{ratio(r['wall'], hf['wall'])}",
                      f"{r['sync'] * 1000:.0f} ms ({r['sync'] / r['wall']:.1%} of the step)" if engine != "hf" else "-")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (S-GRPO: m + 1)")
    ap.add_argument("--steps", type=int, default=2, help="measured steps per engine and algorithm")
    ap.add_argument("--engines", default="hf,vllm,server", help="comma-separated: hf (the baseline, always run), "
                                                                "vllm (colocated), server (a vLLM rollout server)")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args()
    args.engines = ["hf", *[e for e in args.engines.split(",") if e and e != "hf"]]
    unknown = set(args.engines) - {"hf", "vllm", "server"}
    if unknown:
        ap.error(f"--engines: unknown {', '.join(sorted(unknown))} (hf, vllm, server)")
    console = Console(width=140, record=True)
    res = run(args)
    console.print(table(res, args))
    if args.out:  # the table as text, and the figures as JSON beside it (scripts/rl_report.py rl_engines)
        Path(args.out).write_text(console.export_text())
        rows = [{"algo": a, "engine": e, **v} for (a, e), v in res.items()]
        Path(args.out).with_suffix(".json").write_text(json.dumps(
            {"prompts": args.prompts, "group": args.group, "steps": args.steps, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
