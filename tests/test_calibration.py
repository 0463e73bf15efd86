"""Calibration sets built from the shared eval data, the eval's CMRC scores, and the policy sweep over
stored drafts (which needs no model: a draft is scored once, then judged under each policy)."""

import json
import random
from pathlib import Path

import pytest

from assistant.checks.decide import VerifyPolicy
from assistant.errors import ConfigurationError
from assistant.quality import calibration, tune
from assistant.quality.evaluate import cmrc_em, cmrc_f1

from conftest import EVAL


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, calibration.CalibrationSet]:
    root = tmp_path_factory.mktemp("calibration")
    return {name: calibration.build(name, root, EVAL) for name in calibration.SETS}


def items(cal: calibration.CalibrationSet) -> list[dict]:
    return [json.loads(line) for line in cal.qa.read_text(encoding="utf-8").splitlines()]


def test_drcd_is_split_by_article_so_thresholds_and_gate_never_share_an_article(sets):
    drcd = items(sets["drcd"])
    assert len(drcd) == 3438 and sum(not i["answerable"] for i in drcd) == 331  # the corrected DRCD-dev
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
    every = items(sets["shifted"])
    shifted = [i for i in every if not i["answerable"]]
    assert len(shifted) >= 300
    corpus = EVAL / "drcd-dev" / "corpus"
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


def test_a_premise_set_holds_each_changed_question_and_its_answerable_original(sets):
    for name in ("shifted", "swapped"):
        every = items(sets[name])
        changed = [i for i in every if not i["answerable"]]
        originals = {i["turns"][0]: i for i in every if i["answerable"]}
        assert len(changed) == len(originals) >= 300, name
        assert all(originals[i["original"]]["split"] == i["split"] for i in changed), "same article, same half"


def test_a_swapped_question_names_something_its_article_never_mentions(sets):
    swapped = [i for i in items(sets["swapped"]) if not i["answerable"]]
    corpus = EVAL / "drcd-dev" / "corpus"
    for item in random.Random(0).sample(swapped, 40):
        old, new = item["shift"].removeprefix("name ").split("→")
        assert item["turns"][0] == item["original"].replace(old, new, 1) and old != new
        article = "-".join(Path(item["near"]).stem.split("-")[:3])
        texts = [p.read_text(encoding="utf-8") for p in corpus.glob(f"{article}-*.txt")]
        assert any(old in t for t in texts) and not any(new in t for t in texts), item


def test_sets_are_rebuilt_when_their_data_or_builder_changes(tmp_path: Path):
    """The cache is keyed by the hash of the data and of the builder: a corrected file is never read stale."""
    data = tmp_path / "eval"
    for name in ("drcd-dev", "cmrc2018-trial"):
        (data / name / "corpus").mkdir(parents=True)
        (data / name / "corpus" / "a.txt").write_text("甲", encoding="utf-8")
        (data / name / "qa.jsonl").write_text("", encoding="utf-8")
    before = calibration.cache_key(data)
    (data / "drcd-dev" / "qa.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    assert calibration.cache_key(data) != before


def test_the_data_is_found_from_a_checkout_or_where_the_user_says(tmp_path: Path, monkeypatch):
    """A non-editable install finds data/eval in the checkout it runs from, or in ASSISTANT_EVAL_DIR; without
    either, calibration says what to do (nothing outside the repository is read)."""
    from assistant.settings import PROJECT_EVAL, default_eval_root

    monkeypatch.chdir(tmp_path)
    assert default_eval_root({}) == PROJECT_EVAL == EVAL
    (tmp_path / "data" / "eval").mkdir(parents=True)
    assert default_eval_root({}) == tmp_path / "data" / "eval"
    assert default_eval_root({"ASSISTANT_EVAL_DIR": str(tmp_path / "mine")}) == tmp_path / "mine"
    monkeypatch.setenv("ASSISTANT_EVAL_DIR", str(tmp_path / "mine"))
    with pytest.raises(ConfigurationError, match="ASSISTANT_EVAL_DIR"):
        calibration.build("drcd", tmp_path / "cache")


def test_content_free_twins_restate_the_question_and_are_refused_by_the_chosen_policy():
    passage = "2019 年第七届城市马拉松于 4 月举行。男子组冠军是张三,成绩 2 小时 10 分。"
    records = [draft(True, "男子组冠军是张三 [1]。", "2019 年马拉松男子组冠军是谁？", passage, ["张三"])]
    [twin] = tune.content_free(records)
    assert twin["draft"] == "2019 年马拉松男子组冠军。[1]" and not twin["answerable"]
    prepared = tune.prepare([*records, twin])
    assert tune.metrics(prepared, VerifyPolicy())["refusal_accuracy"] == 1.0
    assert tune.metrics(prepared, VerifyPolicy(min_answer_content=0.0, kind=False))["refusal_accuracy"] == 0.0


def test_rule_effects_count_what_each_rule_prevents_and_costs():
    passage = "2019 年第七届城市马拉松于 4 月举行。男子组冠军是张三,成绩 2 小时 10 分。"
    records = [
        draft(True, "男子组冠军是张三 [1]。", "2019 年马拉松男子组冠军是谁？", passage, ["张三"]),
        draft(False, "冠军是张三 [1]。", "2021 年马拉松男子组冠军是谁？", passage, []),
    ]
    rows = {r["rule"]: r for r in tune.rule_effects(tune.prepare(records), VerifyPolicy())}
    constraints = rows["constraints: years, ordinals, qualifiers"]
    assert constraints["wrong_answers_prevented"] == 1 and constraints["false_refusals_caused"] == 0
