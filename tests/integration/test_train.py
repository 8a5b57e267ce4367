import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # trains the tiny captioner twice

from reference_model.tiny import TinyCaptioner, load_checkpoint  # noqa: E402
from reference_model.train import train  # noqa: E402


def test_training_is_deterministic_and_writes_a_loadable_checkpoint(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        summary = train(
            steps=6,
            seed=3,
            batch=8,
            out=out,
            snapshot_step=3,
            snapshot_out=tmp_path / f"{name}-early.safetensors",
            log=lambda m: None,
        )
        assert summary["steps"] == 6 and 0.0 <= summary["exact_match_256"] <= 1.0
        runs.append(load_checkpoint(out)[0].state_dict())
        assert (tmp_path / f"{name}-early.json").exists()
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
    cap = TinyCaptioner(tmp_path / "a.safetensors", device="cpu")
    from harness.datasets import generate_shapes

    out = cap.caption([s.image for s in generate_shapes(2, seed=1)])
    assert len(out) == 2 and all(0 <= c.confidence <= 1 for c in out)
