"""Seconds for the MMD permutation test (200 permutations, 5,000 vs 5,000 samples of 384 dims, 2
threads; goal: at most 2 s), and alibi-detect's MMDDrift on the same data: its time, its decision,
the ratio, and whether the two agree.

alibi-detect (0.13, PyTorch backend) is installed by this script into a virtual environment of
its own under the temp folder (reused on later runs); it is not a dependency of the project. If
it cannot be installed, the script says so and still prints our figures.

Data: seeded Gaussian vectors with a decaying spectrum (like embeddings: a few directions carry
most of the variance); "no drift": both samples from one distribution; "drift": the current
sample's mean moved by 0.1 standard deviation along every direction.

    python benchmarks/drift.py [--n 5000] [--dim 384] [--permutations 200] [--cases no-drift,drift]
                               [--repeat 3] [--no-alibi] [--venv DIR] [--torch-spec "torch==2.13.0"]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ALIBI_SPEC = "alibi-detect[torch]==0.13.0"
ALIBI_RUN = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from alibi_detect.cd import MMDDrift
data = np.load(sys.argv[1])
t0 = time.perf_counter()
cd = MMDDrift(data["reference"], backend="pytorch", p_val=0.05, n_permutations=int(sys.argv[2]), device="cpu")
t1 = time.perf_counter()
out = cd.predict(data["current"])
t2 = time.perf_counter()
import alibi_detect
print(json.dumps({"version": alibi_detect.__version__, "fit_s": t1 - t0, "predict_s": t2 - t1,
                  "p_value": float(out["data"]["p_val"]), "drift": bool(out["data"]["is_drift"]),
                  "statistic": float(out["data"]["distance"])}))
"""


def make_data(n: int, dim: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(1.0 + np.arange(dim) / 8.0)
    ref = rng.standard_normal((n, dim)) * scale
    cur = rng.standard_normal((n, dim)) * scale + shift * scale
    return ref.astype(np.float32), cur.astype(np.float32)


def ours(ref: np.ndarray, cur: np.ndarray, permutations: int, repeat: int) -> dict:
    """Fit once, predict ``repeat`` times (same seed, same answer); the median predict time."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness.drift import MMDDrift

    t0 = time.perf_counter()
    det = MMDDrift(n_permutations=permutations, max_n=None).fit(ref)
    fit_s = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t1 = time.perf_counter()
        res = det.predict(cur)
        times.append(time.perf_counter() - t1)
    return {
        "fit_s": fit_s,
        "predict_s": float(np.median(times)),
        "p_value": res.p_value,
        "drift": res.drift,
        "statistic": res.statistic,
    }


def alibi_python(venv: Path, torch_spec: str) -> tuple[Path | None, str]:
    """The venv's python with alibi-detect importable, or None and the reason."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import alibi_detect.cd, torch"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py, "reused"
    print(f"installing {ALIBI_SPEC} into {venv} (once) ...", file=sys.stderr, flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        pip = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", torch_spec, ALIBI_SPEC],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the virtual environment: {exc}"
    if pip.returncode != 0:
        last = (pip.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip could not install {ALIBI_SPEC}: {last}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, f"{ALIBI_SPEC} installed but does not import"
    return py, "installed"


def alibi(py: Path, ref: np.ndarray, cur: np.ndarray, permutations: int, threads: int, tmp: Path) -> dict:
    data, script = tmp / "data.npz", tmp / "alibi_run.py"
    np.savez(data, reference=ref, current=cur)
    script.write_text(ALIBI_RUN)
    p = subprocess.run(
        [str(py), str(script), str(data), str(permutations), str(threads)], capture_output=True, text=True, timeout=3600
    )
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--cases", default="no-drift,drift")
    ap.add_argument("--repeat", type=int, default=3, help="predict runs of ours; the median is printed")
    ap.add_argument("--no-alibi", action="store_true")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "caption-harness-bench-alibi")
    ap.add_argument(
        "--torch-spec", default="torch==2.13.0", help="torch for the alibi venv (the CPU build where the index has it)"
    )
    args = ap.parse_args()
    threads = int(os.environ["OPENBLAS_NUM_THREADS"])
    shifts = {"no-drift": 0.0, "drift": 0.1}
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    py, why = (None, "skipped (--no-alibi)") if args.no_alibi else alibi_python(args.venv, args.torch_spec)
    print(
        f"MMD permutation test: {args.n} vs {args.n} samples x {args.dim} dims, {args.permutations} permutations, "
        f"{threads} threads, alpha 0.05"
    )
    if py is None:
        print(f"alibi-detect: {why}")
    for case in cases:
        ref, cur = make_data(args.n, args.dim, shifts[case], seed=0)
        mine = ours(ref, cur, args.permutations, args.repeat)
        print(
            f"[{case}] ours: predict {mine['predict_s']:.2f} s, median of {args.repeat} (goal <= 2 s; fitting the reference once: "
            f"{mine['fit_s']:.2f} s), p = {mine['p_value']:.4f}, drift = {mine['drift']}"
        )
        if py is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            theirs = alibi(py, ref, cur, args.permutations, threads, Path(tmp))
        if "error" in theirs:
            print(f"[{case}] alibi-detect MMDDrift failed: {theirs['error']}")
            continue
        agree = theirs["drift"] == mine["drift"]
        print(
            f"[{case}] alibi-detect {theirs['version']} MMDDrift: predict {theirs['predict_s']:.2f} s "
            f"(init {theirs['fit_s']:.2f} s), p = {theirs['p_value']:.4f}, drift = {theirs['drift']}"
        )
        print(f"[{case}] ratio alibi/ours: {theirs['predict_s'] / mine['predict_s']:.1f}x; decisions agree: {agree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
