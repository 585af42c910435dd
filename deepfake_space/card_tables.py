"""Markdown tables of a model's off-DFDC and robustness measurements, for its card and the commands' summaries.

They read the JSON that ``train.cross_domain``, ``train.robustness`` and ``train.photo_robustness`` write next to
the weights, so a card only ever shows what those commands measured.
"""

from __future__ import annotations

from deepfake_space.config import decision_cuts


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def cross_domain_markdown(report: dict) -> str:
    """The report as Markdown tables for a model card."""
    wild, photos = report["wild"], report["photos"]
    status = wild["status"]
    lines = [
        "### Cross-domain check (full pipeline, face detection included)", "",
        f"Out-of-domain videos: {wild['n_files']} ({wild['labels']['real']} real, {wild['labels']['fake']} fake); "
        f"no face found in {status['no_face']}, failed on {status['error']}. Those get no score: they are left "
        f"out of the AUC and the verdict counts, never counted as real. {report['note']}", "",
        "| model | real below / fake above | video ROC-AUC (95 % CI) | scored (real / fake) | fakes called fake / real / "
        "uncertain | reals called fake / real / uncertain | accuracy of verdicts given | verdicts given |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in wild["models"].items():
        rule = report["models"][name]
        auc = m["roc_auc"]
        auc_text = "-" if auc is None else f"{auc['value']:.3f} ({auc['ci_low']:.3f}–{auc['ci_high']:.3f})"
        v = m["verdicts"]
        lines.append(f"| {name} | {rule_cuts(rule)} | {auc_text} | "
                     f"{m['n_scored']} ({m['n_real']} / {m['n_fake']}) | "
                     f"{v['fake']['fake']} / {v['fake']['real']} / {v['fake']['uncertain']} | "
                     f"{v['real']['fake']} / {v['real']['real']} / {v['real']['uncertain']} | "
                     f"{_num(m['accuracy_decided'])} | {_pct(m['decided_share'])} |")
    pstatus = photos["status"]
    lines += [
        "", f"Real photos: {photos['n_files']}, all real; no face found in {pstatus['no_face']} "
            f"({_pct(photos['no_face_share'])}), failed on {pstatus['error']}. Shares are of the photos with a "
            "face.",
        "", "| model | called fake (95 % Wilson CI) | uncertain | called real | median P(fake) |",
        "|---|---|---|---|---|",
    ]
    for name, m in photos["models"].items():
        lines.append(_photo_row(name, m))
    if photos.get("unseen"):
        lines += ["", f"The {photos['unseen']['n_files']} of them that no student distilled on "
                      "(`train.data.photo_halves`):",
                  "", "| model | called fake (95 % Wilson CI) | uncertain | called real | median P(fake) |",
                  "|---|---|---|---|---|"]
        lines += [_photo_row(name, m) for name, m in photos["unseen"]["models"].items()]
    return "\n".join(lines) + "\n"


def rule_cuts(rule: dict) -> str:
    """A recorded decision rule's two cuts: P(fake) below the first is real, above the second fake."""
    real_cut, fake_cut = decision_cuts(rule["threshold"], rule["uncertain_band"], rule.get("fake_above"))
    return f"{real_cut:.3f} / {fake_cut:.3f}"


def photo_robustness_markdown(result: dict) -> str:
    """The result of ``train.photo_robustness`` as a Markdown table: real faces called fake per degradation."""
    lines = ["| degradation | called fake (95 % Wilson CI) | uncertain | called real | median P(fake) |",
             "|---|---|---|---|---|"]
    lines += [_photo_row(name, {**d, "n_scored": result["n_scored"]}) for name, d in result["degradations"].items()]
    return "\n".join(lines)


def _photo_row(name: str, m: dict) -> str:
    fake = m["fake_share"]
    return (f"| {name} | {_pct(fake['value'])} ({fake['count']} of {m['n_scored']}; "
            f"{_pct(fake['ci_low'])}–{_pct(fake['ci_high'])}) | {_pct(m['uncertain_share'])} | "
            f"{_pct(m['real_share'])} | {_num(m['median_p_fake'])} |")


def robustness_markdown(result: dict) -> str:
    """The result of ``robustness_table`` as a Markdown table (model cards, the CLI's summary)."""
    lines = ["| degradation | what | ROC-AUC (95 % CI) | change vs clean (95 % CI) | confident verdicts reversed |",
             "|---|---|---|---|---|"]
    for name, d in result["degradations"].items():
        auc, change, share = d["roc_auc"], d["auc_change"], d["reversal_share"]
        auc_text = f"{auc['value']:.4f} ({auc['ci_low']:.4f}-{auc['ci_high']:.4f})"
        if name == result["suite"][0]:
            change_text, reversed_text = "reference", "reference"
        else:
            change_text = f"{change['value']:+.4f} ({change['ci_low']:+.4f} to {change['ci_high']:+.4f})"
            reversed_text = ("n/a" if share is None else
                             f"{100 * share:.1f} % ({d['n_reversed']}/{result['n_confident_clean']})")
        lines.append(f"| {name} | {d['description']} | {auc_text} | {change_text} | {reversed_text} |")
    return "\n".join(lines)
