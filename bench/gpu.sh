#!/usr/bin/env bash
# Every GPU check of the proxy trainer, on a bare accelerator image, in at most 9 minutes on one H100.
#
#   bash bench/gpu.sh                  # on the GPU machine, from anywhere (PYTHON=... picks the interpreter)
#   bash bench/gpu.sh --dry-run        # on any machine, no CUDA needed: everything that can be checked; exit 0 = ready
#   bash bench/gpu.sh --fetch-wheels   # on a networked machine: the wheels of bench/gpu_wheels.txt into .whl/
#   bash bench/gpu.sh --help
#
# The image it is written for: Python 3.12, torch 2.11 (CUDA 13), Triton 3.6, numpy, pyarrow, pandas, sentencepiece,
# safetensors, tokenizers, transformers, psutil, pytest, tqdm, matplotlib, pyyaml, regex, xxhash; no Ray, no network,
# no ../shared. What it needs beyond that is listed in bench/gpu_wheels.txt, fetched into .whl/ (ignored by git,
# carried with the working tree) and installed with pip --no-index into .whl/site (the image is not touched), which
# goes first on PYTHONPATH.
# Nothing here needs Ray: every step runs in-process.
#
# Steps, cheapest and most informative first; each under its own time limit (seconds, override with the variable
# shown) inside a total budget (GPU_SH_BUDGET=540: a step gets what is left, a step with < 15 s left is skipped),
# each writing its JSON when it ends, and the status of every step (command, exit status, timed out or skipped and
# why, seconds, outputs, log tail) rewritten into $RES/gpu/gpu.json after each one:
#   step          what                                                                   limit  JSON (under $RES)
#   preflight     versions, device, gcc, Python headers, libcuda, one Triton launch         30 s  gpu/preflight.json
#   wheels        install from .whl/ what the image lacks (--no-index --no-deps)             15 s  -
#   kernel_tests  the full kernel test files on CUDA, all markers: fp32 at 1e-5, real
#                 launch settings, the model's ops, V > 32,768, model parity (autocast)    150 s  gpu/kernel_tests.json
#   gpu_tests     the other train_small tests marked gpu (the trainer on CUDA)               30 s  gpu/gpu_tests.json
#   parity        bench/train.py --parity: OpenELM-270M, one step fused vs reference,
#                 bf16, flash attention forced, loss and every gradient compared             45 s  gpu/parity.json
#   sensitivity   python -m pipelines.calibrate --gpu-preset (issue 17): proxy-20m, clean vs
#                 shuffled text, on the pool prepared on a CPU machine with ../shared/data by
#                 `python pipelines/calibrate.py --gpu-preset --prepare-only` (carry
#                 runs/gpu_calibration); skipped with the reason when that folder is absent   60 s  sensitivity_gpu.json
#   train         bench/train.py --variants fused,reference: 270M tokens/s and MFU           60 s  train.gpu.json
#   kernels       bench/kernels.py --quick --no-cpu: kernels vs eager / torch.compile        50 s  kernels.gpu.json
#   compile       compile tests on CUDA (inductor, fullgraph), then                          90 s  gpu/compile_tests.json
#                 bench/train.py --variants fused+compile,reference+compile                        train_compile.gpu.json
# Limits: GPU_SH_T_<NAME>; GPU_SH_WHEELS_FILE replaces the wheel list. $RES is GPU_SH_RESULTS (default
# bench/results; the device tool returns only what is under $OUT, so there: GPU_SH_RESULTS=$OUT/results).
# GPU_SH_COMMIT names the commit when the tree has no .git.
#
# --dry-run (GPU_SH_RESULTS default runs/gpu_sh_dry): the preflight (a Triton launch under TRITON_INTERPRET=1),
# the wheel check (every line satisfied by the environment or by a wheel in .whl/, .whl/ under 64 MiB, and the
# install itself), the collection of every test the run will run, --help of every script, the parity step's code on
# CPU with a tiny model, the sensitivity module's --help and its preset's in-process path on generated text (a CPU
# proxy) when it exists, and the budget arithmetic. Exit 0 when all
# pass. Targets of the benchmarks are fixed in the scripts (bench/kernels.py, bench/train.py).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=run
case "${1:-}" in
  "") ;;
  --dry-run) MODE=dry ;;
  --fetch-wheels) MODE=fetch ;;
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown option: $1 (see bash bench/gpu.sh --help)" >&2; exit 2 ;;
esac

PY=${PYTHON:-$(command -v python3 || command -v python)}
WHEELS_FILE=${GPU_SH_WHEELS_FILE:-bench/gpu_wheels.txt}
WHL=.whl
WHL_LIMIT_MB=64
BUDGET=${GPU_SH_BUDGET:-540}
KERNEL_TESTS="tests/train_small/test_kernels.py tests/train_small/test_kernels_launch.py"
KERNEL_TESTS="$KERNEL_TESTS tests/train_small/test_fused_linear_ce.py"
COMPILE_TESTS="tests/train_small/test_kernels_compile.py"

# ------------------------------------------------------------------------------------------------ fetch
if [ "$MODE" = fetch ]; then
  mkdir -p "$WHL"
  # for the image's Python (3.12); a machine that dry-runs the script under another Python adds its version:
  # GPU_SH_WHEEL_PYTHONS="3.12 3.11"
  for pyv in ${GPU_SH_WHEEL_PYTHONS:-3.12}; do
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version "$pyv" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
      -d "$WHL" -r "$WHEELS_FILE" || exit 1
  done
  SIZE=$(du -sm "$WHL" | cut -f1)
  echo "$WHL: ${SIZE} MiB (limit ${WHL_LIMIT_MB} MiB)"; ls -1 "$WHL"
  [ "$SIZE" -lt "$WHL_LIMIT_MB" ] || { echo "too large to carry" >&2; exit 1; }
  exit 0
fi

if [ "$MODE" = dry ]; then RES=${GPU_SH_RESULTS:-runs/gpu_sh_dry}; else RES=${GPU_SH_RESULTS:-bench/results}; fi
GDIR=$RES/gpu
LOGS=$GDIR/logs
mkdir -p "$GDIR" "$LOGS"
STATUS=$GDIR/gpu.json
echo "[]" > "$STATUS.steps"
T0=$SECONDS
export GPU_SH_RESULTS=$RES GPU_SH_MODE=$MODE
# Triton's kernel cache inside the tree (ignored): shared by every step, and no dependence on a writable $HOME
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$PWD/runs/triton_cache}
# where the wheels are installed (the dry run installs into runs/, so that .whl/ carries only the wheels)
if [ "$MODE" = dry ]; then WHL_SITE=$(cd "$RES" && pwd)/whl_site; rm -rf "$WHL_SITE"; else WHL_SITE=$PWD/$WHL/site; fi
export PYTHONPATH="$WHL_SITE${PYTHONPATH:+:$PYTHONPATH}"
if [ "$MODE" = dry ]; then export TRITON_INTERPRET=1; fi

have_timeout() { command -v timeout >/dev/null 2>&1; }
export GPU_SH_STEP_CMD=""  # the current step's command line, for its record

record() {  # name status rc seconds limit reason outputs... : append one step and rewrite $STATUS atomically
  local name=$1 status=$2 rc=$3 secs=$4 limit=$5 reason=$6; shift 6
  "$PY" - "$STATUS" "$name" "$status" "$rc" "$secs" "$limit" "$reason" "$LOGS/$name.log" "$MODE" "$BUDGET" "$@" <<'EOF'
import json, os, subprocess, sys
status, name, st, rc, secs, limit, reason, log, mode, budget, *outs = sys.argv[1:]
steps = json.load(open(status + ".steps"))
tail = open(log, errors="replace").read()[-3000:] if os.path.exists(log) else ""
steps.append({"step": name, "command": os.environ.get("GPU_SH_STEP_CMD", "")[:500], "status": st, "rc": int(rc),
              "timed_out": st == "timed_out", "seconds": int(secs),
              "limit_s": int(limit), "reason": reason or None, "outputs": [o for o in outs if os.path.exists(o)],
              "missing_outputs": [o for o in outs if not os.path.exists(o)], "log": log, "log_tail": tail})
json.dump(steps, open(status + ".steps", "w"), indent=1)
commit = os.environ.get("GPU_SH_COMMIT") or subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
env = {}
pre = os.path.join(os.path.dirname(status), "preflight.json")
if os.path.exists(pre):
    p = json.load(open(pre))
    env = {k: p.get(k) for k in ("python", "torch", "torch_cuda", "triton", "device", "sm_count", "gcc")}
tmp = status + ".tmp"
json.dump({"commit": commit, "mode": mode, "budget_s": int(budget), "env": env, "steps": steps}, open(tmp, "w"),
          indent=1)
os.replace(tmp, status)
EOF
}

# run_limited NAME LIMIT CMD... : run under min(LIMIT, budget left) into $LOGS/NAME.log; sets RC, SECS, ST, LIM
# (ST=skipped, with nothing run, when less than 15 s of the budget is left)
run_limited() {
  local name=$1; LIM=$2; shift 2
  local left=$((BUDGET - (SECONDS - T0) - 5))
  RC=0; SECS=0; GPU_SH_STEP_CMD="$*"
  if [ "$left" -lt 15 ]; then
    ST=skipped; LIM=0
    echo "== $name: skipped (${left}s of the ${BUDGET}s budget left)"
    return 0
  fi
  if [ "$LIM" -gt "$left" ]; then LIM=$left; fi
  local cmd="$*"
  echo "== $name (limit ${LIM}s): ${cmd:0:160}"
  local t0=$SECONDS
  if have_timeout; then
    timeout --kill-after=5 "$LIM" "$@" > "$LOGS/$name.log" 2>&1
    RC=$?
  else  # no coreutils timeout in the image: the same limit from Python, killing the step's process group
    "$PY" -c 'import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:], start_new_session=True)
try:
    sys.exit(p.wait(timeout=float(sys.argv[1])))
except subprocess.TimeoutExpired:
    os.killpg(p.pid, 9); p.wait(); sys.exit(124)' "$LIM" "$@" > "$LOGS/$name.log" 2>&1
    RC=$?
  fi
  SECS=$((SECONDS - t0)); ST=ok
  if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then ST=timed_out; elif [ "$RC" != 0 ]; then ST=failed; fi
  echo "   $ST (rc=$RC) after ${SECS}s (log: $LOGS/$name.log)"
}

finish() {  # name outputs... : record the step run_limited just ran
  local name=$1; shift
  local reason=""
  if [ "$ST" = skipped ]; then reason="out of the time budget"; fi
  record "$name" "$ST" "$RC" "$SECS" "$LIM" "$reason" "$@"
}

step() {  # name limit "outputs" cmd...
  local name=$1 limit=$2 outputs=$3; shift 3
  run_limited "$name" "$limit" "$@"
  # shellcheck disable=SC2086
  finish "$name" $outputs
}

skip() {  # name reason outputs...
  local name=$1 reason=$2; shift 2
  GPU_SH_STEP_CMD=""
  echo "== $name: skipped ($reason)"
  record "$name" skipped 0 0 0 "$reason" "$@"
}

# pytest_summary LOG JUNIT OUT : the JUnit report as JSON; when pytest was killed before writing it, the counts
# are read from its -v progress lines (one line per finished test), so a timed-out step still says what passed
pytest_summary() {
  "$PY" - "$@" <<'EOF'
import json, os, re, sys
import xml.etree.ElementTree as ET
log, junit, dst = sys.argv[1:]
out = {"junit": junit, "tests": 0, "failures": 0, "errors": 0, "skipped": 0, "failed": [], "source": "junit"}
if os.path.exists(junit):
    root = ET.parse(junit).getroot()
    for suite in root.iter("testsuite"):
        for k in ("tests", "failures", "errors", "skipped"):
            out[k] += int(suite.get(k, 0))
    out["failed"] = [c.get("classname", "") + "::" + c.get("name", "") for c in root.iter("testcase")
                     if c.find("failure") is not None or c.find("error") is not None]
    out["passed"] = out["tests"] - out["failures"] - out["errors"] - out["skipped"]
else:
    out["source"] = "log (no JUnit report: killed by its time limit?)"
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    res = re.findall(r"(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)|(PASSED|FAILED|SKIPPED|ERROR) (tests/\S+::\S+)",
                     text)
    seen = {}
    for a, b, c, d in res:
        seen[a or d] = b or c
    out["tests"] = len(seen)
    out["passed"] = sum(v == "PASSED" for v in seen.values())
    out["failures"] = sum(v == "FAILED" for v in seen.values())
    out["errors"] = sum(v == "ERROR" for v in seen.values())
    out["skipped"] = sum(v == "SKIPPED" for v in seen.values())
    out["failed"] = sorted(k for k, v in seen.items() if v in ("FAILED", "ERROR"))
json.dump(out, open(dst, "w"), indent=1)
print(f"   {out['passed']} passed, {out['failures']} failed, {out['errors']} errors, {out['skipped']} skipped")
EOF
}

# pytest_step NAME LIMIT MARKEXPR FILES... : pytest on CUDA (4 processes when pytest-xdist is there), JSON summary
pytest_step() {
  local name=$1 limit=$2 marks=$3; shift 3
  local par=()
  if "$PY" -c "import xdist" >/dev/null 2>&1; then par=(-n "${GPU_SH_PYTEST_WORKERS:-4}"); fi
  run_limited "$name" "$limit" "$PY" -m pytest "$@" -m "$marks" -v -p no:cacheprovider "${par[@]}" \
    --junitxml="$LOGS/$name.xml"
  if [ "$ST" != skipped ]; then pytest_summary "$LOGS/$name.log" "$LOGS/$name.xml" "$GDIR/$name.json"; fi
  finish "$name" "$GDIR/$name.json"
}

# ------------------------------------------------------------------------------------------------ preflight
# writes $GDIR/preflight.json before anything else; exit 1 when the GPU path cannot run
PREFLIGHT_PY=$(cat <<'EOF'
import ctypes.util, importlib.metadata as md, json, os, platform, shutil, subprocess, sys, sysconfig, time
dst, mode = sys.argv[1:]
out, problems = {"mode": mode, "python": platform.python_version(), "executable": sys.executable}, []

def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None

image = ["torch", "triton", "numpy", "pyarrow", "pandas", "sentencepiece", "safetensors", "tokenizers", "transformers",
         "psutil", "pytest", "tqdm", "matplotlib", "PyYAML", "regex", "xxhash", "fsspec", "packaging"]
versions = {}
for name in image:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
out["packages"] = versions
gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc") or shutil.which("clang")
out["gcc"] = (run([gcc, "--version"]) or "").splitlines()[0] if gcc else None
if not gcc:
    problems.append("no C compiler (gcc/cc/clang): Triton cannot build its launcher")
inc = sysconfig.get_paths()["include"]
out["python_headers"] = inc if os.path.exists(os.path.join(inc, "Python.h")) else None
if not out["python_headers"]:
    problems.append(f"no Python.h under {inc}: Triton cannot build its launcher (python3-dev missing)")
out["timeout_binary"] = shutil.which("timeout")
try:
    import torch
    out["torch"], out["torch_cuda"] = torch.__version__, torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    if out["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        out.update(device=p.name, capability=f"{p.major}.{p.minor}", sm_count=p.multi_processor_count,
                   memory_gib=round(p.total_memory / 2**30, 1),
                   regs_per_sm=getattr(p, "regs_per_multiprocessor", None),
                   smem_per_sm=getattr(p, "shared_memory_per_multiprocessor", None))
        out["nvidia_smi"] = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                 "--format=csv,noheader"])
        out["libcuda"] = ctypes.util.find_library("cuda")
        out["flash_sdp_enabled"] = torch.backends.cuda.flash_sdp_enabled()
    elif mode == "run":
        problems.append("torch sees no CUDA device")
except Exception as e:  # noqa: BLE001
    problems.append(f"torch: {type(e).__name__}: {e}")
try:
    import triton
    import triton.language as tl
    out["triton"] = triton.__version__

    @triton.jit
    def _add_one(X, N, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(X + offs, tl.load(X + offs, mask=offs < N) + 1.0, mask=offs < N)

    dev = "cuda" if out.get("cuda_available") else "cpu"
    if dev == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        out["triton_launch"] = "not tried (no CUDA, interpreter off)"
    else:
        x = torch.zeros(1000, device=dev)
        t0 = time.perf_counter()
        _add_one[(4,)](x, 1000, BLOCK=256)
        if dev == "cuda":
            torch.cuda.synchronize()
        ok = bool((x == 1).all())
        out["triton_launch"] = {"device": dev, "ok": ok, "seconds_incl_compile": round(time.perf_counter() - t0, 2)}
        if not ok:
            problems.append("trivial Triton launch gave a wrong result")
except Exception as e:  # noqa: BLE001
    problems.append(f"Triton launch: {type(e).__name__}: {str(e)[:500]}")
out["problems"] = problems
out["ok"] = not problems
json.dump(out, open(dst, "w"), indent=1)
print(json.dumps({k: v for k, v in out.items() if k != "packages"}, indent=1))
sys.exit(0 if out["ok"] else 1)
EOF
)

# ------------------------------------------------------------------------------------------------ wheels
# install what bench/gpu_wheels.txt asks and the environment lacks (checking sizes and versions on the way)
WHEELS_PY=$(cat <<'EOF'
import glob, importlib.metadata as md, os, re, subprocess, sys
wheels_file, whl, limit_mb, site = sys.argv[1:]
try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
reqs = [Requirement(ln.split(" #")[0].strip()) for ln in open(wheels_file)
        if ln.strip() and not ln.lstrip().startswith("#")]
have: dict = {}
for p in glob.glob(os.path.join(whl, "*.whl")):
    have.setdefault(canonicalize_name(os.path.basename(p).split("-")[0]), []).append(p)
files = [p for ps in have.values() for p in ps]
size_mb = sum(os.path.getsize(p) for p in files) / 2**20
print(f"{len(reqs)} requirements; {len(files)} wheels in {whl}/ ({size_mb:.2f} MiB, limit {limit_mb} MiB)")
problems, todo = [], []
if size_mb >= float(limit_mb):
    problems.append(f"{whl}/ holds {size_mb:.1f} MiB, over the {limit_mb} MiB that travels")


def for_image(path: str) -> bool:
    """Installable on the image (CPython 3.12, Linux x86_64): pure Python, cp312 or abi3, manylinux or any."""
    _, _, py, abi, plat = os.path.basename(path)[: -len(".whl")].rsplit("-", 4)
    pys, plats = py.split("."), plat.split(".")
    return (any(p in ("py3", "cp312") for p in pys) or abi == "abi3") and \
        any(p == "any" or (p.startswith("manylinux") and p.endswith("x86_64")) for p in plats)


for r in reqs:
    name = canonicalize_name(r.name)
    try:
        v = md.version(r.name)
    except md.PackageNotFoundError:
        v = None
    if v is not None and r.specifier.contains(v, prereleases=True):
        print(f"  {r}: satisfied by the environment ({v})")
        continue
    cands = [p for p in have.get(name, []) if r.specifier.contains(os.path.basename(p).split("-")[1], prereleases=True)]
    if not cands:
        problems.append(f"{r}: not in the environment ({v}) and no matching wheel in {whl}/ "
                        "(run bash bench/gpu.sh --fetch-wheels)")
        continue
    if not any(for_image(p) for p in cands):
        problems.append(f"{r}: no wheel for the image's Python 3.12 (Linux x86_64) in {whl}/: "
                        f"{[os.path.basename(p) for p in cands]}")
        continue
    print(f"  {r}: from {whl}/ ({', '.join(os.path.basename(p) for p in cands)})")
    todo.append(str(r))
if todo and not problems:  # pip picks, among the wheels, the one this interpreter can use
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", whl,
                          "--upgrade", "--target", site, *todo], capture_output=True, text=True)
    print(res.stdout[-2000:], res.stderr[-2000:])
    if res.returncode:
        problems.append(f"pip install --no-index into {site} failed (rc {res.returncode}); a dry run under another "
                        "Python needs its wheels too: GPU_SH_WHEEL_PYTHONS='3.12 3.11' bash bench/gpu.sh "
                        "--fetch-wheels")
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
EOF
)

# ------------------------------------------------------------------------------------------------ the steps
# as files: triton.jit reads the kernel's source from its file (not from python -c or stdin)
printf '%s\n' "$PREFLIGHT_PY" > "$LOGS/preflight.py"
printf '%s\n' "$WHEELS_PY" > "$LOGS/wheels.py"
if [ "$MODE" = dry ]; then
  echo "dry run: $PY ($("$PY" --version 2>&1)), results under $RES"
  step preflight "${GPU_SH_T_PREFLIGHT:-30}" "$GDIR/preflight.json" \
    "$PY" "$LOGS/preflight.py" "$GDIR/preflight.json" dry
  step wheels "${GPU_SH_T_WHEELS:-60}" "" "$PY" "$LOGS/wheels.py" "$WHEELS_FILE" "$WHL" "$WHL_LIMIT_MB" "$WHL_SITE"
  # shellcheck disable=SC2086
  step collect 120 "" "$PY" -m pytest --collect-only -q -p no:cacheprovider -m "slow or not slow" \
    $KERNEL_TESTS $COMPILE_TESTS
  step collect_gpu_tests 120 "" "$PY" -m pytest --collect-only -q -p no:cacheprovider -m gpu tests/train_small \
    $(for f in $KERNEL_TESTS $COMPILE_TESTS; do printf -- "--ignore=%s " "$f"; done)
  step help 60 "" bash -c '"$0" bench/train.py --help >/dev/null && "$0" bench/kernels.py --help >/dev/null' "$PY"
  step parity_cpu 180 "$GDIR/parity_cpu.json" "$PY" bench/train.py --parity --device cpu --model cpu-tiny \
    --seq-len 32 --micro-batch 2 --out "$GDIR/parity_cpu.json"
  if [ -f pipelines/calibrate.py ]; then
    step sensitivity_help 60 "" "$PY" -m pipelines.calibrate --help
    # the preset's in-process path (degrade, tokens, trials, analysis) on CPU with this environment's packages
    step sensitivity_cpu 180 "" "$PY" -m pytest -q -p no:cacheprovider tests/pipelines/test_calibrate.py \
      -k gpu_preset_runs_in_process
  else
    skip sensitivity_help "pipelines/calibrate.py is not there yet (issue 17)"
  fi
  # the real run's limits against its budget (each step is also cut to what is left of the budget when it starts)
  step budget 10 "" "$PY" -c "
import os, sys
lim = {k: int(os.environ.get('GPU_SH_T_' + k, d)) for k, d in (('PREFLIGHT', 30), ('WHEELS', 15), ('KERNEL_TESTS', 150),
       ('GPU_TESTS', 30), ('PARITY', 45), ('SENSITIVITY', 60), ('TRAIN', 60), ('KERNELS', 50), ('COMPILE', 90))}
print('limits', lim, 'sum', sum(lim.values()), 's; budget', $BUDGET, 's (9 minutes: 540)')
sys.exit(0 if sum(lim.values()) <= $BUDGET <= 540 else 1)"
else
  step preflight "${GPU_SH_T_PREFLIGHT:-30}" "$GDIR/preflight.json" \
    "$PY" "$LOGS/preflight.py" "$GDIR/preflight.json" run
  step wheels "${GPU_SH_T_WHEELS:-15}" "" "$PY" "$LOGS/wheels.py" "$WHEELS_FILE" "$WHL" "$WHL_LIMIT_MB" "$WHL_SITE"
  # shellcheck disable=SC2086
  pytest_step kernel_tests "${GPU_SH_T_KERNEL_TESTS:-150}" "slow or not slow" $KERNEL_TESTS
  # shellcheck disable=SC2046
  pytest_step gpu_tests "${GPU_SH_T_GPU_TESTS:-30}" gpu tests/train_small \
    $(for f in $KERNEL_TESTS $COMPILE_TESTS; do printf -- "--ignore=%s " "$f"; done)
  step parity "${GPU_SH_T_PARITY:-45}" "$GDIR/parity.json" "$PY" bench/train.py --parity --out "$GDIR/parity.json"
  # ---- sensitivity: the lead's calibration preset (issue 17); it finds GPU_SH_RESULTS in its environment
  if [ ! -f pipelines/calibrate.py ]; then
    skip sensitivity "pipelines/calibrate.py is not there yet (issue 17)"
  elif [ ! -f runs/gpu_calibration/prepared.json ]; then
    skip sensitivity "runs/gpu_calibration/prepared.json absent: prepare it on a CPU machine with ../shared/data (python pipelines/calibrate.py --gpu-preset --prepare-only) and carry runs/gpu_calibration"
  else
    step sensitivity "${GPU_SH_T_SENSITIVITY:-60}" "$RES/sensitivity_gpu.json" "$PY" -m pipelines.calibrate --gpu-preset
  fi
  step train "${GPU_SH_T_TRAIN:-60}" "$RES/train.gpu.json" \
    "$PY" bench/train.py --variants fused,reference --steps 10 --out "$RES/train.gpu.json"
  step kernels "${GPU_SH_T_KERNELS:-50}" "$RES/kernels.gpu.json" \
    "$PY" bench/kernels.py --quick --no-cpu --out "$RES/kernels.gpu.json"
  # compile last: the slowest to start, and the least likely to be the first thing that breaks
  run_limited compile "${GPU_SH_T_COMPILE:-90}" bash -c '
    "$0" -m pytest '"$COMPILE_TESTS"' -m "slow or not slow" -v -p no:cacheprovider --junitxml="$1/compile.xml"
    rc=$?
    "$0" bench/train.py --variants fused+compile,reference+compile --steps 10 --out "$2/train_compile.gpu.json" ||
      rc=$((rc + 2))
    exit $rc' "$PY" "$LOGS" "$RES"
  if [ "$ST" != skipped ]; then pytest_summary "$LOGS/compile.log" "$LOGS/compile.xml" "$GDIR/compile_tests.json"; fi
  finish compile "$GDIR/compile_tests.json" "$RES/train_compile.gpu.json"
fi

rm -f "$STATUS.steps"
echo "status: $STATUS ($((SECONDS - T0))s)"
"$PY" - "$STATUS" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(s["env"])
for t in s["steps"]:
    why = f" ({t['reason']})" if t["reason"] else ""
    print(f"{t['step']:18s} {t['status']:10s} rc={t['rc']:<4d} {t['seconds']:4d}s{why} {t['outputs']}")
bad = [t["step"] for t in s["steps"] if t["status"] in ("failed", "timed_out")]
if s["mode"] == "dry":
    print("dry run:", "READY" if not bad else f"NOT READY: {bad}")
    sys.exit(1 if bad else 0)
print("failed or timed out:", bad or "none")
EOF
