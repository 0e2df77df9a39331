#!/usr/bin/env bash
# The real-pool CPU ablation (issue 13): the exact commands behind ablation.json, leaderboard.md and
# leaderboard.png in this folder. Run from the repository root with ../shared/data beside it:
#   bash train_small/eval/results/real/run.sh [OUT]        (OUT defaults to runs/real_ablation)
#
# Pool: the real crawl samples of ../shared/data/corpora (C4, Dolma CC, Pile, RedPajama C4 + CC 2023-06,
# the WARC pages incl. ClueWeb's), through the native readers and HTML extraction.
# Reference domains (held out, never trained on and never seen by the quality classifier): books
# (bookcorpusopen), Wikipedia (WikiText-103 test), OpenWebText, arXiv (RedPajama's process_sci_data
# sample), StackExchange (RedPajama's data_mixture sample).
# Quality classifier, as filters/quality/README.md recommends: positives are *other* reference text
# (PG-19 books, WikiText-103 train, RedPajama's arXiv sample and StackExchange code sample, in
# 100-word training chunks, classes balanced), negatives the raw pool itself (DCLM's negatives were a
# sample of the pool it filtered).
set -euo pipefail
OUT=${1:-runs/real_ablation}
D=../shared/data/corpora
PY=${PYTHON:-python}
POOL=(-i "$D/c4/*.json.gz" -i "$D/dolma/cc_en_head-*.jsonl.gz" -i "$D/dolma/provided/documents/000.json.gz@dolma"
      -i "$D/pile/*.jsonl.zst" -i "$D/redpajama/data_mixture__redpajama-c4-refined.jsonl@redpajama"
      -i "$D/redpajama/data_mixture__redpajama-cc-2023-06-refined.jsonl@redpajama"
      -i "$D/warc/*.warc.gz" -i "$D/edge/resiliparse_clueweb-quirk.warc.gz")
REFS=(--heldout-ref "books=$D/text/bookcorpusopen" --heldout-ref "wikipedia=$D/text/wikitext-103-raw/wiki.test.raw"
      --heldout-ref "openwebtext=$D/text/openwebtext"
      --heldout-ref "arxiv=$D/redpajama/process_sci_data__arxiv.jsonl"
      --heldout-ref "stackexchange=$D/redpajama/data_mixture__redpajama-pile-stackexchange-refined.jsonl")
mkdir -p "$OUT"

# 1. the raw pool as text (the classifier's negatives)
$PY pipelines/baseline.py -o "$OUT/pool_raw" "${POOL[@]}" --blocks '' --no-tokens --no-progress --executor local

# 2. the quality classifier
$PY -m filters.quality train --out "$OUT/quality/reference_vs_pool.bin" --chunk-words 100 --balance \
    --positives "$D/text/pg19" "$D/text/wikitext-103-raw/wiki.train.raw" "$D/redpajama/arxiv_sample.jsonl" \
                "$D/redpajama/process_code_data__stack_exchange.jsonl" \
    --negatives "$OUT/pool_raw/data"

# 3. the ablation: 4 mixes x 3 seeds x 2 proxy families, ranked by the reference domains' bits per byte
$PY pipelines/ablate.py -o "$OUT/ablation" "${POOL[@]}" "${REFS[@]}" \
    --mixes raw,heuristics,heuristics+dedup,baseline --quality-model "$OUT/quality/reference_vs_pool.bin" \
    --quality-top-fraction 0.3 --recipe tiny --total-tokens 100000 --vocab-size 4096 --seeds 3 \
    --archs openelm,mobilellm \
    --heldout-fraction 0.05 --workers 2 --no-progress

cp "$OUT/ablation/ablation.json" "$OUT/ablation/leaderboard.md" "$OUT/ablation/leaderboard.png" \
   train_small/eval/results/real/
