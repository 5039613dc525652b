"""`evo report` at TinyLlama's size: 22 layers x 32 heads (704 heads), 50 sentences.

Builds a random Llama-shaped model from a config (gemma's tokenizer, from the converted
default model in the cache), captures it on 50 sentences of the built-in corpus, runs a
short offline search, then times the report, and opens index.html in headless Chromium
(when installed) to time its load. Prints each figure beside the budget the issue set.

    python bench/report.py [--sentences 50] [--programs 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))


def random_tinyllama(out: pathlib.Path) -> pathlib.Path:
    """Returns a directory holding a random 22 x 32-head Llama model with gemma's tokenizer."""
    import torch
    import transformers as T

    from evo import models
    tok = T.AutoTokenizer.from_pretrained(models._gemma_dir())  # the default model's tokenizer, converted once
    config = T.LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, head_dim=8, max_position_embeddings=256,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def phases(run_dir: pathlib.Path, out: pathlib.Path, workers: int) -> None:
    """Prints where the report's time goes: loading, the heads' data, the figures, the page."""
    from evo import report, results
    from evo.report import data, page
    t0 = time.perf_counter()
    res = results.load(run_dir)
    t1 = time.perf_counter()
    hs = data.heads(res)
    t2 = time.perf_counter()
    (out / "figures").mkdir(parents=True)
    report._draw(hs, res.causal, out / "figures", "png", False, workers)
    t3 = time.perf_counter()
    html = page.render(res, hs, data.overview(res, hs), None, None, None)
    t4 = time.perf_counter()
    print(f"  phases: load {t1 - t0:.1f} s, heads' data {t2 - t1:.1f} s, figures {t3 - t2:.1f} s, "
          f"page {t4 - t3:.1f} s ({len(html) / 2**20:.1f} MiB of HTML)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=50)
    ap.add_argument("--programs", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from evo import cli, corpus
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        model_dir = random_tinyllama(work / "tinyllama")
        text = corpus.load(None, "search").sentences[: args.sentences]
        (work / "corpus.txt").write_text("\n".join(text) + "\n")
        t = time.perf_counter()
        assert cli.main(["search", "--model", str(model_dir), "--corpus", str(work / "corpus.txt"),
                         "--run-dir", str(work / "run"), "--max-programs", str(args.programs),
                         "--workers", str(args.workers), "--seed", "1"]) == 0
        print(f"capture + search of {args.programs} programs: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        assert cli.main(["report", str(work / "run"), "--out", str(work / "report"),
                         "--workers", str(args.workers)]) == 0
        took = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (work / "report").rglob("*")) / 2**20
        print(f"report of 704 heads: {took:.1f} s (budget 120 s), {size:.1f} MiB in the folder")
        phases(work / "run", work / "phases", args.workers)
        try:
            from browser import page
            with page() as (pg, errors):
                t = time.perf_counter()
                pg.goto((work / "report" / "index.html").as_uri())
                pg.wait_for_load_state("load")
                opened = time.perf_counter() - t
                cells = pg.locator("#head-grid a.cell").count()
            print(f"index.html opens in Chromium in {opened:.2f} s (budget 3 s), {cells} grid cells, "
                  f"console errors: {len(errors)}")
        except BaseException as err:  # noqa: BLE001 - pytest.skip when Chromium is missing
            print(f"Chromium timing skipped: {err}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
