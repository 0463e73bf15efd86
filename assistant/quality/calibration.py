"""Calibration sets: the questions refusal and verification thresholds are chosen on (never the article dev set).

Four sets, each with answerable questions and unanswerable ones that still find passages on their topic:
- `drcd`: DRCD dev (331 questions whose paragraph was withheld while its siblings stay; the corrected file);
- `cmrc-withheld`: CMRC trial with a seeded fifth of its passages withheld, so their questions lose their answer;
- `shifted`: answerable DRCD questions with one constraint changed (a year, an ordinal, a qualifier such as
  男子→女子) to a value no paragraph of that article holds, so the same passage still matches closely;
- `swapped`: answerable DRCD questions with one name (person, place, organisation, other proper noun)
  replaced by a name of the same kind from another article of the corpus that this article never holds:
  a false premise.
The two premise sets also hold the original (answerable) question of each changed one, so no sample of
them is all unanswerable. Every item gets a `split` by its article: thresholds are chosen on `calibrate`,
the quality gate checks `holdout`. Sets are built deterministically into a cache directory named by the
hash of the data and of this module (`cache_key`): a changed file or builder makes a new one, never a
stale reuse. Answering them is `collect`'s, sweeping the cut-offs over the answers `tune`'s.
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
from assistant.settings import default_eval_root

SETS = ("drcd", "cmrc-withheld", "shifted", "swapped")
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


def cache_key(eval_root: Path) -> str:
    """A short hash of what the sets are built from: the question files, the corpus file names and this
    module's code. Sets live under `root/<key>/`: a corrected file or a changed builder never reuses a stale cache."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for data in ("drcd-dev", "cmrc2018-trial"):
        digest.update((eval_root / data / "qa.jsonl").read_bytes())
        digest.update("\n".join(sorted(p.name for p in (eval_root / data / "corpus").glob("*.txt"))).encode())
    return digest.hexdigest()[:12]


def build(name: str, root: Path, eval_root: Path | None = None) -> CalibrationSet:
    """The set `name` under `root/<cache_key>/name` (built once; rebuilt if the files are missing), from the data
    in `eval_root` (default: `settings.default_eval_root()`). `<set>@<split>` is one half of a set over a corpus
    of that half's articles only (half the indexing: the gate)."""
    eval_root = eval_root or default_eval_root()
    if not (eval_root / "drcd-dev").is_dir():
        raise ConfigurationError(
            f"calibration data is missing: expected {eval_root}/drcd-dev and cmrc2018-trial; run from a checkout of"
            " the repository (its data/eval) or set ASSISTANT_EVAL_DIR to a copy of data/eval"
        )
    return _build(name, root / cache_key(eval_root), eval_root)


def _build(name: str, root: Path, eval_root: Path) -> CalibrationSet:
    if "@" in name:
        return _half(name, root, eval_root)
    if name not in SETS:
        raise ConfigurationError(f"no calibration set {name!r}: choose one of {', '.join(SETS)}")
    out = root / name
    qa = out / "qa.jsonl"
    drcd = eval_root / "drcd-dev"
    corpus = out / "corpus" if name == "cmrc-withheld" else drcd / "corpus"
    if not qa.exists() or not corpus.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        if name == "drcd":
            items = [_with_split(i, _article(i)) for i in _read(drcd / "qa.jsonl")]
        elif name == "shifted":
            items = with_originals(shifted_items(_read(drcd / "qa.jsonl"), drcd / "corpus"), _read(drcd / "qa.jsonl"))
        elif name == "swapped":
            items = with_originals(swapped_items(_read(drcd / "qa.jsonl"), drcd / "corpus"), _read(drcd / "qa.jsonl"))
        else:
            items = _withhold_cmrc(eval_root / "cmrc2018-trial", corpus)
        _write(qa, items)
    return CalibrationSet(name, corpus, qa)


def _half(name: str, root: Path, eval_root: Path) -> CalibrationSet:
    base, split = name.split("@", 1)
    if split not in ("calibrate", "holdout"):
        raise ConfigurationError(f"{name!r}: the split after @ is calibrate or holdout")
    full = _build(base, root, eval_root)
    qa = root / name / "qa.jsonl"
    # changed questions are asked over DRCD's corpus: they share that half's copy
    over_drcd = base in ("shifted", "swapped")
    corpus = _build(f"drcd@{split}", root, eval_root).corpus if over_drcd else root / name / "corpus"
    if not qa.exists() or not corpus.is_dir():
        if not over_drcd:
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
    articles = _articles(corpus)
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


def with_originals(changed: list[dict], items: list[dict]) -> list[dict]:
    """The changed (unanswerable) questions and, after them, the answerable question each was made from."""
    by_id = {i["id"]: i for i in items}
    originals = [by_id[c["id"].rsplit("-", 1)[0]] for c in changed]
    return changed + [{**o, "split": c["split"]} for o, c in zip(originals, changed, strict=True)]


def _articles(corpus: Path) -> dict[str, str]:
    articles: dict[str, str] = {}
    for path in sorted(corpus.glob("*.txt")):
        key = "-".join(path.stem.split("-")[:3])
        articles[key] = articles.get(key, "") + path.read_text(encoding="utf-8")
    return articles


NAME_FLAGS = ("nr", "ns", "nt", "nz")  # people, places, organisations, other proper nouns (jieba's tags)


def swapped_items(items: list[dict], corpus: Path, limit: int = 600) -> list[dict]:
    """Answerable questions with one name that their passage holds replaced by a name of the same kind
    from another article's questions that this article never holds (a false premise)."""
    import jieba.posseg as pseg

    articles = _articles(corpus)
    tagged, pool = [], {flag: set() for flag in NAME_FLAGS}  # type: ignore[var-annotated]
    for item in items:
        if not item.get("answerable"):
            continue
        text = articles.get(_article(item), "")
        found = sorted(
            {(w, f) for w, f in pseg.cut(item["turns"][-1]) if f in NAME_FLAGS and len(w) >= 2 and w in text}
        )
        tagged.append((item, found))
        for w, f in found:
            pool[f].add(w)
    rng = random.Random(SEED)
    out = []
    for item, found in tagged:
        if not found:
            continue
        old, flag = rng.choice(found)
        article = articles.get(_article(item), "")
        others = sorted(w for w in pool[flag] if w not in article and old not in w and w not in old)
        if not others:
            continue
        new = rng.choice(others)
        key = _article(item)
        out.append(
            {"id": f"{item['id']}-swapped", "turns": [item["turns"][-1].replace(old, new, 1)], "type": "swapped",
             "answers": [], "evidence": [], "answerable": False, "shift": f"name {old}→{new}",
             "original": item["turns"][-1], "near": item.get("source"), "split": split_of(key)}
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
