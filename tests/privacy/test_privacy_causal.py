"""Privacy probes on causal LMs (fast): exposure's causal scoring against a plain forward pass, the extraction
probe's bookkeeping on a decoding double, membership scores and document windows, and bad input.

The known answers on trained models are in test_privacy_causal_known_answers.py (slow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from audit.model import AuditTransformerConfig, AuditTransformerForCausalLM
from audit.subject import ModelUnderAudit
from audit.train.canaries import MANIFEST_FILE, draw_canaries
from audit.train.config import CanarySection
from audit.train.tokenizer import train_tokenizer
from probes.base import ProbeContext, ProbeInputError, get_probe
from probes.privacy import exposure, lm_membership
from probes.privacy.causal_canaries import causal_canary_scorer, decoding_task
from probes.privacy.extraction import ExtractionProbe

WORDS = ["my", "pin", "code", "is", "the", "a", "of", "and", "to", "in", "was", "he", "she", "it", "model", "data",
         "text", "river", "town", "old", *map(str, range(10))]


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    """A randomly initialised causal LM of our architecture (vocab < 99, hidden 32, 4 heads, 2 layers) with the
    decoder tokenizer pretraining trains ([CLS] = BOS, [SEP] = EOS)."""
    rng = np.random.default_rng(0)
    tokenizer = train_tokenizer([" ".join(rng.choice(WORDS, size=12)) + "." for _ in range(300)], vocab_size=80,
                                min_frequency=1, min_char_count=1, model_max_length=32, for_decoder=True)
    config = AuditTransformerConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                                    pad_token_id=tokenizer.pad_token_id, causal=True,
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AuditTransformerForCausalLM(config)
    directory = tmp_path_factory.mktemp("privacy-causal")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def subject(causal_dir):
    return ModelUnderAudit.from_pretrained(causal_dir)


@pytest.fixture()
def manifest():
    return draw_canaries(CanarySection(count=4, repeats=[1, 16], length=5, seed=3))


def _manual_secret_logprob(subject, text: str, n_prefix: int) -> float:
    """log p(tokens after the format prefix | [CLS] + prefix) by one plain forward pass: the reference."""
    ids = [subject.prefix_token_id, *subject.tokenizer(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = subject.causal_lm(torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(sum(log_probs[i - 1, ids[i]] for i in range(1 + n_prefix, len(ids))))


def test_causal_exposure_scores_the_secret_given_the_prefix_as_a_plain_forward_pass(subject, manifest):
    score = causal_canary_scorer(subject, manifest, batch_size=3)
    sequences = [tuple(secret.digits) for secret in manifest.secrets[:5]]
    n_prefix = len(subject.tokenizer("my pin code is", add_special_tokens=False)["input_ids"])
    expected = [_manual_secret_logprob(subject, manifest.render(sequence), n_prefix) for sequence in sequences]
    np.testing.assert_allclose(score(sequences), expected, atol=1e-4)


def test_causal_exposure_ranks_a_secret_the_model_prefers_first(subject, manifest, tmp_path, monkeypatch):
    """Planted effect through the whole probe: a subject whose secret-scores favour the 16x secrets."""
    planted = {tuple(s.digits) for s in manifest.secrets if s.repeats == 16}
    original = causal_canary_scorer(subject, manifest, batch_size=64)

    def favouring(subject_, manifest_, *, batch_size):
        return lambda sequences: original(sequences) + np.array([50.0 if s in planted else 0.0 for s in sequences])

    monkeypatch.setattr("probes.privacy.causal_canaries.causal_canary_scorer", favouring)
    manifest.save(tmp_path)
    ctx = ProbeContext(subject=subject, seed=0, canary_manifest=tmp_path / MANIFEST_FILE)
    result = get_probe("exposure")({"n_candidates": 200}).execute(ctx)
    assert result.status == "ok", result.message
    means = {m.group: m.value for m in result.metrics if m.name == "exposure"}
    assert means["repeats_16"] == pytest.approx(math.log2(200))
    assert means["control"] < 4.0
    assert result.message.startswith("Scoring: causal language model")


def test_a_causal_canary_prompt_is_the_format_prefix_and_revealed_symbols(subject, manifest):
    secret = manifest.secrets[0]
    task = decoding_task(subject, manifest, secret.digits, revealed=2, name="canary")
    tokenizer = subject.tokenizer
    assert tokenizer.decode(task.prompt_ids) == "[CLS] my pin code is " + " ".join(secret.digits[:2])
    assert tokenizer.decode(task.target_ids) == " ".join(secret.digits[2:])


class DecodingDouble:
    """A "causal LM" that writes, after any prompt, the rest of the first memorised secret the prompt starts --
    the known answer for extraction's bookkeeping (greedy and beam alike)."""

    capabilities = frozenset({"causal-lm"})

    def __init__(self, subject, manifest, memorised, *, max_length=32):
        self.tokenizer, self.prefix_token_id, self.max_length = subject.tokenizer, subject.prefix_token_id, max_length
        self.sentence_logprob_note = subject.sentence_logprob_note
        self.full = [[self.prefix_token_id, *self.tokenizer(manifest.format.format(" ".join(digits)),
                                                             add_special_tokens=False)["input_ids"]]
                     for digits in memorised]
        self.calls = []

    def generate_ids(self, prompt_ids, *, max_new_tokens, num_beams=1, batch_size=32):
        self.calls.append(num_beams)
        out = []
        for prompt in prompt_ids:
            match = next((full for full in self.full if full[:len(prompt)] == list(prompt)), None)
            out.append(match[len(prompt):len(prompt) + max_new_tokens] if match else [0] * max_new_tokens)
        return out


def _extraction_context(double, manifest, tmp_path):
    manifest.save(tmp_path)
    return ProbeContext(subject=double, seed=0, canary_manifest=tmp_path / MANIFEST_FILE)


def test_extraction_counts_what_comes_out_verbatim_by_repeat_count(subject, manifest, tmp_path):
    memorised = [s.digits for s in manifest.secrets if s.repeats == 16][:3]
    double = DecodingDouble(subject, manifest, memorised)
    result = ExtractionProbe().execute(_extraction_context(double, manifest, tmp_path))
    assert result.status == "ok", result.message
    rates = {(m.name, m.group): m for m in result.metrics}
    greedy16 = rates[("greedy_extraction_rate", "repeats_16")]
    assert (greedy16.value, greedy16.n) == (0.75, 4)
    assert 0.0 < greedy16.ci_low < 0.75 < greedy16.ci_high <= 1.0  # Wilson interval
    assert rates[("beam_extraction_rate", "repeats_16")].value == 0.75
    assert rates[("greedy_extraction_rate", "control")].value == 0.0
    assert rates[("greedy_extraction_rate", "repeats_1")].value == 0.0
    # the bare format prefix writes the first memorised secret: a planted one
    assert rates[("format_prefix_extraction", None)].value == 1.0
    assert sorted(set(double.calls)) == [1, 5]
    assert any(f.level == "fail" for f in result.findings)
    assert result.per_example["greedy_extracted"].count(True) == 3


def test_extraction_of_a_model_that_memorised_nothing_passes_only_with_enough_canaries(subject, manifest, tmp_path):
    result = ExtractionProbe().execute(_extraction_context(DecodingDouble(subject, manifest, []), manifest, tmp_path))
    assert all(m.value == 0.0 for m in result.metrics)
    # 0 of 4 leaves the upper bound near 50%: said so, not a pass
    findings = [f for f in result.findings if f.metric == "greedy_extraction_rate"]
    assert {f.level for f in findings} == {"info"} and any("too few canaries" in f.message for f in findings)


def test_a_canary_prompt_longer_than_the_context_window_is_skipped_naming_it(subject, manifest, tmp_path):
    double = DecodingDouble(subject, manifest, [], max_length=8)
    result = ExtractionProbe().execute(_extraction_context(double, manifest, tmp_path))
    assert result.status == "skipped"
    assert manifest.secrets[0].text in result.message and "context window of 8" in result.message


def test_extraction_refuses_revealing_the_whole_secret(subject, manifest, tmp_path):
    result = ExtractionProbe({"revealed_symbols": 5}).execute(
        _extraction_context(DecodingDouble(subject, manifest, []), manifest, tmp_path))
    assert result.status == "error" and "revealed_symbols is 5" in result.message


def test_causal_probes_skip_a_masked_lm_and_mlm_exposure_still_needs_a_language_model(tiny_pretrained_dir):
    masked = ModelUnderAudit.from_pretrained(tiny_pretrained_dir)
    ctx = ProbeContext(subject=masked, seed=0, canary_manifest=tiny_pretrained_dir / MANIFEST_FILE)
    for name in ("extraction", "lm_membership"):
        result = get_probe(name)().execute(ctx)
        assert result.status == "skipped" and "causal-lm" in result.message
    assert get_probe("exposure")().missing_needs(ctx) == []


# -------------------------------------------------------------------------------------------- membership
def test_min_k_percent_takes_the_least_likely_tokens():
    values = [np.array([-1.0, -5.0, -2.0, -9.0, -0.5]), np.array([-3.0])]
    np.testing.assert_allclose(lm_membership.min_k_percent_score(values, 40.0), [-7.0, -3.0])
    np.testing.assert_allclose(lm_membership.min_k_percent_score(values, 100.0), [-3.5, -3.0])


def test_zlib_ratio_discounts_repetitive_text():
    texts = ["abc " * 50, "the quick brown fox jumps over the lazy dog while seven wizards quietly hex"]
    zlib_lengths = lm_membership.zlib_bytes(texts)
    assert zlib_lengths[0] < zlib_lengths[1]
    np.testing.assert_allclose(lm_membership.zlib_ratio_score(np.array([2.0, 2.0]), texts), -2.0 / zlib_lengths)


def test_long_documents_are_cut_into_windows_at_word_boundaries(subject):
    tokenizer = subject.tokenizer
    text = " ".join(["the old river town and the model data"] * 12)
    pieces = lm_membership.document_windows(tokenizer, [text], 10)[0]
    assert len(pieces) > 1
    assert all(len(tokenizer(piece, add_special_tokens=False)["input_ids"]) <= 10 for piece in pieces)
    joined = [i for piece in pieces for i in tokenizer(piece, add_special_tokens=False)["input_ids"]]
    assert joined == tokenizer(text, add_special_tokens=False)["input_ids"]
    scores = lm_membership.document_token_logprobs(subject, [text, "the river"], batch_size=4)
    assert len(scores[0]) == len(joined)
    assert len(scores[1]) == len(tokenizer("the river", add_special_tokens=False)["input_ids"])


def _write_documents(path, rows):
    path.write_text("".join(json.dumps({"text": text, "member": member}) + "\n" for text, member in rows))
    return path


def test_lm_membership_from_a_jsonl_on_a_random_model_writes_every_declared_metric(subject, tmp_path):
    rng = np.random.default_rng(1)
    rows = [(" ".join(rng.choice(WORDS, size=20)), i % 2 == 0) for i in range(40)]
    documents = _write_documents(tmp_path / "docs.jsonl", rows)
    probe = get_probe("lm_membership")({"documents": str(documents), "n_bootstrap": 100})
    result = probe.execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "ok", result.message
    names = {(m.name, m.group) for m in result.metrics}
    assert ("auc", "min_k") in names and ("auc", "reference") not in names
    assert any("reference-model attack was skipped" in w for w in result.warnings)
    assert result.per_example["member"] == [member for _, member in rows]


def test_lm_membership_reference_attack_with_the_model_itself_scores_zero(subject, causal_dir, tmp_path):
    rows = [("the old river town", True), ("a model of the data", False), ("she was in the town", True),
            ("it is the text", False)]
    probe = get_probe("lm_membership")({"documents": str(_write_documents(tmp_path / "d.jsonl", rows)),
                                        "reference_model": str(causal_dir), "n_bootstrap": 50})
    result = probe.execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "ok", result.message
    assert result.per_example["score_reference"] == [0.0] * 4
    assert {m.group for m in result.metrics if m.name == "auc"} == {"loss", "zlib", "min_k", "reference"}


@pytest.mark.parametrize("rows, expected", [
    ([("text one", True), ("text two", True)], "expected both"),
    ([("text one", 1), ("text two", 0)], "expected true or false"),
])
def test_lm_membership_bad_documents_name_the_problem(subject, tmp_path, rows, expected):
    probe = get_probe("lm_membership")({"documents": str(_write_documents(tmp_path / "d.jsonl", rows))})
    result = probe.execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "error" and expected in result.message


def test_lm_membership_without_a_recipe_or_documents_is_skipped_with_the_reason(subject):
    result = get_probe("lm_membership")().execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "skipped" and "pretrain.json" in result.message


def test_a_recipe_whose_corpus_digest_differs_is_refused(causal_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(causal_dir, model_dir)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"document number {i} is about the river town.\n" for i in range(10)))
    recipe = {"config": {"corpus": {"dataset": str(corpus), "max_length": 32, "heldout_fraction": 0.3},
                         "train": {"seed": 0}},
              "corpus": {"sha256": "0" * 64}, "documents": {"training": 7, "heldout": 3}}
    (model_dir / "pretrain.json").write_text(json.dumps(recipe))
    subject = ModelUnderAudit.from_pretrained(model_dir)
    result = get_probe("lm_membership")().execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "error" and "sha256" in result.message and "0000000000000000" in result.message


def test_exposure_module_keeps_its_masked_layout_check(tiny_pretrained_dir, manifest):
    masked = ModelUnderAudit.from_pretrained(tiny_pretrained_dir)
    with pytest.raises(ProbeInputError):
        exposure.canary_scorer(masked, manifest, batch_size=8)  # digits are not in the tiny MLM's vocabulary
