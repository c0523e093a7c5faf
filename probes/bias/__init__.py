"""Bias probes; importing the package registers them.

crows_pairs (Nangia et al. 2020), stereoset (Nadeem et al. 2021), association (WEAT/SEAT; Caliskan et al. 2017,
May et al. 2019), counterfactual (Garg et al. 2019) and madlibs_terms (Dixon et al. 2018).
"""

from probes.bias import association, counterfactual, crows_pairs, madlibs, stereoset  # noqa: F401
