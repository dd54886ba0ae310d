"""Number verbalisers for the ITN pairs: integers -> spoken words in en, zh/yue (hanzi), ja (kana), ko (hangul).

The spoken form is what espeak-ng reads and the ``<|woitn|>`` target; the written form (digits) is the
``<|withitn|>`` target. Each function covers 0 <= n < 10**8, enough for prices, years, counts and dates.
"""

from __future__ import annotations

MAX_NUMBER = 10**8  # exclusive upper bound of every verbaliser here


def _check(n: int) -> int:
    if not 0 <= n < MAX_NUMBER:
        raise ValueError(f"n={n!r}; expected an integer in [0, {MAX_NUMBER})")
    return int(n)


# ----------------------------------------------------------------------------------------------- English
EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
           "sixteen seventeen eighteen nineteen").split()
EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
EN_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                    "nine": "ninth", "twelve": "twelfth"}


def _en_below_1000(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [EN_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(EN_TENS[n // 10])
        n %= 10
    if n or not words:
        words.append(EN_ONES[n])
    return words


def en_cardinal(n: int) -> str:
    """25 -> 'twenty five' (US style: no 'and', no hyphens; the woitn targets carry no punctuation)."""
    n = _check(n)
    words = []
    for value, name in ((10**6, "million"), (10**3, "thousand")):
        if n >= value:
            words += _en_below_1000(n // value) + [name]
            n %= value
    if n or not words:
        words += _en_below_1000(n)
    return " ".join(words)


def en_ordinal(n: int) -> str:
    """3 -> 'third', 21 -> 'twenty first', 40 -> 'fortieth'."""
    head, _, last = en_cardinal(n).rpartition(" ")
    if last in EN_ORDINAL_WORDS:
        last = EN_ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def en_ordinal_suffix(n: int) -> str:
    """3 -> '3rd', 11 -> '11th', 22 -> '22nd'."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def en_year(year: int, style: int = 0) -> str:
    """How a year is read: 1998 -> 'nineteen ninety eight', 1905 -> 'nineteen oh five', 2005 -> 'two thousand
    five'; for 2010-2099 style 0 -> 'twenty twenty four', style 1 -> 'two thousand twenty four'."""
    if not 1100 <= year <= 2099:
        raise ValueError(f"year={year!r}; expected 1100..2099")
    high, low = divmod(year, 100)
    if 2000 <= year < 2010 or (year >= 2010 and style == 1):
        return en_cardinal(year)
    if low == 0:
        return f"{en_cardinal(high)} hundred"
    return f"{en_cardinal(high)} {'oh ' if low < 10 else ''}{en_cardinal(low)}"


# ----------------------------------------------------------------------------------------------- Chinese
ZH_DIGITS = "零一二三四五六七八九"
ZH_UNITS = ("", "十", "百", "千")


def _zh_below_10000(n: int) -> str:
    out, zero_pending = [], False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            zero_pending = bool(out)  # one 零 stands for any run of inner zeros: 1005 -> 一千零五
            continue
        if zero_pending:
            out.append("零")
            zero_pending = False
        out.append(ZH_DIGITS[digit] + ZH_UNITS[power])
    return "".join(out)


def zh_cardinal(n: int, traditional: bool = False) -> str:
    """1631 -> '一千六百三十一', 107 -> '一百零七', 12 -> '十二', 30005 -> '三万零五' (萬 when traditional)."""
    n = _check(n)
    if n == 0:
        return ZH_DIGITS[0]
    high, low = divmod(n, 10**4)
    text = ""
    if high:
        text = _zh_below_10000(high) + ("萬" if traditional else "万")
        if 0 < low < 1000:
            text += "零"
    text += _zh_below_10000(low)
    return text[1:] if text.startswith("一十") else text  # 十二, not 一十二 (only at the very start)


def zh_digits(n: int) -> str:
    """Read digit by digit, as years are: 2024 -> '二零二四'."""
    return "".join(ZH_DIGITS[int(d)] for d in str(_check(n)))


# ----------------------------------------------------------------------------------------------- Japanese
JA_DIGITS = ("", "いち", "に", "さん", "よん", "ご", "ろく", "なな", "はち", "きゅう")
# Sound changes before ひゃく and せん (rendaku / gemination).
JA_HUNDREDS = {1: "ひゃく", 3: "さんびゃく", 6: "ろっぴゃく", 8: "はっぴゃく"}
JA_THOUSANDS = {1: "せん", 3: "さんぜん", 8: "はっせん"}
# Last-digit readings a counter changes: 4ねん is よねん, 9がつ is くがつ ...
JA_COUNTER_ONES = {"ねん": {4: "よ", 7: "しち", 9: "く"}, "えん": {4: "よ"}, "がつ": {4: "し", 7: "しち", 9: "く"}}


def _ja_below_10000(n: int, ones: dict[int, str]) -> str:
    thousands, hundreds, tens, unit = n // 1000, n // 100 % 10, n // 10 % 10, n % 10
    out = ""
    if thousands:
        out += JA_THOUSANDS.get(thousands, JA_DIGITS[thousands] + "せん")
    if hundreds:
        out += JA_HUNDREDS.get(hundreds, JA_DIGITS[hundreds] + "ひゃく")
    if tens:
        out += ("" if tens == 1 else JA_DIGITS[tens]) + "じゅう"
    if unit:
        out += ones.get(unit, JA_DIGITS[unit])
    return out


def ja_cardinal(n: int, counter: str = "") -> str:
    """Kana reading, with the counter's sound changes: (2024, 'ねん') -> 'にせんにじゅうよねん'."""
    n = _check(n)
    ones = JA_COUNTER_ONES.get(counter, {})
    if n == 0:
        return "ゼロ" + counter
    high, low = divmod(n, 10**4)
    text = (_ja_below_10000(high, {}) + "まん") if high else ""
    return text + _ja_below_10000(low, ones) + counter


# ----------------------------------------------------------------------------------------------- Korean
KO_DIGITS = ("", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
KO_UNITS = ("", "십", "백", "천")
KO_MONTHS = {6: "유월", 10: "시월"}  # the two irregular month names


def _ko_below_10000(n: int) -> str:
    out = ""
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit:
            # 일 is dropped before 십/백/천: 10 -> 십, 100 -> 백.
            out += ("" if digit == 1 and power else KO_DIGITS[digit]) + KO_UNITS[power]
    return out


def ko_cardinal(n: int) -> str:
    """Sino-Korean reading: 25 -> '이십오', 2024 -> '이천이십사', 15000 -> '만오천'."""
    n = _check(n)
    if n == 0:
        return "영"
    high, low = divmod(n, 10**4)
    text = ""
    if high:
        text = ("" if high == 1 else _ko_below_10000(high)) + "만"
    return text + _ko_below_10000(low)


def ko_month(month: int) -> str:
    """6 -> '유월', 3 -> '삼월'."""
    if not 1 <= month <= 12:
        raise ValueError(f"month={month!r}; expected 1..12")
    return KO_MONTHS.get(month, ko_cardinal(month) + "월")


# ----------------------------------------------------------------------------------------------- tables
EN_MONTHS = ("january february march april may june july august september october november december").split()
