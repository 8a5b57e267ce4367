"""The hf backend on tiny transformers models built from configs with random weights, offline."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from harness.datasets import generate_shapes  # noqa: E402
from reference_model import load_captioner  # noqa: E402

pytestmark = pytest.mark.slow  # Hugging Face models built and run

WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] a red blue circle square small large".split()
SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
VISION = dict(SMALL, image_size=32, patch_size=8)


def _tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    return transformers.BertTokenizer(str(vocab))


def _vision_encoder_decoder(path, tok):
    from transformers import BertConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    dec = BertConfig(
        vocab_size=len(WORDS), is_decoder=True, add_cross_attention=True, max_position_embeddings=64, **SMALL
    )
    m = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**VISION), dec))
    for cfg in (m.config, m.generation_config):
        cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = (
            tok.cls_token_id,
            tok.pad_token_id,
            tok.sep_token_id,
        )
    m.save_pretrained(path)
    tok.save_pretrained(path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)


def _blip(path, tok):
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    text = dict(
        SMALL,
        vocab_size=len(WORDS),
        encoder_hidden_size=32,
        max_position_embeddings=64,
        bos_token_id=2,
        sep_token_id=3,
        pad_token_id=0,
        eos_token_id=3,
    )
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=VISION, projection_dim=32)).save_pretrained(
        path
    )
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(
        path
    )


def _git(path, tok):
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    cfg = GitConfig(
        vision_config=VISION,
        vocab_size=len(WORDS),
        max_position_embeddings=64,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        **SMALL,
    )
    GitForCausalLM(cfg).save_pretrained(path)
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(image_processor=proc, tokenizer=tok).save_pretrained(path)


@pytest.fixture()
def flush_denormal():
    """Random-weight models crawl through denormals on CPU; the setting is process-wide, so it is
    restored for the tests that follow (hypothesis refuses to run with it on)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("build", [_vision_encoder_decoder, _blip, _git], ids=["vision-encoder-decoder", "blip", "git"])
def test_hf_backend_captions_offline(tmp_path, monkeypatch, build, flush_denormal):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    path = tmp_path / "model"
    build(path, _tokenizer(tmp_path))
    model = load_captioner(f"hf:{path}", device="cpu")
    caps = model.caption([s.image for s in generate_shapes(3, seed=1)])
    assert len(caps) == 3
    for c in caps:
        assert isinstance(c.text, str) and 0.0 < c.confidence <= 1.0
        assert set(c.text.split()) <= set(WORDS)
        # Per-token log-probabilities (what an OpenAI-compatible answer's logprobs carry): they join
        # to the caption and their geometric mean is the confidence.
        assert c.token_logprobs and "".join(t for t, _ in c.token_logprobs) == c.text
        mean = sum(lp for _, lp in c.token_logprobs) / len(c.token_logprobs)
        assert abs(math.exp(mean) - c.confidence) <= 1e-6
    assert model.version == "hf-model"


def test_missing_hf_model_is_a_clear_error(tmp_path):
    with pytest.raises((ValueError, OSError)):
        load_captioner(f"hf:{tmp_path / 'absent'}", device="cpu")
