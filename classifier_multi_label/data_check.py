"""What the data hides, before anything trains: `check_data(splits)` -> a JSON-able report.

Per split: rows, labels per text, label frequencies, rows without a label, text lengths. Across
the splits: labels found in one split only, exact and near-duplicate texts within a split and
across splits (leakage: a dev or test text that training has already seen, with both line
numbers), and identical texts given different labels (likely label noise).

Texts are compared after `normalize` (Unicode NFKC, case folded, runs of whitespace collapsed).
Near-duplicates: Jaccard similarity of character 3-gram sets of at least `NEAR_JACCARD`, found
with MinHash signatures and locality-sensitive hashing (`BANDS` bands of `ROWS` rows), so the
cost grows with the number of texts, not with the number of pairs; every candidate pair is
verified with its exact Jaccard similarity. Written with numpy (about 40 lines) rather than taking
a MinHash dependency for one function.

Example:
    >>> from classifier_multi_label.data import examples_from
    >>> train = examples_from((["制热很快", "声音很大", "外观漂亮，颜值很高"], [["制热"], ["噪音"], ["外观"]]), "train")
    >>> dev = examples_from((["制热很快", "外观漂亮，颜值很高!"], [["价格"], ["外观"]]), "dev")
    >>> report = check_data({"train": train, "dev": dev})
    >>> report["leakage"]["train/dev"]["exact"], report["leakage"]["train/dev"]["near"]
    (1, 1)
    >>> [[(r["split"], r["labels"]) for r in c["rows"]] for c in report["conflicting_labels"]]
    [[('train', ['制热']), ('dev', ['价格'])]]
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter, defaultdict

import numpy as np

NEAR_JACCARD = 0.8  # character 3-gram Jaccard similarity from which two texts are near-duplicates
SHINGLE = 3
BANDS, ROWS = 16, 4  # 64 MinHash values; a pair at Jaccard 0.8 becomes a candidate with probability 0.9993
PRIME = (1 << 31) - 1
MAX_LISTED = 20  # line numbers or pairs listed per finding (counts are always complete)
LARGE_BUCKET = 200  # a hash bucket with more texts is checked against its first text only


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(texts: list) -> tuple:
    """Every text's distinct character `SHINGLE`-grams as 31-bit hashes (a text shorter than that:
    one gram, the whole text): (values [grams] int64, sorted within each text; starts [texts])."""
    codes = [np.frombuffer(t.encode("utf-32-le"), np.uint32) for t in texts]
    lengths = np.array([max(len(c), SHINGLE) for c in codes])
    padded = np.zeros(int(lengths.sum()), np.int64)  # each text's code points, zero-padded to SHINGLE
    ends = np.cumsum(lengths)
    for c, end, n in zip(codes, ends, lengths):
        padded[end - n:end - n + len(c)] = c
    grams = lengths - SHINGLE + 1  # [texts]
    text = np.repeat(np.arange(len(texts)), grams)  # [grams] its text
    first = np.repeat(ends - lengths, grams) + (np.arange(grams.sum()) - np.repeat(np.cumsum(grams) - grams, grams))
    values = np.zeros(len(first), np.int64)
    for k in range(SHINGLE):  # a polynomial hash of the gram's code points, mod PRIME
        values = (values * 1_000_003 + padded[first + k]) % PRIME
    order = np.lexsort((values, text))
    text, values = text[order], values[order]
    keep = np.ones(len(values), bool)
    keep[1:] = (text[1:] != text[:-1]) | (values[1:] != values[:-1])  # distinct grams per text
    text, values = text[keep], values[keep]
    return values, np.searchsorted(text, np.arange(len(texts)))


def minhash(values: np.ndarray, starts: np.ndarray, seed: int = 0) -> np.ndarray:
    """[texts, BANDS * ROWS] MinHash signatures of the gram sets `shingles` returns: per hash
    function (a * x + b) mod PRIME, the minimum over each set."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, PRIME, BANDS * ROWS, dtype=np.int64)
    b = rng.integers(0, PRIME, BANDS * ROWS, dtype=np.int64)
    signatures = np.empty((len(starts), BANDS * ROWS), np.int64)
    for k in range(0, BANDS * ROWS, 8):  # 8 hash functions at a time bounds the memory
        hashed = a[k:k + 8, None] * values[None, :] + b[k:k + 8, None]  # [8, grams], below 2**63
        hashed = (hashed & PRIME) + (hashed >> 31)  # mod the Mersenne prime, without a division
        hashed = (hashed & PRIME) + (hashed >> 31)
        signatures[:, k:k + 8] = np.minimum.reduceat(hashed, starts, axis=1).T
    return signatures


def near_pairs(texts: list, threshold: float = NEAR_JACCARD) -> list:
    """[(i, j, jaccard)] with i < j for the distinct `texts` whose gram sets overlap by at least
    `threshold`; LSH candidates, each verified exactly."""
    if len(texts) < 2:
        return []
    values, starts = shingles(texts)
    signatures = minhash(values, starts)
    ends = np.append(starts[1:], len(values))
    candidates = set()
    for band in range(BANDS):
        key = np.zeros(len(texts), np.int64)
        for col in signatures[:, band * ROWS:(band + 1) * ROWS].T:  # one key per band (wraps around)
            key = key * 2_147_483_659 + col
        order = np.argsort(key, kind="stable")
        starts_of_runs = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0])
        sizes = np.diff(np.r_[starts_of_runs, len(order)])
        for start, size in zip(starts_of_runs[sizes > 1], sizes[sizes > 1]):
            members = np.sort(order[start:start + size]).tolist()
            if size > LARGE_BUCKET:
                candidates.update((members[0], j) for j in members[1:])
            else:
                candidates.update(itertools.combinations(members, 2))
    if not candidates:
        return []
    pairs = np.array(sorted(candidates))  # [candidates, 2]
    # The signatures' agreement estimates each pair's Jaccard similarity (standard error at most
    # 0.0625 with 64 values): only pairs within 3 errors of the threshold are counted exactly.
    estimate = (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1)
    pairs = pairs[estimate >= threshold - 0.19]
    ends = np.append(starts[1:], len(values))
    found = []
    for i, j in pairs.tolist():
        a, b = set(values[starts[i]:ends[i]].tolist()), set(values[starts[j]:ends[j]].tolist())
        jaccard = len(a & b) / len(a | b)
        if jaccard >= threshold:
            found.append((i, j, round(jaccard, 3)))
    return found


def _lines(rows: list) -> list:
    return rows[:MAX_LISTED]


def _split_summary(ex) -> dict:
    per_text = Counter(len(labels) for labels in ex.labels)
    lengths = np.array([len(t) for t in ex.texts] or [0])
    empty = [line for labels, line in zip(ex.labels, ex.lines) if not labels]
    return {"file": ex.path, "rows": len(ex), "label_rows": dict(sorted(Counter(
                label for labels in ex.labels for label in labels).most_common(), key=lambda kv: (-kv[1], kv[0]))),
            "labels_per_text": {"mean": round(float(np.mean([len(x) for x in ex.labels] or [0])), 3),
                                "max": max(per_text, default=0), "histogram": dict(sorted(per_text.items()))},
            "rows_without_a_label": {"count": len(empty), "lines": _lines(empty)},
            "characters": {"median": int(np.median(lengths)), "p99": int(np.percentile(lengths, 99)),
                           "max": int(lengths.max())}}


def check_data(splits: dict, near_threshold: float = NEAR_JACCARD, token_counts: dict | None = None,
               max_seq_length: int | None = None) -> dict:
    """`splits`: {"train": Examples, "dev": ..., "test": ...} (any of them, earlier splits first:
    leakage counts the later split's rows) -> the report (data_check.json). `token_counts`: per
    split, each text's tokens ([CLS] and [SEP] included), to list the texts `max_seq_length` cuts."""
    report = {"splits": {name: _split_summary(ex) for name, ex in splits.items()},
              "near_duplicate_jaccard": near_threshold}
    if token_counts is not None and max_seq_length is not None:
        report["cut_by_max_seq_length"] = {
            name: {"max_seq_length": max_seq_length, "count": int(np.sum(np.asarray(counts) > max_seq_length)),
                   "lines": _lines([line for n, line in zip(counts, splits[name].lines) if n > max_seq_length])}
            for name, counts in token_counts.items()}
    seen = {name: set(s["label_rows"]) for name, s in report["splits"].items()}
    report["labels_in_one_split_only"] = {
        name: sorted(labels - set().union(*(v for k, v in seen.items() if k != name)))
        for name, labels in seen.items() if len(seen) > 1}

    # Every row by its normalised text: exact duplicates and conflicting labels.
    rows = defaultdict(list)  # normalised text -> [(split, line, labels)]
    for name, ex in splits.items():
        for text, labels, line in zip(ex.texts, ex.labels, ex.lines):
            rows[normalize(text)].append((name, line, sorted(labels)))
    names = list(splits)
    pairs_of_splits = [f"{a}/{b}" for a, b in itertools.combinations(names, 2)]
    duplicates = {name: {"groups": 0, "rows": 0, "lines": []} for name in names}
    leakage = {key: {"exact": 0, "near": 0, "pairs": []} for key in pairs_of_splits}
    conflicts = []
    for text, group in rows.items():
        by_split = defaultdict(list)
        for name, line, _ in group:
            by_split[name].append(line)
        for name, lines in by_split.items():
            if len(lines) > 1:
                d = duplicates[name]
                d["groups"], d["rows"] = d["groups"] + 1, d["rows"] + len(lines)
                if len(d["lines"]) < MAX_LISTED:
                    d["lines"].append(lines)
        for a, b in itertools.combinations(names, 2):
            if by_split.get(a) and by_split.get(b):
                leak = leakage[f"{a}/{b}"]
                leak["exact"] += len(by_split[b])  # the later split's rows already seen in the earlier one
                if len(leak["pairs"]) < MAX_LISTED:
                    leak["pairs"].append({a: by_split[a][0], b: by_split[b][0], "jaccard": 1.0})
        if len({tuple(labels) for _, _, labels in group}) > 1:
            conflicts.append({"text": text[:200], "rows": [{"split": s, "line": line, "labels": labels}
                                                           for s, line, labels in group[:MAX_LISTED]]})

    # Near-duplicates among the distinct texts; a pair counts once per pair of splits it joins.
    distinct = list(rows)
    near = {name: {"pairs": 0, "listed": []} for name in names}
    counted = defaultdict(set)  # split pair -> later-split lines already counted as leaked
    for i, j, jaccard in near_pairs(distinct, near_threshold):
        for (sa, la, _), (sb, lb, _) in itertools.product(rows[distinct[i]], rows[distinct[j]]):
            if sa == sb:
                near[sa]["pairs"] += 1
                if len(near[sa]["listed"]) < MAX_LISTED:
                    near[sa]["listed"].append({"lines": sorted([la, lb]), "jaccard": jaccard})
                continue
            (first, l1), (second, l2) = sorted([(sa, la), (sb, lb)], key=lambda x: names.index(x[0]))
            key = f"{first}/{second}"
            if l2 not in counted[key]:
                counted[key].add(l2)
                leakage[key]["near"] += 1
            if len(leakage[key]["pairs"]) < MAX_LISTED:
                leakage[key]["pairs"].append({first: l1, second: l2, "jaccard": jaccard})
    report.update(duplicates=duplicates, near_duplicates=near, leakage=leakage,
                  conflicting_labels=conflicts[:MAX_LISTED], conflicting_label_groups=len(conflicts))
    return report


def problems(report: dict) -> list:
    """The findings `--strict` refuses: leakage across splits, identical texts with different labels."""
    found = [f"{key}: {v['exact']} exact and {v['near']} near-duplicate texts of the first split in the second"
             for key, v in report["leakage"].items() if v["exact"] or v["near"]]
    if report["conflicting_label_groups"]:
        found.append(f"{report['conflicting_label_groups']} texts appear with different labels")
    return found


def summary(report: dict) -> str:
    """A few lines for the training log and the terminal."""
    out = []
    for name, s in report["splits"].items():
        dup, near = report["duplicates"][name], report["near_duplicates"][name]
        out.append(f"{name}: {s['rows']} rows, {len(s['label_rows'])} labels, {s['labels_per_text']['mean']} "
                   f"per text, {s['rows_without_a_label']['count']} without a label; {dup['rows']} rows in "
                   f"{dup['groups']} groups of exact duplicates, {near['pairs']} near-duplicate pairs")
    for key, v in report["leakage"].items():
        first, second = key.split("/")
        out.append(f"{key}: {v['exact']} {second} rows repeat a {first} text, {v['near']} more nearly "
                   f"(Jaccard >= {report['near_duplicate_jaccard']})"
                   + (f", e.g. {first} line {v['pairs'][0][first]} / {second} line {v['pairs'][0][second]}"
                      if v["pairs"] else ""))
    if report["conflicting_label_groups"]:
        c = report["conflicting_labels"][0]
        where = ", ".join(f"{r['split']} line {r['line']} {r['labels']}" for r in c["rows"][:3])
        out.append(f"{report['conflicting_label_groups']} texts appear with different labels, e.g. {where}")
    for name, labels in report["labels_in_one_split_only"].items():
        if labels:
            out.append(f"labels only in {name}: {', '.join(labels[:10])}"
                       + (f" ... ({len(labels) - 10} more)" if len(labels) > 10 else ""))
    for name, cut in report.get("cut_by_max_seq_length", {}).items():
        if cut["count"]:
            out.append(f"{name}: {cut['count']} texts are longer than --max-seq-length {cut['max_seq_length']} "
                       f"tokens and are cut, e.g. line {cut['lines'][0]}")
    return "\n".join(out)
