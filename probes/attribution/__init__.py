"""Attribution probes; importing the package registers them.

- ``attributions`` (integrated_gradients.py): IG, gradient × input, attention rollout, IG completeness deltas;
- ``faithfulness`` (faithfulness.py): ERASER comprehensiveness / sufficiency / AOPC against a random ranking;
- ``sanity`` (sanity.py): Adebayo et al.'s cascading model-parameter randomisation;
- ``identity_attribution`` (identity.py): attribution mass on identity terms and its counterfactual change;
- ``lm_attribution`` (lm_attribution.py): a causal LM's continuation log-probability attributed to prompt tokens
  and identity-term shifts with counterfactual baselines (captum's LLM attribution).
The shared computation lives in adapter.py (model view), methods.py (attribution methods) and common.py.
"""

from probes.attribution import faithfulness, identity, integrated_gradients, lm_attribution, sanity  # noqa: F401
