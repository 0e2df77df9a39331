#!/usr/bin/env bash
# The real-pool CPU ablation (issues 13 and 17): the exact commands behind ablation.json, leaderboard.md and
# leaderboard.png in this folder. Run from the repository root with ../shared/data beside it:
#   bash train_small/eval/results/real/run.sh [OUT]        (OUT defaults to runs/real_ablation)
#
# Pool: the real crawl samples of ../shared/data/corpora (C4, Dolma CC, Pile, RedPajama C4 + CC 2023-06,
# the WARC pages incl. ClueWeb's), through the native readers and HTML extraction.
# Reference domains: the held-out reference parts of five English corpora read in their native formats
# (train_small/eval/corpora.py): Wikipedia, Reuters news, English Stack Exchange, the Python docs, arXiv. The
# ablation keeps only their English documents (language ID) that share no word 13-gram with the pool, and
# records what it dropped (settings.reference_checks).
# Quality classifier: positives are books (the Gutenberg training part, PG-19, BookCorpusOpen), a source no
# reference domain comes from (the ablation refuses a classifier whose positive files are a reference domain's:
# settings.classifier_check), negatives the raw pool itself (DCLM's negatives were a sample of the pool it
# filtered).
# Recipe: cpu-1m (the calibrated CPU proxy, train_small/eval/results/sensitivity/) trained on as many tokens as
# the smallest mix holds (--total-tokens smallest), so no mix is repeated; 3 seeds.
set -euo pipefail
OUT=${1:-runs/real_ablation}
D=../shared/data/corpora
PY=${PYTHON:-python}
POOL=(-i "$D/c4/*.json.gz" -i "$D/dolma/cc_en_head-*.jsonl.gz" -i "$D/dolma/provided/documents/000.json.gz@dolma"
      -i "$D/pile/*.jsonl.zst" -i "$D/redpajama/data_mixture__redpajama-c4-refined.jsonl@redpajama"
      -i "$D/redpajama/data_mixture__redpajama-cc-2023-06-refined.jsonl@redpajama"
      -i "$D/warc/*.warc.gz" -i "$D/edge/resiliparse_clueweb-quirk.warc.gz")
E=$OUT/english
REFS=(--heldout-ref "wikipedia=$E/wikipedia/reference.parquet" --heldout-ref "news=$E/news/reference.parquet"
      --heldout-ref "stackexchange=$E/stackexchange/reference.parquet"
      --heldout-ref "python_docs=$E/python_docs/reference.parquet" --heldout-ref "arxiv=$E/arxiv/reference.parquet")
mkdir -p "$OUT"

# 1. English text in its native formats, split per domain into a training part and a held-out reference part
$PY -m train_small.eval.corpora --src "$D/text" --out "$E" --reference-bytes 400000 \
    --domains wikipedia,news,stackexchange,python_docs,arxiv,books

# 2. the raw pool as text (the classifier's negatives)
$PY pipelines/baseline.py -o "$OUT/pool_raw" "${POOL[@]}" --blocks '' --no-tokens --no-progress --executor local

# 3. the quality classifier: books against the raw pool
$PY -m filters.quality train --out "$OUT/quality/books_vs_pool.bin" --chunk-words 100 --balance \
    --positives "$E/books/train.parquet" "$D/text/pg19" "$D/text/bookcorpusopen" \
    --negatives "$OUT/pool_raw/data"

# 4. the ablation: 4 mixes x 3 seeds, scored on the reference domains (bits per byte, n-gram floor, intervals)
$PY pipelines/ablate.py -o "$OUT/ablation" "${POOL[@]}" "${REFS[@]}" \
    --mixes raw,heuristics,heuristics+dedup,baseline --quality-model "$OUT/quality/books_vs_pool.bin" \
    --quality-top-fraction 0.3 --recipe cpu-1m --total-tokens smallest --vocab-size 4096 --seeds 3 \
    --eval-dir ../shared/data/eval --tasks cpu --max-examples 300 --num-fewshot 0 \
    --heldout-fraction 0.05 --workers 2 --no-progress

cp "$OUT/ablation/ablation.json" "$OUT/ablation/leaderboard.md" "$OUT/ablation/leaderboard.png" \
   train_small/eval/results/real/
