"""A synthetic AuditResults covering every probe family and figure kind, with hostile strings in every place
where untrusted text can appear (group names, example sentences, probe messages). Shared by the report, gate and
compare tests and by benchmarks/render_speed.py."""

from audit.results import (
    AuditResults,
    DatasetRecord,
    Example,
    Figure,
    Finding,
    Metric,
    ProbeResult,
    RunInfo,
    SubjectInfo,
    Table,
)

# Each payload would leave a mark in the DOM if it ever ran (checked by the headless-browser test).
XSS = '<script>document.title="XSS-RAN"</script><img src=x onerror="document.body.dataset.xss=1">'


def build_results(n_rows: int = 20) -> AuditResults:
    probes = []
    for family, name in [("bias", "crows_pairs"), ("fairness", "group_metrics"), ("privacy", "membership"),
                         ("attribution", "attributions")]:
        probes.append(
            ProbeResult(
                probe=name, version="1", family=family, citation="Author et al., Venue 2020",
                description=f"{name} description", how_to_read="Read carefully.",
                metrics=[
                    Metric(name="gap", value=0.12, ci_low=0.05, ci_high=0.2, higher_is_better=False, n=400),
                    Metric(name="gap", value=0.3, ci_low=0.1, ci_high=0.5, higher_is_better=False, n=40, group=XSS),
                    Metric(name="auc", value=None, undefined_reason="one class only in group", n=3),
                ],
                tables=[Table(name="per_group", title="Per group", columns=["group", "n", "rate"],
                              rows=[[f"g{i}", i, i / n_rows] for i in range(n_rows)] + [[XSS, 1, 0.5]])],
                figures=[
                    Figure(name="bars", title="Rates", kind="bar",
                           data={"labels": ["a", XSS], "values": [0.4, 0.6], "ci_low": [0.3, 0.5],
                                 "ci_high": [0.5, 0.7], "reference": 0.5}),
                    Figure(name="roc", title="ROC", kind="roc", log_scale=True,
                           data={"series": [{"label": "LiRA", "x": [1e-3, 1e-2, 0.1, 1], "y": [2e-3, 3e-2, 0.2, 1]}]}),
                    Figure(name="curve", title="Curve", kind="line",
                           data={"series": [{"label": "IG", "x": [1, 5, 10], "y": [0.1, 0.3, 0.5],
                                             "ci_low": [0.05, 0.2, 0.4], "ci_high": [0.15, 0.4, 0.6]}]}),
                    Figure(name="tokens", title="Attributions", kind="tokens",
                           data={"items": [{"title": XSS, "tokens": ["the", XSS, "nurse"], "scores": [0.1, -0.5, 0.9]}]}),
                ],
                examples=[Example(title="worst pair", fields={"sentence": XSS, "delta": 0.4})],
                findings=[Finding(level="warn", message=f"gap of 0.12 found for {XSS}", metric="gap")],
                warnings=[f"small group {XSS}"],
            )
        )
    probes.append(ProbeResult(probe="exposure", version="1", family="privacy", citation="Carlini 2019",
                              status="error", message=f"RuntimeError: {XSS}"))
    return AuditResults(
        run=RunInfo(id="run-1", started="2026-11-29T00:00:00Z", duration_s=1.0, seed=0, threads=2,
                    package_versions={"torch": "2.13.0"}, hardware={"cpu": "test"}),
        subject=SubjectInfo(path="/models/x", name=XSS, model_type="rai-transformer", sha256="0" * 64,
                            parameters=1000, tokenizer="WordPiece", capabilities=["mlm", "classifier"],
                            model_card={"intended_use": XSS}),
        datasets=[DatasetRecord(name="crows_pairs", source="/data/crows.csv", sha256="f" * 64, rows=1508)],
        config={"note": XSS},
        probes=probes,
    )
