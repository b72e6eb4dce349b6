"""Reading labelled text: four file formats, one label vocabulary, multi-hot targets.

Formats (``--data-format``, detected from the file name and header when ``auto``):

- ``hellonlp``: CSV with header ``content,label``; labels joined by ``/``; an empty cell or ``|``
  means "no label". A UTF-8 BOM and CRLF line endings are fine.
- ``onehot``: CSV ``content,<label1>,<label2>,...`` with 0/1 cells; a ``|`` column means "no label"
  and is not a label.
- ``jsonl``: one ``{"text": "...", "labels": ["a", "b"]}`` per line.
- ``tsv``: ``text<TAB>label1,label2`` (an optional header ``text<TAB>labels``).

Bad input raises `DataError` naming the file, the line and the fix. Nothing is dropped silently:
rows skipped (empty text) or repaired (a label repeated on a row) are counted in `ReadReport`
and logged.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
    >>> _ = open(path, "w", encoding="utf-8").write("content,label\\n很好用,\\n声音大,声音/外观\\n")
    >>> examples = read_examples(path)
    >>> examples.texts, examples.labels
    (['很好用', '声音大'], [[], ['声音', '外观']])
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .config import FORMATS
from .errors import UserError

# The csv module refuses fields over 131,072 characters by default; a long document is a valid text
# (the tokenizer truncates it to --max-seq-length tokens), so lift the limit for every reader here.
csv.field_size_limit(2**31 - 1)

log = logging.getLogger(__name__)

NO_LABEL = "|"  # hellonlp's "no label" marker, in label cells, one-hot headers and label files
OWN_SEPARATOR = {"hellonlp": "/", "tsv": ",", "jsonl": None}  # between labels in one cell (jsonl: a list)
# Characters people join labels with. A label holding one of them, whose parts are labels of their
# own elsewhere in the file, is a label set written with another separator than the format's.
FOREIGN_SEPARATORS = ("/", ",", ";", "|", "，", "、", "；", "+")
# Column names that make a two-column CSV a text-and-labels file (hellonlp layout), not one-hot.
TEXT_COLUMNS, LABEL_COLUMNS = ("content", "text", "sentence"), ("label", "labels", "tags", "categories")
# The TF1 original's seq2seq vocabulary_label.txt starts with its decoder's start and end markers.
ORIGINAL_MARKERS = ("S", "E")


class DataError(UserError):
    """Bad input data: the message names the file, the line and how to fix it."""

    def __init__(self, path, line: Optional[int], problem: str, fix: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}\n  fix: {fix}")
        self.path, self.line = path, line


@dataclass
class ReadReport:
    rows: int = 0
    skipped_empty_text: list = field(default_factory=list)  # line numbers
    repeated_labels: list = field(default_factory=list)  # line numbers where a label was collapsed
    no_label_rows: int = 0

    def log(self, path):
        log.info("%s: %d rows, %d with no label", path, self.rows, self.no_label_rows)
        if self.skipped_empty_text:
            log.warning("%s: skipped %d rows with empty text (lines %s)", path,
                        len(self.skipped_empty_text), _some(self.skipped_empty_text))
        if self.repeated_labels:
            log.warning("%s: collapsed a repeated label on %d rows (lines %s)", path,
                        len(self.repeated_labels), _some(self.repeated_labels))


def _some(lines, n=10):
    head = ", ".join(map(str, lines[:n]))
    return head + (f", ... ({len(lines) - n} more)" if len(lines) > n else "")


@dataclass
class Examples:
    """Texts and their label sets, with the line each came from."""

    path: str
    texts: list
    labels: list  # list of lists of label names (de-duplicated, in file order)
    lines: list
    report: ReadReport
    header_labels: Optional[list] = None  # the label columns of a one-hot file

    def __len__(self):
        return len(self.texts)

    def subset(self, indices) -> "Examples":
        return Examples(self.path, [self.texts[i] for i in indices], [self.labels[i] for i in indices],
                        [self.lines[i] for i in indices], self.report, self.header_labels)


def decode(raw: bytes, path, encoding: str) -> str:
    """`raw` as text (a UTF-8 BOM dropped); bytes that are not valid `encoding` are a DataError naming
    `path` and the line."""
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(path, line, f"bytes {raw[e.start:e.end]!r} are not valid {encoding}",
                        "save the file as UTF-8 (for example `iconv -f GBK -t UTF-8 in.csv > out.csv`), "
                        "or pass its encoding with --encoding gbk") from None
    except LookupError:
        raise DataError(path, None, f"unknown encoding {encoding!r}",
                        "pass a Python codec name to --encoding") from None


def _decode(path, encoding: str) -> str:
    with open(path, "rb") as fh:
        text = decode(fh.read(), path, encoding)
    if not text.strip():
        raise DataError(path, None, "the file is empty", "point the flag at a file with a header and rows")
    return text


def detect_format(path, text: str) -> str:
    ext = os.path.splitext(str(path))[1].lower()
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if ext in (".tsv",):
        return "tsv"
    first = text.lstrip("\ufeff").splitlines()[0]
    if ext == ".txt" and "\t" in first:
        return "tsv"
    header = [h.strip().lower() for h in next(csv.reader([first]))]
    if len(header) == 2 and header[0] in TEXT_COLUMNS and header[1] in LABEL_COLUMNS:
        return "hellonlp"
    if len(header) >= 2:
        return "onehot" if "label" not in header else "hellonlp"
    raise DataError(path, 1, f"cannot tell the format from the header {first[:80]!r}",
                    f"pass --data-format, one of {', '.join(FORMATS)}")


def read_examples(path, data_format: str = "auto", text_column: Optional[str] = None,
                  label_column: Optional[str] = None, label_separator: Optional[str] = None,
                  encoding: str = "utf-8") -> Examples:
    """Reads one labelled file in any of the four formats."""
    if os.path.isdir(path):
        raise DataError(path, None, "is a folder, not a file", "give the data file inside it")
    if not os.path.isfile(path):
        raise DataError(path, None, "no such file", "check the path (relative paths start at the current folder)")
    text = _decode(path, encoding)
    fmt = detect_format(path, text) if data_format == "auto" else data_format
    if fmt not in FORMATS:
        raise DataError(path, None, f"unknown data format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    reader = {"hellonlp": _read_hellonlp, "onehot": _read_onehot, "jsonl": _read_jsonl, "tsv": _read_tsv}[fmt]
    report = ReadReport()
    ex = Examples(str(path), [], [], [], report)
    reader(path, text, ex, text_column, label_column, label_separator)
    report.rows = len(ex.texts)
    if not ex.texts:
        raise DataError(path, None, "the file has a header but no rows with text", "add labelled rows")
    if fmt != "onehot" and label_separator is None:
        _refuse_joined_labels(ex, OWN_SEPARATOR[fmt])
    report.log(path)
    return ex


def read_split(path, d) -> Examples:
    """`read_examples` with the format options of a `config.DataConfig` `d`."""
    return read_examples(path, d.data_format, d.text_column, d.label_column, d.label_separator, d.encoding)


def _refuse_joined_labels(ex: Examples, own: Optional[str]):
    """A DataError when labels look joined by a separator the format does not use: "声音/外观" in a
    TSV (whose separator is ","), where 声音 and 外观 are labels of other rows. Guessing would
    be wrong as often as right (a label may contain "/"), so the user decides."""
    names = {lab for labs in ex.labels for lab in labs}
    for sep in FOREIGN_SEPARATORS:
        if sep == own:
            continue
        joined = [(line, lab) for labs, line in zip(ex.labels, ex.lines) for lab in labs if sep in lab
                  and all(part.strip() in names - {lab} for part in lab.split(sep))]
        if joined:
            line, lab = joined[0]
            parts = " and ".join(repr(p.strip()) for p in lab.split(sep))
            rule = f"separates labels with {own!r}" if own else 'takes a list: "labels": ["a", "b"]'
            fix = (f"make each label its own list item, or pass --label-separator {sep!r} to split them"
                   if own is None else f"join labels with {own!r}, or pass --label-separator {sep!r}")
            raise DataError(ex.path, line, f"the label {lab!r} looks like {parts} joined by {sep!r} "
                            f"({len(joined)} {'row' if len(joined) == 1 else 'rows'} like it); this format {rule}", fix)


def _add(ex: Examples, line: int, text, labels: Sequence[str]):
    if text is None or not str(text).strip():
        ex.report.skipped_empty_text.append(line)
        return
    clean = []
    for lab in labels:
        lab = lab.strip()
        if not lab or lab == NO_LABEL:
            continue
        if lab in clean:
            if line not in ex.report.repeated_labels:
                ex.report.repeated_labels.append(line)
            continue
        clean.append(lab)
    if not clean:
        ex.report.no_label_rows += 1
    ex.texts.append(str(text))
    ex.labels.append(clean)
    ex.lines.append(line)


def _csv_rows(path, text):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as e:
        raise DataError(path, 1, f"malformed CSV header: {e}", "fix the first line") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return header, None
        except csv.Error as e:
            raise DataError(path, start, f"malformed CSV row: {e}",
                            "quote fields that contain commas or quotes with double quotes") from None
        yield header, (start, row)


def _column(path, header, name, what, flag):
    if name not in header:
        raise DataError(path, 1, f"no {what} column {name!r}; the header has {header}",
                        f"rename the column to {name!r} or pass {flag} <name>")
    return header.index(name)


def _named(header, given, names):
    """`given`, else the first of `names` the header has (any case), else the first of `names`."""
    if given:
        return given
    return next((h for n in names for h in header if h.lower() == n), names[0])


def _read_hellonlp(path, text, ex, text_column, label_column, label_separator):
    sep = label_separator or "/"
    idx = None
    for header, item in _csv_rows(path, text):
        if idx is None:
            text_column = _named(header, text_column, TEXT_COLUMNS)
            label_column = _named(header, label_column, LABEL_COLUMNS)
            idx = (_column(path, header, text_column, "text", "--text-column"),
                   _column(path, header, label_column, "label", "--label-column"))
        line, row = item
        if not row or row == [""]:
            continue  # a blank line: not a row
        if len(row) != len(header):
            raise DataError(path, line,
                            f"expected {len(header)} fields ({','.join(header)}), got {len(row)}: {row[:4]}",
                            "quote the text if it contains a comma, e.g. \"好用,便宜\",价格")
        _add(ex, line, row[idx[0]], row[idx[1]].split(sep))


def _read_onehot(path, text, ex, text_column, label_column, label_separator):
    text_column = text_column or "content"
    ti, columns = None, None
    for header, item in _csv_rows(path, text):
        if ti is None:
            ti = _column(path, header, text_column, "text", "--text-column")
            columns = [(i, h) for i, h in enumerate(header) if i != ti and h != NO_LABEL]
            if not columns:
                raise DataError(path, 1, "a one-hot file needs label columns after the text column",
                                "add one 0/1 column per label, or use the hellonlp format content,label")
            ex.header_labels = [h for _, h in columns]
        line, row = item
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            raise DataError(path, line, f"expected {len(header)} fields, got {len(row)}",
                            "every row needs the text and one 0/1 cell per label column")
        labels = []
        for i, name in columns:
            cell = row[i].strip()
            if cell in ("1", "1.0"):
                labels.append(name)
            elif cell not in ("0", "0.0", ""):
                raise DataError(path, line, f"column {name!r} holds {cell!r}, not 0 or 1",
                                "one-hot cells must be 0 or 1")
        _add(ex, line, row[ti], labels)


def _read_jsonl(path, text, ex, text_column, label_column, label_separator):
    text_key, labels_key = text_column or "text", label_column or "labels"
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(path, line, f"not valid JSON ({e.msg} at column {e.colno})",
                            'each line must be one object like {"text": "...", "labels": ["a"]}') from None
        if not isinstance(obj, dict) or text_key not in obj:
            raise DataError(path, line, f"no {text_key!r} key", "add it, or pass --text-column <key>")
        labels = obj.get(labels_key, [])
        if labels is None:
            labels = []
        if isinstance(labels, str) and label_separator is not None:
            labels = labels.split(label_separator) if labels else []
        elif isinstance(labels, str):
            raise DataError(path, line, f"{labels_key!r} is the string {labels!r}, not a list of labels",
                            f'write it as "{labels_key}": [{json.dumps(labels, ensure_ascii=False)}] '
                            "(one label), or pass --label-separator <char> to split such strings")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise DataError(path, line, f"{labels_key!r} must be a list of strings, got {labels!r}",
                            f'write it as "{labels_key}": ["a", "b"] (or [] for no label)')
        if label_separator is not None:
            labels = [part for item in labels for part in item.split(label_separator)]
        _add(ex, line, obj[text_key], labels)


def _read_tsv(path, text, ex, text_column, label_column, label_separator):
    sep = label_separator or ","
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if line == 1 and [f.strip().lower() for f in fields] in (["text", "labels"], ["text", "label"]):
            continue
        if len(fields) != 2:
            raise DataError(path, line, f"expected 2 tab-separated fields (text, labels), got {len(fields)}",
                            "use one tab between the text and its comma-separated labels; no tab inside the text")
        _add(ex, line, fields[0], fields[1].split(sep))


class LabelVocab:
    """Label names in a fixed order; maps label sets to multi-hot rows.

    Example:
        >>> vocab = LabelVocab(["价格", "声音", "外观"])
        >>> vocab.multi_hot([["声音"], []]).tolist()
        [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, names: Sequence[str]):
        names = [n for n in names if n != NO_LABEL]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise UserError(f"label names repeat: {dup}")
        if not names:
            raise UserError("no labels: the training data has no labelled row")
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}

    def __len__(self):
        return len(self.names)

    @classmethod
    def from_examples(cls, examples: Examples) -> "LabelVocab":
        if examples.header_labels:
            return cls(examples.header_labels)
        names = sorted({lab for labs in examples.labels for lab in labs})
        if not names:
            raise DataError(examples.path, None, "no row has a label",
                            "label the rows (a classifier learns from texts with their labels)")
        return cls(names)

    @classmethod
    def load(cls, path) -> "LabelVocab":
        text = _decode(path, "utf-8")
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if tuple(names[:2]) == ORIGINAL_MARKERS:
            log.warning("%s: dropped the first two lines, %s and %s: the TF1 original's seq2seq decoder markers, "
                        "not labels", path, *ORIGINAL_MARKERS)
            names = names[2:]
        try:
            return cls(names)
        except ValueError as e:
            raise DataError(path, None, str(e), "list each label once, one per line") from None

    def save(self, path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(self.names) + "\n")

    def check(self, examples: Examples, fix: str):
        """Raises a DataError for the first label of `examples` not in the vocabulary."""
        for labs, line in zip(examples.labels, examples.lines):
            for lab in labs:
                if lab not in self.index:
                    shown = ", ".join(self.names[:80]) + (" ..." if len(self.names) > 80 else "")
                    raise DataError(examples.path, line, f"unknown label {lab!r}; the labels are: {shown}", fix)

    def multi_hot(self, label_lists) -> np.ndarray:
        out = np.zeros((len(label_lists), len(self.names)), dtype=np.float32)
        for row, labs in enumerate(label_lists):
            for lab in labs:
                out[row, self.index[lab]] = 1.0
        return out


# Below this many dev rows, per-label thresholds would be fitted to a handful of texts: one global
# threshold is tuned instead (about 2 positives a label on a 10-label set).
MIN_TUNING_DEV_ROWS = 50


def check_training_data(train: Examples, labels: LabelVocab, label_file: Optional[str] = None):
    """Refuses training data nothing can be learned from; warns about labels the model will hardly
    learn (the run goes on: a rare label is the user's call)."""
    counts = labels.multi_hot(train.labels).sum(0)  # [num_labels]
    if not counts.any():
        raise DataError(train.path, None, "no row has a label", "label the rows (a classifier learns from texts "
                                                                 "with their labels)")
    always = [n for n, c in zip(labels.names, counts) if c == len(train)]
    if always and len(labels) == 1:
        raise DataError(train.path, None, f"every row has the label {always[0]!r}, the only label: there is "
                        "nothing to tell apart", "add rows without it (unlabelled rows are fine), or more labels")
    if always:
        log.warning("%s: %s on every training row: the model will learn to give it to every text",
                    train.path, _names(always))
    if label_file:
        unseen = [n for n, c in zip(labels.names, counts) if c == 0]
        if unseen:
            log.warning("%s: %d label(s) have no training example (%s): the model cannot learn them",
                        label_file, len(unseen), _names(unseen))
    once = [n for n, c in zip(labels.names, counts) if c == 1]
    if once:
        log.warning("%s: %d label(s) occur on one training row only (%s): expect little from them",
                    train.path, len(once), _names(once))


def check_dev(dev: Examples, labels: LabelVocab) -> bool:
    """Warns about a dev set too small or too sparse to tune thresholds on; True when it is too small
    for anything but one global threshold."""
    positives = labels.multi_hot(dev.labels).sum(0)  # [num_labels]
    absent = [n for n, c in zip(labels.names, positives) if c == 0]
    if absent:
        log.warning("%s: %d of %d labels have no dev positive (%s): they get the global threshold, and early "
                    "stopping cannot see them", dev.path, len(absent), len(labels), _names(absent))
    if len(dev) < MIN_TUNING_DEV_ROWS:
        log.warning("%s: %d dev rows, too few to tune a threshold per label (%d needed): one global threshold "
                    "is tuned; give a larger --dev-file (or --dev-fraction) for per-label thresholds",
                    dev.path, len(dev), MIN_TUNING_DEV_ROWS)
        return True
    return False


def _names(names, n=8):
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def examples_from(data, where: str, text_column: Optional[str] = None, label_column: Optional[str] = None,
                  label_separator: Optional[str] = None, read=None) -> Examples:
    """Labelled data given in any of the shapes the Python API accepts, as `Examples`:

    - a file path (read by `read`, the run's configured `read_examples`);
    - ``(texts, label_lists)``: two sequences of equal length, each label list a list of names;
    - a pandas DataFrame with a text column (`text_column`, else ``text`` or ``content``) and a label
      column (`label_column`, else ``labels`` or ``label``) of lists, or of strings split on
      `label_separator` (required then: a string is never split on a guessed separator);
    - `Examples` (returned as they are).

    Rows are numbered from 1 in messages (`where` names the argument, e.g. "train"); empty texts
    and repeated labels follow the file rules (skipped / collapsed, counted and logged).

    Example:
        >>> ex = examples_from((["好用", "声音大"], [["好评"], ["噪音", "噪音"]]), "train")
        >>> ex.labels
        [['好评'], ['噪音']]
    """
    if isinstance(data, Examples):
        return data
    if isinstance(data, (str, os.PathLike)):
        return (read or read_examples)(os.fspath(data))
    name = f"<{where}>"
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a pandas DataFrame (pandas is optional)
        columns = [str(c) for c in data.columns]

        def pick(given, candidates, what, flag):
            if given is not None:
                if given not in columns:
                    raise DataError(name, None, f"no {what} column {given!r}; the columns are {columns}",
                                    f"pass {flag}=<one of them>")
                return given
            for c in candidates:
                if c in columns:
                    return c
            raise DataError(name, None, f"no {what} column ({' or '.join(candidates)}); the columns are {columns}",
                            f"name it {candidates[0]!r} or pass {flag}=<column>")

        texts = list(data[pick(text_column, ("text", "content"), "text", "text_column")])
        cells = list(data[pick(label_column, ("labels", "label"), "label", "label_column")])
        label_lists = []
        for row, cell in enumerate(cells, start=1):
            if isinstance(cell, str):
                if label_separator is None:
                    raise DataError(name, row, f"the label cell is a string ({cell!r})",
                                    "give lists of label names, or label_separator=',' (the character between "
                                    "labels) so strings are split on it")
                cell = cell.split(label_separator) if cell else []
            label_lists.append(cell)
        data = (texts, label_lists)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise DataError(name, None, f"cannot read data of type {type(data).__name__}",
                        "give a file path, (texts, label_lists), a pandas DataFrame, or Examples")
    texts, label_lists = list(data[0]), list(data[1])
    if len(texts) != len(label_lists):
        raise DataError(name, None, f"{len(texts)} texts but {len(label_lists)} label lists",
                        "give one label list per text ([] for a text with no label)")
    ex = Examples(name, [], [], [], ReadReport())
    for row, (text, labels) in enumerate(zip(texts, label_lists), start=1):
        if not isinstance(text, str):
            raise DataError(name, row, f"the text is a {type(text).__name__} ({text!r}), not a string",
                            "give texts as strings")
        if hasattr(labels, "tolist"):  # a numpy array of names
            labels = labels.tolist()
        if isinstance(labels, str) or not all(isinstance(lab, str) for lab in labels):
            raise DataError(name, row, f"the labels must be a list of label names, got {labels!r}",
                            'write them as ["a", "b"] ([] for no label)')
        _add(ex, row, text, list(labels))
    ex.report.rows = len(ex.texts)
    if not ex.texts:
        raise DataError(name, None, "no rows with text", "give at least one labelled text")
    return ex


def write_jsonl(path, examples: Examples, text_key: str = "text", labels_key: str = "labels"):
    """`examples` as a jsonl data file (how a run folder keeps data it was given in memory)."""
    with open(path, "w", encoding="utf-8") as fh:
        for text, labels in zip(examples.texts, examples.labels):
            fh.write(json.dumps({text_key: text, labels_key: labels}, ensure_ascii=False) + "\n")
