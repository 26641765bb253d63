# ruff: noqa: E501
"""Finding dates in text and shifting them by a number of days while keeping their format.

``DATE_RE`` matches the formats clinical text uses (ISO, US numeric with ``/ - .``, month
names and abbreviations in any case and order, month-and-year, month-and-day); ``shift_date``
re-renders a match shifted by ``days`` in the same layout (zero padding, two-digit years,
month-name spelling and case, ordinal suffixes). Years alone are not identifiers and are left.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from carelens.privacy.gating import FOLDS_TO_ASCII, Gated

MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
_FULL = ["", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
         "november", "december"]  # fmt: skip

_MON = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_ORD = r"(?:st|nd|rd|th)?"
_MNUM = r"(?:0?[1-9]|1[0-2])"
_YEAR4 = r"(?:1[89]\d\d|20\d\d)"
_YEAR = r"(?:1[89]\d\d|20\d\d|'?\d\d)"

_ALTS = [
    # 2020-01-05, 2020/1/5, 2020.01.05 (optional time)
    rf"(?P<iso_y>{_YEAR4})(?P<iso_s>[-/.])(?P<iso_m>{_MNUM})(?P=iso_s)(?P<iso_d>{_DAY})(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?",
    # 20200105
    r"(?P<cmp_y>(?:19|20)\d\d)(?P<cmp_m>0[1-9]|1[0-2])(?P<cmp_d>0[1-9]|[12]\d|3[01])",
    # 1/5/2020, 01-05-20, 1.5.2020
    rf"(?P<us_m>{_MNUM})(?P<us_s>[-/.])(?P<us_d>{_DAY})(?P=us_s)(?P<us_y>{_YEAR})",
    # Jan 5, 2020 / January 5th 2020 / jan. 5 / JAN-05-2020
    rf"(?P<md_mon>{_MON})\.?(?P<md_s>[\s\-/]{{1,2}})(?P<md_d>{_DAY})(?P<md_o>{_ORD})(?:(?P<md_ys>,?[\s\-/]{{1,2}}|,)(?P<md_y>{_YEAR4}|'\d\d))?",
    # 5 Jan 2020 / 5th of January, 2020 / 05-JAN-2020 / 5-Jan
    rf"(?P<dm_d>{_DAY})(?P<dm_o>{_ORD})(?P<dm_s>[\s\-/]{{1,2}}(?:of\s)?)(?P<dm_mon>{_MON})\.?(?:(?P<dm_ys>,?[\s\-/]{{1,2}})(?P<dm_y>{_YEAR4}|\d\d))?",
    # January 2020 / Jan-2020 / Jan '20
    rf"(?P<my_mon>{_MON})\.?(?P<my_s>,?[\s\-/]{{1,2}})(?P<my_y>{_YEAR4}|'\d\d)",
    # 1/5 (month/day, no year), 1/2020 (month/year)
    rf"(?P<mdn_m>{_MNUM})/(?P<mdn_d>{_DAY})",
    rf"(?P<myn_m>{_MNUM})/(?P<myn_y>{_YEAR4})",
]
DATE_RE = re.compile(r"(?<![\w/.\-])(?:" + "|".join(f"(?:{a})" for a in _ALTS) + r")(?![\w/]|\.\d|-\d)", re.IGNORECASE)
# Where a date can start: a digit, or the first letter of a month name, not after [\w/.-].
DATES = Gated(
    DATE_RE,
    r"[\dJjFfMmAaSsOoNnDd" + FOLDS_TO_ASCII + r"](?<![\w/.\-].)"
    r"(?:(?<=\d)(?=\d{7}|\d{0,3}[-/.\s]|\d?(?i:st|nd|rd|th))"
    r"|(?i:(?<=j)(?=an|un|ul)|(?<=f)(?=eb)|(?<=m)(?=ar|ay)|(?<=a)(?=pr|ug)|(?<=s)(?=ep)|(?<=o)(?=ct)|(?<=n)(?=ov)|(?<=d)(?=ec)))",
)
_MDN_NOT = re.compile(r"\s*(?:strength|murmur|ns\b|assist|power|pulses?|reflex|scale|ml|mg|tab|of\b)", re.IGNORECASE)


def is_plausible(match: re.Match[str], text: str) -> bool:
    """Reject month/day look-alikes that are ratios ("5/5 strength", "1/2 NS")."""
    if match.group("mdn_m") is not None:
        return _MDN_NOT.match(text, match.end()) is None
    return True


def shift_date(match: re.Match[str], days: int) -> str:
    """The matched date moved by ``days``, written in the same layout."""
    g = match.groupdict()
    fields = [v for k, v in g.items() if v and k.endswith(("_m", "_d"))]
    numeric = not any(v for k, v in g.items() if k.endswith("_mon"))
    all_two = bool(fields) and all(len(f) == 2 for f in fields) and (numeric or bool(g["dm_d"]))
    pad = "00" if any(f.startswith("0") for f in fields) or all_two else "0"
    g = {k: (pad if v and k.endswith(("_m", "_d")) and v.isdigit() else v) for k, v in g.items()} | {
        k + "_v": v for k, v in g.items() if k.endswith(("_m", "_d"))
    }
    try:
        if g["iso_y"]:
            d = _shift(int(g["iso_y"]), int(g["iso_m_v"]), int(g["iso_d_v"]), days)
            head = f"{d.year}{g['iso_s']}{_num(d.month, g['iso_m'])}{g['iso_s']}{_num(d.day, g['iso_d'])}"
            return head + match.group(0)[match.end("iso_d") - match.start() :]
        if g["cmp_y"]:
            d = _shift(int(g["cmp_y"]), int(g["cmp_m_v"]), int(g["cmp_d_v"]), days)
            return f"{d.year}{d.month:02d}{d.day:02d}"
        if g["us_m"]:
            year, style = _year(g["us_y"])
            d = _shift(year, int(g["us_m_v"]), int(g["us_d_v"]), days)
            s = g["us_s"]
            return f"{_num(d.month, g['us_m'])}{s}{_num(d.day, g['us_d'])}{s}{_render_year(d.year, style)}"
        if g["md_mon"]:
            year, style = _year(g["md_y"]) if g["md_y"] else (2001, "none")
            d = _shift(year, MONTHS[g["md_mon"].lower()], int(g["md_d_v"]), days)
            return _rewrite(match, {"md_mon": _mon(d.month, g["md_mon"]), "md_d": _num(d.day, g["md_d"]), "md_o": _ord(d.day, g["md_o"]),
                                    "md_y": _render_year(d.year, style)})  # fmt: skip
        if g["dm_mon"]:
            year, style = _year(g["dm_y"]) if g["dm_y"] else (2001, "none")
            d = _shift(year, MONTHS[g["dm_mon"].lower()], int(g["dm_d_v"]), days)
            return _rewrite(match, {"dm_mon": _mon(d.month, g["dm_mon"]), "dm_d": _num(d.day, g["dm_d"]), "dm_o": _ord(d.day, g["dm_o"]),
                                    "dm_y": _render_year(d.year, style)})  # fmt: skip
        if g["my_mon"]:
            year, style = _year(g["my_y"])
            d = _shift(year, MONTHS[g["my_mon"].lower()], 15, days)
            return _rewrite(match, {"my_mon": _mon(d.month, g["my_mon"]), "my_y": _render_year(d.year, style)})
        if g["mdn_m"]:
            d = _shift(2001, int(g["mdn_m_v"]), int(g["mdn_d_v"]), days)
            return f"{_num(d.month, g['mdn_m'])}/{_num(d.day, g['mdn_d'])}"
        if g["myn_m"]:
            d = _shift(int(g["myn_y"]), int(g["myn_m_v"]), 15, days)
            return f"{_num(d.month, g['myn_m'])}/{d.year}"
    except ValueError:  # 2/30 and the like: not a real date, replace it wholesale
        pass
    return re.sub(r"\d", "0", match.group(0))


def parse_date(match: re.Match[str]) -> date | None:
    """The calendar date of a full (day, month, year) match, else None."""
    g = match.groupdict()
    g |= {k + "_v": v for k, v in g.items() if k.endswith(("_m", "_d"))}
    try:
        if g["iso_y"]:
            return date(int(g["iso_y"]), int(g["iso_m_v"]), int(g["iso_d_v"]))
        if g["cmp_y"]:
            return date(int(g["cmp_y"]), int(g["cmp_m_v"]), int(g["cmp_d_v"]))
        if g["us_m"]:
            return date(_year(g["us_y"])[0], int(g["us_m_v"]), int(g["us_d_v"]))
        if g["md_mon"] and g["md_y"]:
            return date(_year(g["md_y"])[0], MONTHS[g["md_mon"].lower()], int(g["md_d_v"]))
        if g["dm_mon"] and g["dm_y"]:
            return date(_year(g["dm_y"])[0], MONTHS[g["dm_mon"].lower()], int(g["dm_d_v"]))
    except ValueError:
        return None
    return None


def _shift(year: int, month: int, day: int, days: int) -> date:
    if month == 2 and day == 29 and year == 2001:
        year = 2000
    return date(year, month, day) + timedelta(days=days)


def _year(text: str) -> tuple[int, str]:
    t = text.lstrip("'")
    if len(t) == 4:
        return int(t), "4"
    y = int(t)
    return (2000 + y if y < 50 else 1900 + y), ("'2" if text.startswith("'") else "2")


def _render_year(year: int, style: str) -> str:
    if style == "4":
        return str(year)
    if style == "none":
        return ""
    return ("'" if style == "'2" else "") + f"{year % 100:02d}"


def _num(value: int, like: str) -> str:
    return f"{value:02d}" if like == "00" else str(value)


def _mon(month: int, like: str) -> str:
    full = _FULL[month]
    low = like.lower()
    if low in ("sept",):
        word = full[:4] if month == 9 else full[:3]
    elif (len(low) == 3 and low != "may") or (low == "may" and like.isupper() and len(like) == 3):
        word = full[:3]
    else:
        word = full if len(low) > 3 or low == "may" else full[:3]
    if like.isupper():
        return word.upper()
    if like[0].isupper():
        return word.capitalize()
    return word


def _rewrite(match: re.Match[str], values: dict[str, str]) -> str:
    """Replace the named groups of ``match`` with ``values``, keeping everything between them."""
    text = match.group(0)
    base = match.start()
    pieces = []
    pos = 0
    spans = sorted((match.start(k) - base, match.end(k) - base, v) for k, v in values.items() if match.start(k) >= 0)
    for start, end, value in spans:
        pieces.append(text[pos:start])
        pieces.append(value)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _ord(day: int, like: str) -> str:
    if not like:
        return ""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return suffix.upper() if like.isupper() else suffix
