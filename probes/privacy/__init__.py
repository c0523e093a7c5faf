"""Privacy probes; importing the package registers them: membership inference (fine-tuning data of a classifier;
pretraining documents of a causal LM), canary exposure and verbatim extraction."""

from probes.privacy import dp_audit, exposure, extraction, lm_membership, membership  # noqa: F401
