"""Calibration sets built from the shared eval data, the eval's CMRC scores, and the policy sweep over
stored drafts (which needs no model: a draft is scored once, then judged under each policy)."""

import json
import random
from pathlib import Path

import pytest

from assistant.decide import VerifyPolicy
from assistant.quality import calibration, tune
from assistant.quality.evaluate import cmrc_em, cmrc_f1

from conftest import SHARED


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, calibration.CalibrationSet]:
    root = tmp_path_factory.mktemp("calibration")
    return {name: calibration.build(name, root, SHARED / "eval") for name in calibration.SETS}


def items(cal: calibration.CalibrationSet) -> list[dict]:
    return [json.loads(line) for line in cal.qa.read_text(encoding="utf-8").splitlines()]


def test_drcd_is_split_by_article_so_thresholds_and_gate_never_share_an_article(sets):
    drcd = items(sets["drcd"])
    assert len(drcd) == 3524 and sum(not i["answerable"] for i in drcd) == 417
    by_article: dict[str, set[str]] = {}
    for i in drcd:
        key = "-".join(Path(i.get("source") or i["withheld"]).stem.split("-")[:3])
        by_article.setdefault(key, set()).add(i["split"])
    assert all(len(splits) == 1 for splits in by_article.values())
    share = sum(i["split"] == "calibrate" for i in drcd) / len(drcd)
    assert 0.35 < share < 0.65


def test_withheld_cmrc_passages_leave_the_corpus_and_their_questions_become_unanswerable(sets):
    cal = sets["cmrc-withheld"]
    withheld = {i["withheld"] for i in items(cal) if not i["answerable"]}
    present = {p.name for p in cal.corpus.glob("*.txt")}
    assert withheld and not withheld & present and len(present) + len(withheld) == 256
    assert all(i["source"] in present for i in items(cal) if i["answerable"])


def test_a_shifted_question_changes_one_constraint_to_a_value_its_article_lacks(sets):
    shifted = items(sets["shifted"])
    assert len(shifted) >= 300 and not any(i["answerable"] for i in shifted)
    corpus = SHARED / "eval" / "drcd-dev" / "corpus"
    for item in random.Random(0).sample(shifted, 40):
        kind, change = item["shift"].split(" ", 1)
        old, new = change.split("→")
        assert item["turns"][0] == item["original"].replace(old, new, 1) and old != new
        article = "-".join(Path(item["near"]).stem.split("-")[:3])
        assert not any(new in p.read_text(encoding="utf-8") for p in corpus.glob(f"{article}-*.txt")), item


def test_cmrc_f1_and_em_follow_the_official_scorer():
    assert cmrc_em("【1】“温带季风气候”。[1]", ["温带季风气候"]) == 1.0
    assert cmrc_f1("秦岭以北是温带季风气候 [1]", ["温带季风气候"]) == pytest.approx(12 / 17)  # P 6/11, R 1
    assert cmrc_f1("Step-3 has 321B parameters", ["321B parameters"]) == pytest.approx(
        2 / 3
    )  # step3 has 321b parameters
    assert cmrc_f1("无关", ["温带"]) == 0.0


def draft(answerable: bool, text: str, question: str, passage: str, answers: list[str]) -> dict:
    hit = {"chunk_id": "c", "source": "a.txt", "title": "赛事", "section": "", "paragraph": 1, "start": 0,
           "end": len(passage), "text": passage, "rank": 1, "score": 1.0, "keyword_rank": 1}  # fmt: skip
    return {"id": text, "set": "drcd", "split": "calibrate", "answerable": answerable, "answers": answers,
            "question": question, "query": question, "hits": [hit], "draft": text}  # fmt: skip


def test_the_sweep_scores_stored_drafts_and_picks_a_point_that_refuses_what_it_should():
    passage = "2019 年第七届城市马拉松于 4 月举行。男子组冠军是张三,成绩 2 小时 10 分。"
    records = [
        draft(True, "男子组冠军是张三 [1]。", "2019 年马拉松男子组冠军是谁？", passage, ["张三"]),
        draft(False, "男子组冠军是张三 [1]。", "2019 年马拉松女子组冠军是谁？", passage, []),
        draft(False, "冠军是张三 [1]。", "2021 年马拉松男子组冠军是谁？", passage, []),
    ]
    prepared = tune.prepare(records)
    lenient = VerifyPolicy(constraints=False, kind=False)
    assert tune.metrics(prepared, lenient)["refusal_accuracy"] == 0.0
    rows = tune.sweep(prepared, tune.grid())
    policy, chosen = tune.choose(rows)
    assert chosen["refusal_accuracy"] == 1.0 and chosen["answer_accuracy"] == 1.0 and policy.constraints
