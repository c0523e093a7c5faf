"""Bias probes; importing the package registers them.

crows_pairs (Nangia et al. 2020), stereoset (Nadeem et al. 2021), association (WEAT/SEAT; Caliskan et al. 2017,
May et al. 2019), counterfactual (Garg et al. 2019), counterfactual_lm (a language model's log-likelihood gap
between identity-swapped sentences; Barikeri et al. 2021) and madlibs_terms (Dixon et al. 2018).
"""

from probes.bias import (  # noqa: F401
    association,
    counterfactual,
    counterfactual_lm,
    crows_pairs,
    madlibs,
    stereoset,
)
