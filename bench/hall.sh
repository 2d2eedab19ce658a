#!/usr/bin/env bash
# The lecture-hall acceptance runs of BENCHMARKS.md, one after the other on a quiet machine.
# Usage: bench/hall.sh OUTDIR [scenario ...]
#   scenarios: warm walk walk-hall walk-cluster lecture lecture-fresh lecture-hall upload train cluster
# Each writes OUTDIR/<scenario>.json and its table to OUTDIR/<scenario>.txt. The hall's own server
# (deploy/hall.py, `make hall`) serves upload, train, lecture-hall and walk-hall; walk, lecture and
# lecture-fresh measure a plain `streamlit run app.py`.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:?output folder}; shift
mkdir -p "$OUT"
SCEN=${*:-warm walk lecture upload train cluster}
C="$PY bench/classroom.py"
for s in $SCEN; do
  echo "=== $s $(date +%T)"
  case $s in
    warm)    $C --app app.py --students 1 --scenario walk --warm 1 --baseline --json "$OUT/$s.json" ;;
    walk)    $C --app app.py --students 100 --ramp 10 --scenario walk --query sample=shapes-star.png \
                --baseline --timeout 900 --json "$OUT/$s.json" ;;
    walk-hall) $C --app deploy/hall.py --students 100 --ramp 10 --scenario walk --query sample=shapes-star.png \
                --baseline --timeout 900 --json "$OUT/$s.json" ;;
    walk-cluster) $PY bench/cluster_class.py --walk --students 100 --json "$OUT/$s.json" ;;
    lecture) $C --app app.py --students 100 --ramp 10 --scenario lecture --pause-min 10 --pause-max 20 \
                --query sample=shapes-star.png --lecturer --timeout 900 --json "$OUT/$s.json" ;;
    lecture-fresh) $C --app app.py --students 100 --ramp 10 --scenario lecture --pause-min 10 --pause-max 20 \
                --query sample=shapes-star.png --timeout 900 --json "$OUT/$s.json" ;;
    lecture-hall) $C --app deploy/hall.py --students 100 --ramp 10 --scenario lecture --pause-min 10 --pause-max 20 \
                --query sample=shapes-star.png --timeout 900 --json "$OUT/$s.json" ;;
    upload)  $C --app deploy/hall.py --students 100 --ramp 10 --scenario upload --model random:vit_base_patch16_224 \
                --second-class --timeout 900 --json "$OUT/$s.json" ;;
    train)   $C --app deploy/hall.py --students 20 --ramp 10 --scenario train --train-watch 40 --timeout 600 \
                --others 30 --pause-min 1 --pause-max 3 --query sample=shapes-star.png --warm 1 \
                --json "$OUT/$s.json" ;;
    cluster) $PY bench/cluster_class.py --students 100 --json "$OUT/$s.json" ;;
  esac > "$OUT/$s.txt" 2>&1
  tail -25 "$OUT/$s.txt"
done
