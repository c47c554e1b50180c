#!/usr/bin/env bash
# The README's commands, run in order on what `make demo` leaves in a clone (edgeft-demo/), so
# every command the README shows is checked to work from a fresh clone. Run from the clone's
# root after `make demo`; it writes into walkthrough/ and prints each command before its output.
# A box's paths (/srv/models) and your own data (parts/, tickets.csv) become folders under
# walkthrough/ and the built-in datasets. RUN names the demo's run folder: `make demo` leaves
# edgeft-demo/run-full; after `edgeft demo --quick`, RUN=edgeft-demo/run-feature-extraction.
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH" COLUMNS=110
W=walkthrough
RUN=${RUN:-edgeft-demo/run-full}
rm -rf "$W" && mkdir -p "$W"
CELL="$HOME/.local/share/edgeft/datasets/elpv/test/defective/cell0007.png"
run() { printf '\n$ %s\n' "$*"; "$@"; }

run edgeft data inspect elpv
run edgeft export "$RUN" --out "$W/elpv"
run edgeft predict "$W/elpv" "$CELL" --top-k 2 --engine openvino
run edgeft quantize "$W/elpv" --out "$W/elpv-int8" --target x86-avx2-no-vnni,x86-avx512-vnni
run edgeft eval "$W/elpv-int8" --split test
run edgeft validate "$W/elpv-int8"
run edgeft targets
run edgeft bench "$W/elpv-int8" --batch 1,8 --duration 5 --out "$W/run.json" --db "$W/bench.sqlite"
run edgeft results --db "$W/bench.sqlite" --csv "$W/all-runs.csv"
run edgeft report --db "$W/bench.sqlite" --out "$W/report.html" --screenshot "$W/report.png"
run edgeft repo push "$W/elpv-int8" "$W/models" --name elpv
run edgeft repo push edgeft-demo/bundle "$W/models" --name elpv
run edgeft repo promote "$W/models" elpv 1
run edgeft repo promote "$W/models" elpv 2
run edgeft repo rollback "$W/models" elpv
run edgeft repo list "$W/models"

printf '\n$ edgeft serve %s --log %s &\n' "$W/models" "$W/predictions.sqlite"
edgeft serve "$W/models" --log "$W/predictions.sqlite" --port 8011 > "$W/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf localhost:8011/v2/health/ready > /dev/null && break; sleep 1; done
head -2 "$W/serve.log"
for cell in "$HOME"/.local/share/edgeft/datasets/elpv/test/*/cell00[0-4]*.png; do
    curl -sf -F "file=@$cell" localhost:8011/v1/predict > "$W/last.json"
done
printf '\n$ curl -F file=@.../cell0049.png localhost:8011/v1/predict\n'
cat "$W/last.json"
id=$(python3 -c "import json,sys; print(json.load(open('$W/last.json'))['predictions'][0]['id'])")
run curl -s -X POST localhost:8011/v1/feedback -d "{\"id\": \"$id\", \"label\": \"defective\"}"
kill $server && wait $server 2>/dev/null || true
run edgeft monitor "$W/predictions.sqlite" --repo "$W/models" --window 1h --html "$W/monitor.html" || echo "(exit code $?)"
run edgeft monitor "$W/predictions.sqlite" --repo "$W/models" --export-uncertain 10 --out "$W/to-label" || echo "(exit code $?)"
