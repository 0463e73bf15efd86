"""Calibration sets: the questions refusal and verification thresholds are chosen on (never the article dev set).

Three sets, each with answerable questions and unanswerable ones that still find passages on their topic:
- `drcd`: DRCD dev as shipped (417 questions whose paragraph was withheld while its siblings stay);
- `cmrc-withheld`: CMRC trial with a seeded fifth of its passages withheld, so their questions lose their answer;
- `shifted`: answerable DRCD questions with one constraint changed (a year, an ordinal, a qualifier such as
  男子→女子, a name) to a value no paragraph of that article holds, so the same passage still matches closely.
Every item gets a `split` by its article: thresholds are chosen on `calibrate`, the quality gate checks
`holdout`. Sets are built deterministically into a cache directory; answering and sweeping them is `tune`'s.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ConfigurationError

EVAL_ROOT = Path(__file__).resolve().parents[3] / "shared" / "eval"
SETS = ("drcd", "cmrc-withheld", "shifted")
WITHHELD_SHARE = 0.2
SEED = 11
# Qualifiers that distinguish one fact from its neighbour; each is swapped for its partner.
QUALIFIER_PAIRS = (
    ("男子", "女子"), ("男性", "女性"), ("上半年", "下半年"), ("东部", "西部"), ("南部", "北部"),
    ("最大", "最小"), ("最高", "最低"), ("最早", "最晚"), ("首日", "次日"), ("上游", "下游"),
    ("冬季", "夏季"), ("春季", "秋季"), ("第一", "第二"),
)  # fmt: skip
_ORDINAL = re.compile(r"第([一二三四五六七八九十]{1,3}|\d{1,3})(届|次|代|任|个|名|位|世|季|章|部|期|场|轮|集|号)")
_YEAR = re.compile(r"(?<!\d)(1\d{3}|20\d{2})(?=年)")
_CN_DIGITS = "零一二三四五六七八九"


@dataclass(frozen=True)
class CalibrationSet:
    name: str
    corpus: Path
    qa: Path  # JSON Lines in the shared eval format, plus `split` (and `shift` for shifted items)


def build(name: str, root: Path, eval_root: Path = EVAL_ROOT) -> CalibrationSet:
    """The set `name` under `root/name` (built once; rebuilt if the files are missing). `<set>@<split>`
    is one half of a set over a corpus of that half's articles only (half the indexing, for the gate)."""
    if "@" in name:
        return _half(name, root, eval_root)
    if name not in SETS:
        raise ConfigurationError(f"no calibration set {name!r}: choose one of {', '.join(SETS)}")
    if not (eval_root / "drcd-dev").is_dir():
        raise ConfigurationError(f"calibration data is missing: expected {eval_root}/drcd-dev and cmrc2018-trial")
    out = root / name
    qa = out / "qa.jsonl"
    drcd = eval_root / "drcd-dev"
    corpus = out / "corpus" if name == "cmrc-withheld" else drcd / "corpus"
    if not qa.exists() or not corpus.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        if name == "drcd":
            items = [_with_split(i, _article(i)) for i in _read(drcd / "qa.jsonl")]
        elif name == "shifted":
            items = shifted_items(_read(drcd / "qa.jsonl"), drcd / "corpus")
        else:
            items = _withhold_cmrc(eval_root / "cmrc2018-trial", corpus)
        _write(qa, items)
    return CalibrationSet(name, corpus, qa)


def _half(name: str, root: Path, eval_root: Path) -> CalibrationSet:
    base, split = name.split("@", 1)
    if split not in ("calibrate", "holdout"):
        raise ConfigurationError(f"{name!r}: the split after @ is calibrate or holdout")
    full = build(base, root, eval_root)
    qa = root / name / "qa.jsonl"
    # shifted questions are asked over DRCD's corpus: they share that half's copy
    corpus = build(f"drcd@{split}", root, eval_root).corpus if base == "shifted" else root / name / "corpus"
    if not qa.exists() or not corpus.is_dir():
        if base != "shifted":
            _copy_half(full.corpus, corpus, split)
        _write(qa, [i for i in _read(full.qa) if i["split"] == split])
    return CalibrationSet(name, corpus, qa)


def _copy_half(source: Path, target: Path, split: str) -> None:
    """The files of `source` whose article falls in `split`."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.txt")):
        key = "-".join(path.stem.split("-")[:3]) if path.stem.startswith("drcd") else path.name
        if split_of(key) == split:
            shutil.copyfile(path, target / path.name)


def _write(path: Path, items: list[dict]) -> None:
    """JSON Lines written aside and renamed into place, so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    tmp.replace(path)


def split_of(key: str) -> str:
    """'calibrate' or 'holdout', by a stable hash of the article key (half each)."""
    return "calibrate" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "holdout"


def _with_split(item: dict, key: str) -> dict:
    return {**item, "split": split_of(key)}


def _article(item: dict) -> str:
    """DRCD files are `drcd-dev-<article>-<paragraph>.txt`; the article groups sibling paragraphs."""
    name = item.get("source") or item.get("withheld") or item["id"]
    return "-".join(Path(name).stem.split("-")[:3])


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _withhold_cmrc(cmrc: Path, corpus: Path) -> list[dict]:
    """Copy CMRC trial's corpus without a seeded share of its passages; their questions become unanswerable."""
    files = sorted(p.name for p in (cmrc / "corpus").glob("*.txt"))
    withheld = set(random.Random(SEED).sample(files, round(len(files) * WITHHELD_SHARE)))
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    for name in files:
        if name not in withheld:
            shutil.copyfile(cmrc / "corpus" / name, corpus / name)
    items = []
    for item in _read(cmrc / "qa.jsonl"):
        split = split_of(item.get("source", item["id"]))
        if item.get("source") in withheld:
            item = {**item, "answerable": False, "type": "unanswerable", "answers": [], "evidence": []}
            item["withheld"] = item.pop("source")
        items.append({**item, "split": split})
    return items


def shifted_items(items: list[dict], corpus: Path, limit: int = 600) -> list[dict]:
    """Answerable questions with one constraint moved to a value the article does not hold."""
    articles: dict[str, str] = {}
    for path in sorted(corpus.glob("*.txt")):
        key = "-".join(path.stem.split("-")[:3])
        articles[key] = articles.get(key, "") + path.read_text(encoding="utf-8")
    rng = random.Random(SEED)
    out = []
    for item in items:
        if not item.get("answerable"):
            continue
        key = _article(item)
        shifted = shift_question(item["turns"][-1], articles.get(key, ""), rng)
        if shifted:
            question, change = shifted
            out.append(
                {"id": f"{item['id']}-shifted", "turns": [question], "type": "shifted", "answers": [], "evidence": [],
                 "answerable": False, "shift": change, "original": item["turns"][-1], "near": item.get("source"),
                 "split": split_of(key)}
            )  # fmt: skip
    rng.shuffle(out)
    return sorted(out[:limit], key=lambda i: i["id"])


def shift_question(question: str, article: str, rng: random.Random) -> tuple[str, str] | None:
    """The question with one constraint changed to a value absent from `article`, and what changed."""
    for m in _YEAR.finditer(question):
        for delta in rng.sample([-3, -2, -1, 1, 2, 3], 6):
            year = str(int(m.group(1)) + delta)
            if year not in article:
                return question[: m.start()] + year + question[m.end() :], f"year {m.group(1)}→{year}"
    for m in _ORDINAL.finditer(question):
        n = _ordinal_value(m.group(1))
        for shifted in (n + 1, n + 2, n - 1):
            if shifted < 1:
                continue
            written = str(shifted) if m.group(1).isdigit() else _chinese_number(shifted)
            replacement = f"第{written}{m.group(2)}"
            if replacement not in article and f"第{shifted}{m.group(2)}" not in article:
                return question.replace(m.group(), replacement, 1), f"ordinal {m.group()}→{replacement}"
    for a, b in QUALIFIER_PAIRS:
        for old, new in ((a, b), (b, a)):
            if old in question and new not in article:
                return question.replace(old, new, 1), f"qualifier {old}→{new}"
    return None


def _ordinal_value(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    tens, _, ones = text.partition("十")
    if "十" not in text:
        return _CN_DIGITS.index(text[-1]) if len(text) == 1 else 0
    return (_CN_DIGITS.index(tens) if tens else 1) * 10 + (_CN_DIGITS.index(ones) if ones else 0)


def _chinese_number(n: int) -> str:
    if n < 10:
        return _CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _CN_DIGITS[tens]) + "十" + (_CN_DIGITS[ones] if ones else "")
