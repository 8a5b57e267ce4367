import pytest

torch = pytest.importorskip("torch")

from harness.datasets import generate_shapes  # noqa: E402
from reference_model import load_captioner  # noqa: E402
from reference_model.preprocess import to_tensor  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_captioner("tiny", device="cpu")


@pytest.fixture(scope="module")
def samples():
    return list(generate_shapes(200, seed=12345))


def test_shipped_model_captions_the_evaluation_world(tiny, samples):
    caps = tiny.caption([s.image for s in samples])
    exact = sum(c.text in s.captions for c, s in zip(caps, samples)) / len(samples)
    assert exact >= 0.95
    assert all(0.0 <= c.confidence <= 1.0 for c in caps)
    assert all(len(c.embedding) == 128 for c in caps)
    assert all(c.tokens == len(c.text.replace(",", " ,").split()) for c in caps)
    assert tiny.version.startswith("tiny-") and tiny.device == "cpu"


def test_batching_does_not_change_captions(tiny, samples):
    batch = tiny.caption([s.image for s in samples[:16]])
    single = [tiny.caption([s.image])[0] for s in samples[:16]]
    assert [c.text for c in batch] == [c.text for c in single]
    for a, b in zip(batch, single):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


@pytest.mark.slow
def test_kv_cache_decoding_equals_full_recomputation(tiny, samples):
    net, vocab = tiny.net, tiny.vocab
    pixels = to_tensor([s.image for s in samples[:8]])
    ids, probs, _ = net.generate(pixels, vocab.bos_id, vocab.eos_id)
    with torch.inference_mode():
        seq = torch.full((8, 1), vocab.bos_id)
        for _ in range(ids.shape[1]):
            nxt = net(pixels, seq)[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    full = seq[:, 1:].tolist()
    for row, ref in zip(ids.tolist(), full):
        n = row.index(vocab.eos_id) + 1
        assert row[:n] == ref[:n]


def test_unseen_colour_lowers_confidence(tiny):
    clean = tiny.caption([s.image for s in generate_shapes(60, seed=5)])
    from harness.datasets import parse_shift

    shifted = tiny.caption([s.image for s in generate_shapes(60, seed=5, shift=parse_shift("unseen_colour:1"))])
    mean = lambda cs: sum(c.confidence for c in cs) / len(cs)  # noqa: E731
    assert mean(shifted) < mean(clean)


def test_int8_and_undertrained_variants_load(tiny, samples):
    q = load_captioner("tiny:int8", device="cpu")
    assert q.version == tiny.version + "-int8"
    caps = q.caption([s.image for s in samples[:50]])
    assert sum(c.text in s.captions for c, s in zip(caps, samples)) >= 45
    u = load_captioner("tiny-undertrained", device="cpu")
    assert u.version != tiny.version


def test_unknown_spec_is_refused():
    with pytest.raises(ValueError, match="unknown option"):
        load_captioner("tiny:fp4")
    with pytest.raises(FileNotFoundError):
        load_captioner("no-such-model")
