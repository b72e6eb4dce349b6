"""Builds the CJK font the run report draws Chinese label names with
(`classifier_multi_label/fonts/ReportSansSC-Regular.otf`, SIL Open Font License 1.1).

It is a subset of Noto Sans CJK SC Regular (Adobe's Source Han Sans, Google's name): every
character of GB 2312 (6,763 hanzi and its symbols), ASCII, Latin-1 and Latin Extended-A, general
punctuation, CJK symbols and punctuation, and the full-width forms: 3 MB instead of 16. The OFL
lets a subset be redistributed under a name that is not a Reserved Font Name ("Source"), so the
family is renamed. Labels outside the subset fall back to the machine's own fonts (the report
warns about any glyph it still lacks).

    python scripts/make_report_font.py /path/to/NotoSansCJKsc-Regular.otf

(The file is in Debian's fonts-noto-cjk as a collection, or in the `mplfonts` wheel on PyPI.)
"""

import argparse
import os

from fontTools import subset
from fontTools.ttLib import TTFont

FAMILY = "Report Sans SC"
OUT = os.path.join(os.path.dirname(__file__), "..", "classifier_multi_label", "fonts", "ReportSansSC-Regular.otf")


def gb2312() -> set[int]:
    chars = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes([hi, lo]).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    return chars


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="Noto Sans CJK SC Regular (.otf, or a .ttc with --font-number)")
    p.add_argument("--font-number", type=int, default=0, help="the SC face's index in a .ttc")
    p.add_argument("--out", default=OUT)
    args = p.parse_args()
    wanted = gb2312() | set(range(0x20, 0x7F)) | set(range(0xA0, 0x180)) | set(range(0x2000, 0x2070))
    wanted |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    options = subset.Options()
    options.layout_features, options.name_IDs, options.hinting, options.notdef_outline = ["*"], ["*"], False, True
    font = TTFont(args.source, fontNumber=args.font_number)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    names = font["name"]
    for rec in list(names.names):  # the family's names, not a Reserved Font Name
        if rec.nameID in (1, 16):
            names.setName(FAMILY, rec.nameID, rec.platformID, rec.platEncID, rec.langID)
        elif rec.nameID in (3, 4):
            names.setName(f"{FAMILY} Regular", rec.nameID, rec.platformID, rec.platEncID, rec.langID)
        elif rec.nameID == 6:
            names.setName(FAMILY.replace(" ", "") + "-Regular", rec.nameID, rec.platformID, rec.platEncID, rec.langID)
        elif rec.nameID in (17,):
            names.setName("Regular", rec.nameID, rec.platformID, rec.platEncID, rec.langID)
    if "CFF " in font:  # the PostScript names inside the CFF table as well
        cff = font["CFF "].cff
        cff.fontNames = [FAMILY.replace(" ", "") + "-Regular"]
        top = cff.topDictIndex[0]
        top.FamilyName, top.FullName = FAMILY, f"{FAMILY} Regular"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    font.save(args.out)
    print(f"{args.out}: {len(wanted)} code points wanted, {os.path.getsize(args.out):,} bytes")


if __name__ == "__main__":
    main()
