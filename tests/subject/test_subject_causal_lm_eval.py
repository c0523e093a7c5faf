"""Reference agreement: our causal log-likelihoods equal lm-evaluation-harness's ``HFLM.loglikelihood`` on the same
saved tiny models (GPT-2 with BOS = EOS, GPT-2 without BOS, Llama with <s> and no pad token) within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from audit.subject import ModelUnderAudit

SENTENCES = [
    "the doctor said she would arrive soon",
    "A woman walked to the park.",
    "he cooked bread",
    "unbelievably the engineer played football with children",
    "my kind neighbour fixed the old bridge yesterday before dinner",
    "children",
]
PAIRS = [("the doctor said", " she would"), ("the doctor said ", "she would"), ("a woman walked to the", " park."),
         ("He cooked", " dinner for his family")]


def lm_eval_loglikelihoods(folder, requests: list[tuple[str, str]]) -> np.ndarray:
    model = HFLM(pretrained=str(folder), device="cpu", batch_size=3)
    instances = [Instance("loglikelihood", {}, request, index) for index, request in enumerate(requests)]
    return np.asarray([loglikelihood for loglikelihood, _ in model.loglikelihood(instances, disable_tqdm=True)])


@pytest.mark.parametrize("name", ["gpt2", "gpt2_no_bos", "llama"])
def test_sentence_and_continuation_logprobs_equal_lm_eval(causal_dirs, name):
    subject = ModelUnderAudit.from_pretrained(causal_dirs[name], device="cpu")
    reference = lm_eval_loglikelihoods(causal_dirs[name], [("", sentence) for sentence in SENTENCES] + PAIRS)
    ours = np.concatenate([subject.sentence_logprobs(SENTENCES, batch_size=4),
                           subject.continuation_logprobs(*zip(*PAIRS), batch_size=2)])
    assert np.all(np.isfinite(reference)) and len(set(np.round(reference, 3))) > len(SENTENCES)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
