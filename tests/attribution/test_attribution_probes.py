"""The four attribution probes behind the real ModelUnderAudit (ours and HF BERT): results, determinism, task data,
and bad input (empty texts, only special tokens, no classifier head, n_steps < 1, nothing to explain)."""

from __future__ import annotations

import pytest

from audit.data.task import LabelledExample, TaskData
from probes.base import ProbeContext, ProbeInputError, available_probes, get_probe

PROBES = ["attributions", "faithfulness", "sanity", "identity_attribution"]
FAST = {"n_steps": 8, "n_bootstrap": 200}


def _dump(result):
    payload = result.model_dump(mode="json")
    payload.pop("duration_s")
    return payload


def test_probes_are_registered():
    probes = available_probes()
    for name in PROBES:
        assert name in probes and probes[name].family == "attribution"
        assert probes[name].citation and probes[name].how_to_read and probes[name].__doc__


@pytest.mark.parametrize("kind", ["ours", "bert"])
@pytest.mark.parametrize("name", PROBES)
def test_probe_runs_and_is_deterministic(tiny_subjects, sentences, kind, name):
    subject = tiny_subjects[kind]
    texts = sentences + ["", "[CLS] [SEP]"]
    first = get_probe(name)({"texts": texts, **FAST}).execute(ProbeContext(subject=subject, seed=7))
    assert first.status == "ok", first.message
    assert any("empty or only special tokens" in warning for warning in first.warnings)
    ids = first.per_example["example_ids"]
    assert all(len(values) == len(ids) for values in first.per_example.values())
    assert first.metrics and first.findings and first.figures
    second = get_probe(name)({"texts": texts, **FAST}).execute(ProbeContext(subject=subject, seed=7))
    assert _dump(first) == _dump(second)


def test_attributions_probe_contents(tiny_subjects, sentences):
    result = get_probe("attributions")({"texts": sentences, "n_display": 3}).execute(
        ProbeContext(subject=tiny_subjects["ours"], seed=0)
    )
    assert result.status == "ok", result.message
    kinds = {figure.name: figure.kind for figure in result.figures}
    assert kinds["tokens_integrated_gradients"] == "tokens" and kinds["ig_completeness_delta"] == "bar"
    assert {"tokens_gradient_x_input", "tokens_attention_rollout"} <= set(kinds)
    item = result.figures[0].data["items"][0]
    assert len(item["tokens"]) == len(item["scores"]) and max(abs(s) for s in item["scores"]) == pytest.approx(1.0)
    assert all(isinstance(token, str) for token in item["tokens"])
    assert result.metric("ig_share_within_tolerance").value == 1.0
    assert result.metric("ig_mean_abs_delta").value < 0.01
    assert len(result.per_example["ig_delta"]) == len(sentences)
    assert result.findings[0].level == "pass"


def test_attributions_flag_unconverged_deltas(tiny_subjects, sentences):
    result = get_probe("attributions")({"texts": sentences, "n_steps": 1, "methods": ["integrated_gradients"]}).execute(
        ProbeContext(subject=tiny_subjects["ours"], seed=0)
    )
    assert result.metric("ig_share_within_tolerance").value < 0.5
    assert result.findings[0].level == "warn" and "n_steps" in result.findings[0].message
    assert any("raise n_steps" in warning for warning in result.warnings)


def test_task_split_is_used(tiny_subjects, sentences):
    examples = [
        LabelledExample(id=f"ex{i}", text=text, label=i % 2, split="test" if i < 5 else "train",
                        groups={"gender": "female" if i % 2 else "male"})
        for i, text in enumerate(sentences)
    ]
    task = TaskData(name="toy", label_names=["no", "yes"], examples=examples, group_columns=["gender"])
    result = get_probe("attributions")({"n_examples": 3, **FAST}).execute(
        ProbeContext(subject=tiny_subjects["ours"], seed=0, task=task)
    )
    assert result.status == "ok"
    assert len(result.per_example["example_ids"]) == 3
    assert set(result.per_example["example_ids"]) <= {f"ex{i}" for i in range(5)}
    identity = get_probe("identity_attribution")(FAST).execute(
        ProbeContext(subject=tiny_subjects["ours"], seed=0, task=task)
    )
    assert identity.status == "ok"
    assert set(identity.per_example["group"]) <= {"female", "male"}


@pytest.mark.parametrize("name", PROBES)
def test_only_empty_texts_is_an_input_error(tiny_subjects, name):
    result = get_probe(name)({"texts": ["", "[CLS] [SEP]", "  "], **FAST}).execute(
        ProbeContext(subject=tiny_subjects["ours"], seed=0)
    )
    assert result.status == "error"
    assert "every text is empty or only special tokens" in result.message


@pytest.mark.parametrize("name", PROBES)
def test_nothing_to_explain_is_skipped(tiny_subjects, name):
    result = get_probe(name)(FAST).execute(ProbeContext(subject=tiny_subjects["ours"], seed=0))
    assert result.status == "skipped" and "no texts to explain" in result.message


@pytest.mark.parametrize("name", PROBES)
def test_model_without_classifier_head_is_skipped(tmp_path, tiny_tokenizer, name):
    from attribution_helpers import save_subject

    from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM

    config = AuditTransformerConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=37, max_position_embeddings=64)
    subject = save_subject(AuditTransformerForMaskedLM(config).eval(), tiny_tokenizer, tmp_path / "mlm")
    result = get_probe(name)({"texts": ["good film"]}).execute(ProbeContext(subject=subject, seed=0))
    assert result.status == "skipped" and "classifier" in result.message


@pytest.mark.parametrize("name", PROBES)
@pytest.mark.parametrize("bad", [{"n_steps": 0}, {"n_steps": -1}, {"baseline_token": "unk"}])
def test_bad_settings_are_named(name, bad):
    with pytest.raises(ProbeInputError, match=next(iter(bad))):
        get_probe(name)(bad)
