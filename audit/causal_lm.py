"""Scoring and decoding with a causal (next-token) language model: the subject's ``causal-lm`` capability.

``CausalLMScorer`` wraps any Hugging Face ``…ForCausalLM`` / ``…LMHeadModel`` (GPT-2, Llama, ours) with its
tokenizer and offers the batched, no-grad operations the causal probes share:

* per-token and summed log-likelihoods of texts, conditioned on a prefix token exactly as lm-evaluation-harness
  does for an empty context (Gao et al., "A framework for few-shot language model evaluation", 2021-): BOS when
  the tokenizer has one, else EOS; with neither, the first token of a text is not scored;
* log-likelihoods of continuations given contexts, tokenised as lm-evaluation-harness tokenises them (context +
  continuation encoded whole, with the tokenizer's own special tokens such as Llama's BOS, and split where the
  separately encoded context ends; trailing context spaces move to the continuation);
* deterministic greedy or beam decoding of new token ids (KV cache on), for extraction probes.

Higher log-likelihood = the model finds the text more likely. Nothing is truncated: a text longer than the context
window raises ``SequenceTooLongError`` naming it. Batches are length-bucketed; with right padding (the default)
no attention mask is needed, since a causal model's real tokens never attend to the padding after them, so the
fast causal attention kernel runs; with left padding the mask and explicit position ids keep every row's numbers
those of an unpadded forward. Only the positions that are scored are projected to the vocabulary when the model
supports ``logits_to_keep``, and log-probabilities are the target logit minus a log-sum-exp, never a (B, T, V)
log-softmax tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import GenerationConfig, PreTrainedModel

from audit.token_batches import SequenceTooLongError, check_texts, length_batches, pad_token_lists


class CausalLMScorer:
    """Log-likelihoods and greedy/beam decoding for one causal LM and its tokenizer (see the module docstring).

    ``max_length`` is the context window: the most tokens one forward pass may take. ``padding_side`` only
    changes how batches are laid out, never the numbers (the tests check both)."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, device: torch.device, max_length: int,
                 padding_side: str = "right"):
        if padding_side not in {"left", "right"}:
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = int(max_length)
        self.padding_side = padding_side
        forward_parameters = inspect.signature(model.forward).parameters
        self._takes_logits_to_keep = "logits_to_keep" in forward_parameters
        if padding_side == "left" and "position_ids" not in forward_parameters:
            raise ValueError(f"{type(model).__name__} takes no position_ids, so left padding would shift positions; "
                             "use padding_side='right'")
        special = [tokenizer.pad_token_id, tokenizer.eos_token_id, 0]
        self._pad_id = int(next(token for token in special if token is not None))

    # -- conditioning --------------------------------------------------------------------------------------

    @property
    def prefix_token_id(self) -> int | None:
        """The token every scored text is conditioned on: BOS, else EOS, else None (as lm-eval-harness)."""
        for token in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token is not None:
                return int(token)
        return None

    @property
    def sentence_logprob_note(self) -> str:
        """How a text's log-likelihood is conditioned, in plain words for the report."""
        if self.tokenizer.bos_token_id is not None:
            return ("each text is scored after the beginning-of-sequence token (BOS), as lm-evaluation-harness "
                    "scores a text with an empty context")
        if self.tokenizer.eos_token_id is not None:
            return ("each text is scored after the end-of-text token (the tokenizer has no BOS), as "
                    "lm-evaluation-harness scores a text with an empty context")
        return ("the tokenizer has neither a BOS nor an EOS token, so nothing precedes a text and its first token "
                "cannot be scored: log-likelihoods cover the second token onwards")

    # -- log-likelihoods -----------------------------------------------------------------------------------

    def token_logprobs(self, texts: Sequence[str], *, batch_size: int = 32) -> list[np.ndarray]:
        """Per text (float64): log p(t_i | prefix, t_<i) of each of its tokens (encoded without special tokens).

        A text that already starts with the prefix token is conditioned on it instead (as lm-eval-harness), and
        without a prefix token the first token is skipped; either way that token gets no score."""
        texts = check_texts(texts)
        encoded = self._encode(texts)
        items = [self._prefixed(tokens, f"texts[{index}]") for index, tokens in enumerate(encoded)]
        return self._score(items, batch_size)

    def sentence_logprobs(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Sum of ``token_logprobs`` per text, shape (n,): lm-eval's ``loglikelihood(("", text))``."""
        scores = self.token_logprobs(texts, batch_size=batch_size)
        return np.asarray([float(values.sum()) for values in scores], dtype=np.float64)

    def continuation_logprobs(self, contexts: Sequence[str], continuations: Sequence[str], *, batch_size: int = 32,
                              per_token: bool = False) -> np.ndarray | list[np.ndarray]:
        """log p(continuation | context): summed, shape (n,), or per continuation token with ``per_token``.

        Tokenised as lm-eval-harness does: trailing spaces of the context move to the continuation, context +
        continuation are encoded whole with the tokenizer's default special tokens (none for GPT-2, BOS for
        Llama; none when the context already starts with the prefix token's text) and the continuation is what
        follows the separately encoded context; an empty context means the prefix token (as in
        ``token_logprobs``)."""
        contexts = check_texts(contexts, "contexts")
        continuations = check_texts(continuations, "continuations")
        if len(contexts) != len(continuations):
            raise ValueError(f"got {len(contexts)} contexts but {len(continuations)} continuations; expected pairs")
        for index, continuation in enumerate(continuations):
            if not continuation:
                raise ValueError(f"continuations[{index}] is empty; expected text to score after the context")
        items: list[tuple[list[int], int] | None] = [None] * len(contexts)
        pairs = []
        for index, (context, continuation) in enumerate(zip(contexts, continuations)):
            if not context:
                items[index] = self._prefixed(self._encode([continuation])[0], f"continuations[{index}]")
                continue
            kept = context.rstrip()
            pairs.append((index, kept, context[len(kept):] + continuation))
        if pairs:
            wholes = self._encode_with_specials([kept + continuation for _, kept, continuation in pairs])
            heads = self._encode_with_specials([kept for _, kept, _ in pairs])
            for (index, _, _), whole, head in zip(pairs, wholes, heads):
                tail = whole[len(head):]
                if not tail:
                    raise ValueError(f"continuations[{index}] adds no token to its context; expected text to score")
                items[index] = self._checked(head + tail, len(head), f"contexts[{index}] + continuations[{index}]")
        scores = self._score(items, batch_size)
        if per_token:
            return scores
        return np.asarray([float(values.sum()) for values in scores], dtype=np.float64)

    # -- decoding ------------------------------------------------------------------------------------------

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int, num_beams: int = 1,
                     batch_size: int = 32) -> list[list[int]]:
        """The new token ids of greedy (``num_beams=1``) or beam decoding from each prompt, KV cache on.

        Deterministic: the model's own sampling settings are ignored. A row stops at the tokenizer's EOS (kept as
        its last id) or after ``max_new_tokens``. Prompts are left-padded in length-bucketed batches."""
        for name, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        prompts = self._checked_prompts(prompt_ids, max_new_tokens)
        eos = self.tokenizer.eos_token_id
        settings = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                                    pad_token_id=self._pad_id, eos_token_id=eos, use_cache=True)
        generated: list[list[int]] = [[] for _ in prompts]
        with torch.inference_mode():
            for batch in length_batches([len(prompt) for prompt in prompts], batch_size):
                input_ids, attention_mask = pad_token_lists([prompts[index] for index in batch], self._pad_id,
                                                            side="left", device=self.device)
                output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                             generation_config=settings)
                for row, index in enumerate(batch):
                    new_ids = output[row, input_ids.shape[1]:].tolist()
                    if eos is not None and eos in new_ids:
                        new_ids = new_ids[:new_ids.index(eos) + 1]
                    generated[index] = new_ids
        return generated

    # -- internals -----------------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _encode_with_specials(self, texts: list[str]) -> list[list[int]]:
        """Encoded as lm-eval-harness encodes a non-empty context: the tokenizer's default special tokens,
        unless the text already starts with the prefix token written out."""
        prefix = self.prefix_token_id
        prefix_text = self.tokenizer.decode([prefix]) if prefix is not None else ""
        plain = [bool(prefix_text) and text.startswith(prefix_text) for text in texts]
        encoded: list[list[int]] = [[] for _ in texts]
        for add_special_tokens in (True, False):
            rows = [row for row, is_plain in enumerate(plain) if is_plain != add_special_tokens]
            if rows:
                ids = self.tokenizer([texts[row] for row in rows], add_special_tokens=add_special_tokens)["input_ids"]
                for row, row_ids in zip(rows, ids):
                    encoded[row] = list(row_ids)
        return encoded

    def _prefixed(self, tokens: list[int], name: str) -> tuple[list[int], int]:
        """(sequence, index of its first scored token) for a text scored with an empty context."""
        prefix = self.prefix_token_id
        if prefix is not None and (not tokens or tokens[0] != prefix):
            tokens = [prefix, *tokens]
        if len(tokens) < 2:
            raise ValueError(f"{name} has no token to score (an empty text, or one token with nothing to condition "
                             "it on); expected at least one token after the prefix")
        return self._checked(tokens, 1, name)

    def _checked(self, tokens: list[int], first_scored: int, name: str) -> tuple[list[int], int]:
        # The model reads every token but the last, so that is what must fit the window.
        if len(tokens) - 1 > self.max_length:
            raise SequenceTooLongError(
                f"{name} has {len(tokens) - 1} tokens to read, more than the context window of {self.max_length}; "
                "shorten or skip it (nothing is truncated)"
            )
        return tokens, first_scored

    def _checked_prompts(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        vocab_size = int(self.model.config.vocab_size)
        prompts = []
        for index, prompt in enumerate(prompt_ids):
            prompt = [int(token) for token in prompt]
            if not prompt:
                raise ValueError(f"prompt_ids[{index}] is empty; expected at least one token (e.g. the prefix token)")
            if any(not 0 <= token < vocab_size for token in prompt):
                raise ValueError(f"prompt_ids[{index}] holds ids outside the vocabulary [0, {vocab_size})")
            if len(prompt) + max_new_tokens > self.max_length:
                raise SequenceTooLongError(
                    f"prompt_ids[{index}] has {len(prompt)} tokens; with max_new_tokens {max_new_tokens} that is "
                    f"more than the context window of {self.max_length}"
                )
            prompts.append(prompt)
        return prompts

    def _score(self, items: Sequence[tuple[list[int], int]], batch_size: int) -> list[np.ndarray]:
        """log p of tokens[first:] for each (tokens, first) item; one forward pass per length-bucketed batch."""
        scores: list[np.ndarray] = [np.zeros(0, dtype=np.float64)] * len(items)
        if not items:
            return scores
        with torch.inference_mode():
            for batch in length_batches([len(tokens) - 1 for tokens, _ in items], batch_size):
                for index, values in zip(batch, self._score_batch([items[index] for index in batch])):
                    scores[index] = values
        return scores

    def _score_batch(self, items: list[tuple[list[int], int]]) -> list[np.ndarray]:
        left = self.padding_side == "left"
        input_ids, attention_mask = pad_token_lists([tokens[:-1] for tokens, _ in items], self._pad_id,
                                                    side=self.padding_side, device=self.device)
        width = input_ids.shape[1]
        targets, _ = pad_token_lists([tokens[1:] for tokens, _ in items], self._pad_id, side=self.padding_side)
        offsets = [width - (len(tokens) - 1) if left else 0 for tokens, _ in items]
        # Input position whose output predicts each row's first scored token; only positions from the earliest
        # of these on are projected to the vocabulary.
        starts = [offset + first - 1 for offset, (_, first) in zip(offsets, items)]
        keep = width - min(starts)
        arguments: dict[str, Any] = {"input_ids": input_ids}
        if left:
            arguments["attention_mask"] = attention_mask
            arguments["position_ids"] = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)
        if self._takes_logits_to_keep:
            arguments["logits_to_keep"] = keep
        logits = self.model(**arguments).logits[:, -keep:]  # (B, K, V)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        wanted = targets[:, width - keep:].to(self.device)  # (B, K)
        target_logits = logits.gather(-1, wanted.unsqueeze(-1)).squeeze(-1)  # (B, K)
        log_normalisers = torch.logsumexp(logits, dim=-1)  # (B, K)
        log_probs = (target_logits.double() - log_normalisers.double()).cpu().numpy()
        results = []
        for row, ((tokens, first), offset) in enumerate(zip(items, offsets)):
            begin = offset + first - 1 - (width - keep)
            results.append(log_probs[row, begin:begin + len(tokens) - first].copy())
        return results
