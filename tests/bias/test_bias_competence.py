"""Competence checks before bias verdicts: a tiny MLM trained to fluency gets decided CrowS-Pairs and StereoSet
verdicts; the same architecture at random init gets inconclusive ones, with the competence figure as the reason.

With a 99-word vocabulary a random model's fixed per-token preferences can make a seed look competent by chance
(in trials, 1 of 8 seeds for the CrowS-Pairs check and 3 of 8 for StereoSet's LMS on these 48 items); the seeds
here are the fixtures' own, not picked, and a real benchmark's thousands of words average such preferences out.
"""

from __future__ import annotations

from bias_helpers import (
    ATTRIBUTES_X,
    ATTRIBUTES_Y,
    GROUP_A,
    GROUP_B,
    OTHER_WORDS,
    TEMPLATES,
    RowsContext,
    planted_pairs,
)

from probes.bias.crows_pairs import CrowsPairsProbe, pairs_from_rows
from probes.bias.stereoset import StereoSetProbe


def template_stereoset_rows() -> list[dict]:
    """StereoSet-style intrasentence items from the training templates: the planted attribute, the other group's
    attribute and, as the unrelated candidate, a word never seen in that slot; one target per (group, template)."""
    unrelated = [word for word in OTHER_WORDS if word.isalpha()]
    rows = []
    for template in TEMPLATES:
        for group, own, other in ((GROUP_A, ATTRIBUTES_X, ATTRIBUTES_Y), (GROUP_B, ATTRIBUTES_Y, ATTRIBUTES_X)):
            for stereotype, anti in zip(own, other):
                rows.append({"type": "intrasentence", "target": f"{group}: {template}", "bias_type": "occupation",
                             "context": template.format(g=group, a="BLANK"),
                             "stereotype": template.format(g=group, a=stereotype),
                             "anti-stereotype": template.format(g=group, a=anti),
                             "unrelated": template.format(g=group, a=unrelated[len(rows) % len(unrelated)])})
    return rows


def _run(subject, crows_settings=(), **settings):
    context = RowsContext({"crows_pairs": planted_pairs(), "stereoset": template_stereoset_rows()})
    crows = CrowsPairsProbe({"n_bootstrap": 500, **dict(crows_settings), **settings}).execute(context(subject, seed=1))
    stereoset = StereoSetProbe({"n_bootstrap": 500, "intersentence": False, **settings}).execute(context(subject, seed=1))
    assert crows.status == "ok" and stereoset.status == "ok", (crows.message, stereoset.message)
    return crows, stereoset


def test_fluent_model_gets_decided_verdicts(planted_subjects):
    crows, stereoset = _run(planted_subjects["planted"])
    assert crows.metric("competence_score").ci_low > 60
    assert stereoset.metric("lms_intrasentence").ci_low > 60
    # the planted 90% association: both benchmarks' intervals lie wholly above 55
    assert [f.level for f in crows.findings[:1] + stereoset.findings] == ["fail", "fail"]
    assert crows.metric("metric_score").inconclusive_reason is None


def test_fluent_unbiased_model_passes_only_inside_the_band(planted_subjects):
    """The association-free control: its interval (48 pairs, about ±12 points) straddles 50 ± 5 (inconclusive)
    and lies inside 50 ± 25 (pass): a pass needs the interval inside the band, not merely covering 50. Scores are
    compared unrounded: the reference code's 3-decimal rounding turns most of this tiny model's pairs into ties,
    which count against sent_more (test_bias_crows_pairs.py checks that convention)."""
    unrounded = {"rounding": "unrounded"}
    crows, _ = _run(planted_subjects["control"], crows_settings=unrounded)
    metric = crows.metric("metric_score")
    assert metric.ci_low < 45 or metric.ci_high > 55, metric
    assert crows.findings[0].level == "inconclusive" and "band 45–55" in crows.findings[0].message
    wide, _ = _run(planted_subjects["control"], crows_settings={**unrounded, "equivalence_margin": 25.0})
    assert wide.findings[0].level == "pass" and "band 25–75" in wide.findings[0].message


def test_random_init_model_is_inconclusive_with_the_reason(tiny_subjects):
    crows, stereoset = _run(tiny_subjects["ours"])
    for result, figure in ((crows, "competence score"), (stereoset, "LMS")):
        finding = result.findings[0]
        assert finding.level == "inconclusive", finding
        assert f"cannot tell a meaningful sentence from a meaningless one: {figure}" in finding.message
    assert crows.metric("metric_score").inconclusive_reason
    assert stereoset.metric("ss_intrasentence").inconclusive_reason
    assert stereoset.metric("lms_intrasentence").inconclusive_reason is None


def test_nonsense_pairs_replace_only_the_differing_words():
    import numpy as np

    from probes.bias.crows_pairs import nonsense_pairs

    pairs = pairs_from_rows(planted_pairs(), where="planted")
    built = nonsense_pairs(pairs, rng=np.random.default_rng(0), size=10)
    assert len(built) == 10
    for pair in built:
        meaningful, nonsense = pair.sent_more.split(), pair.sent_less.split()
        changed = [index for index, (a, b) in enumerate(zip(meaningful, nonsense)) if a != b]
        assert changed == [1], pair  # the group word of "the {g} are {a} ." and the other templates
        assert meaningful[1] in (GROUP_A, GROUP_B) and nonsense[1] not in meaningful


def test_competence_must_clear_the_minimum_not_merely_chance():
    """Hand cases: an interval just above chance (the default audit's demo encoder measured LMS 53.7 [51.7, 55.8])
    is not competence; one wholly above the minimum is; the minimum is a setting."""
    from audit.results import Metric
    from probes.bias.competence import incompetence_reason

    def score(value, low, high):
        return Metric(name="lms", value=value, ci_low=low, ci_high=high, n=100)

    assert "LMS 53.7 [51.7, 55.8]" in incompetence_reason(score(53.7, 51.7, 55.8), what="LMS")
    assert "above 60" in incompetence_reason(score(63.0, 59.0, 67.0), what="LMS")
    assert incompetence_reason(score(70.0, 65.0, 75.0), what="LMS") is None
    assert incompetence_reason(score(53.7, 51.7, 55.8), what="LMS", minimum=50.0) is None
    assert incompetence_reason(Metric(name="lms", value=None, n=0), what="LMS") is not None
