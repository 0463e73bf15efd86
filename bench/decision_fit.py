"""A learned answer decision, measured on the held-out half: logistic regression over the signals the
shipped models and checks give for each stored draft, against today's hand cut-offs (issue 30, step 3).

    python bench/decision_fit.py [--ptrue docs/calibration/ptrue.jsonl]

Fitted on the `calibrate` half of docs/calibration/drafts.jsonl, judged on the `holdout` half: for each
threshold the share of drafts answered and the accuracy of what is answered (a selective-answering curve,
Kamath, Jia & Liang 2020), and the gate's metrics at the threshold that refuses as many answerable
questions as today's rules do. The rules' refusals before the model stay as they are (they refuse at most
1 in 100 answerable questions); only the decision after the model is learned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.checks.decide import MODEL_REFUSES, VerifyPolicy, judge, judge_evidence  # noqa: E402
from assistant.quality import calibration, tune  # noqa: E402
from assistant.quality.gate import default_index_root  # noqa: E402

SCORES = ("nouns", "content", "overlap", "qa_nouns", "qa_content", "question_nouns", "question_content",
          "question_at_answer")  # fmt: skip


def features(p: tune.Prepared, ptrue: dict[str, Any] | None) -> dict[str, float]:
    """What the decision may look at for one draft: the lexical scores of its best-supported sentence (as
    inputs, not rules), the hard checks, the retrieval scores, and the model's own P(True)."""
    policy = VerifyPolicy()
    best = None
    for sentence in p.scored:
        for check in sentence.checks:
            key = (not check.failed, policy.support_fails(check) is None, check.passage in sentence.cited,
                   check.scores.get("nouns", 0) + check.scores.get("content", 0))  # fmt: skip
            if best is None or key > best[0]:
                best = (key, check)
    f: dict[str, float] = {"sentences": float(len(p.scored))}
    check = best[1] if best else None
    for name in SCORES:
        f[name] = float(check.scores.get(name, 0.0)) if check else 0.0
    f["answer_content"] = min(float(check.scores.get("answer_content", 0.0)), 10.0) / 10 if check else 0.0
    f["hard_failed"] = float(bool(check.failed)) if check else 1.0
    f["unbound"] = float(bool(check.unbound)) if check else 0.0
    f["unmet"] = float(bool(check.unmet)) if check else 0.0
    f["kind_ok"] = float(check.kind_ok) if check else 0.0
    f["declined"] = float(bool(MODEL_REFUSES.search(p.record["draft"])))
    f["rules_answer"] = float(judge(p.scored, policy).answers and bool(judge(p.scored, policy).claims))
    top = p.record["hits"][0] if p.record["hits"] else {}
    f["top_score"] = float(top.get("score") or 0.0)
    f["top_dense"] = float(top.get("dense_score") or 0.0)
    f["top_keyword"] = float(top.get("keyword_rank") is not None)
    f["evidence_nouns"] = float(p.evidence.get("nouns", 1.0))
    f["evidence_content"] = float(p.evidence.get("content", 1.0))
    if ptrue is not None:
        f["ptrue_margin"] = float(ptrue["margin"])
        f["ptrue_yes"] = float(np.exp(ptrue["yes"]))
    return f


def add_similarity(prepared: list[tune.Prepared], rows: list[dict[str, float]]) -> None:
    """The packaged e5 model's cosine between the question and the draft's closest passage sentence, and
    between the question and the draft itself."""
    from assistant.models.embeddings import make_embeddings, similarity

    sim = similarity(make_embeddings("e5-small"))
    for p, row in zip(prepared, rows, strict=True):
        quotes = [c.quote for s in p.scored for c in s.checks[:1] if c.quote] or [""]
        scores = sim(p.record["question"], [*quotes, p.record["draft"]])
        row["e5_quote"], row["e5_draft"] = max(scores[:-1]), scores[-1]


def groups_auc(rows: list[dict[str, float]], y: np.ndarray, fit: np.ndarray) -> None:
    """5-fold cross-validated AUC on the calibrate half of each group of signals, alone and together."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    groups = {
        "lexical + retrieval (today's inputs)": lambda n: not n.startswith(("ptrue", "e5")),
        "P(True) alone": lambda n: n.startswith("ptrue"),
        "e5 similarity alone": lambda n: n.startswith("e5"),
        "lexical + retrieval + P(True)": lambda n: not n.startswith("e5"),
        "lexical + retrieval + e5": lambda n: not n.startswith("ptrue"),
        "all": lambda n: True,
    }
    for name, keep in groups.items():
        names = [n for n in rows[0] if keep(n)]
        if not names:
            continue
        x = np.array([[r[n] for n in names] for r in rows])[fit]
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
        p = cross_val_predict(LogisticRegression(max_iter=2000), x, y[fit], cv=5, method="predict_proba")[:, 1]
        print(f"  {name}: AUC {roc_auc_score(y[fit], p):.3f}")


def label(p: tune.Prepared) -> int:
    """1: answering with this draft is right (the question is answerable and the draft holds the answer)."""
    return int(p.record["answerable"] and tune.right(p.record, p.record["draft"]))


def gate_metrics(prepared: list[tune.Prepared], answer: list[bool]) -> dict[str, float]:
    """The gate's metrics for a decision per draft (refusals before the model stay the rules')."""
    ans = [(p, a) for p, a in zip(prepared, answer, strict=True) if p.record["answerable"]]
    unans = [(p, a) for p, a in zip(prepared, answer, strict=True) if not p.record["answerable"]]
    right = sum(a and tune.right(p.record, p.record["draft"]) for p, a in ans)
    answered = sum(answer)
    wrong = sum(a and not tune.right(p.record, p.record["draft"]) for p, a in ans) + sum(a for _, a in unans)
    return {
        "answer_accuracy": round(right / len(ans), 3),
        "refusal_accuracy": round(sum(not a for _, a in unans) / len(unans), 3),
        "false_refusal_rate": round(sum(not a for _, a in ans) / len(ans), 3),
        "wrong_answer_rate": round(wrong / answered, 3) if answered else 0.0,
        "answered": answered,
    }


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptrue", default=str(ROOT / "docs" / "calibration" / "ptrue.jsonl"))
    parser.add_argument("--without", nargs="*", default=[], help="signals to leave out (an ablation)")
    args = parser.parse_args()
    records = [json.loads(line) for line in (ROOT / "docs/calibration/drafts.jsonl").read_text().splitlines()]
    ptrue_path = Path(args.ptrue)
    ptrue = {}
    if ptrue_path.exists():
        ptrue = {r["id"]: r for r in map(json.loads, ptrue_path.read_text().splitlines())}
        records = [r for r in records if r["id"] in ptrue]
    root = default_index_root().parent / "calibration"
    leads = tune.LeadIns({name: calibration.build(name, root).corpus for name in calibration.SETS})
    prepared = tune.prepare(records, leads=leads)
    early = [judge_evidence(p.evidence, VerifyPolicy()).refused for p in prepared]
    rows = [features(p, ptrue.get(p.record["id"])) for p in prepared]
    add_similarity(prepared, rows)
    names = [n for n in rows[0] if not any(n.startswith(w) for w in args.without)]
    x = np.array([[r[n] for n in names] for r in rows])
    y = np.array([label(p) for p in prepared])
    split = np.array([p.record["split"] for p in prepared])
    fit, held = split == "calibrate", split == "holdout"
    print("which signals tell a right draft from a wrong one (calibrate half, 5-fold cross-validated):")
    groups_auc(rows, y, fit)
    mean, std = x[fit].mean(0), x[fit].std(0) + 1e-9
    clf = LogisticRegression(C=1.0, max_iter=2000).fit((x[fit] - mean) / std, y[fit])
    prob = clf.predict_proba((x - mean) / std)[:, 1]
    h = [i for i in range(len(prepared)) if held[i]]
    held_prepared = [prepared[i] for i in h]
    rules = [tune.outcome(prepared[i], VerifyPolicy())[0] for i in h]
    rules_answer = [not d.refused for d in rules]
    print(f"drafts: {fit.sum()} calibrate, {held.sum()} holdout; signals: {', '.join(names)}")
    print("rules (today's VerifyPolicy), holdout:", gate_metrics(held_prepared, rules_answer))
    print("\nlearned, holdout: threshold -> share answered, accuracy of answered, gate metrics")
    curve = []
    for t in np.linspace(0.05, 0.95, 19):
        answer = [not early[i] and prob[i] >= t for i in h]
        m = gate_metrics(held_prepared, answer)
        good = sum(a and label(prepared[i]) for a, i in zip(answer, h, strict=True))
        curve.append({"threshold": round(float(t), 2), "answered": m["answered"] / len(h),
                      "accuracy_answered": good / m["answered"] if m["answered"] else None, **m})  # fmt: skip
        print(f"  {t:.2f}: {m['answered'] / len(h):.2f} answered, "
              f"{(good / m['answered'] if m['answered'] else 0):.2f} right; {m}")  # fmt: skip
    rules_fr = gate_metrics(held_prepared, rules_answer)["false_refusal_rate"]
    same = min(curve, key=lambda c: abs(c["false_refusal_rate"] - rules_fr))
    print(f"\nat the rules' false-refusal rate ({rules_fr}): {same}")
    order = np.argsort(-np.abs(clf.coef_[0]))
    print("weights (standardised):", ", ".join(f"{names[i]} {clf.coef_[0][i]:+.2f}" for i in order))


if __name__ == "__main__":
    main()
