"""Sentence generators for zh, yue, en, ja, ko: templates over small word lists, plus number/date/time/money
slots that give the ITN pairs.

Every slot yields a (spoken, written) pair, so one template fill gives three strings (see ``Sentence``):
what espeak-ng reads, the ``<|woitn|>`` target and the ``<|withitn|>`` target.

Target conventions (they follow the official training data, train_example.jsonl):

======== ======================================= ==============================================================
lang     <|woitn|> (spoken form)                 <|withitn|> (written form)
======== ======================================= ==============================================================
en       lower case, no punctuation except the   first letter and names capitalised, final . or ?, numbers
         apostrophe, numbers as words:           as digits with thousands commas: "I paid $1,250.50.",
         "i paid one thousand two hundred fifty  "at 7:05", "on March 3, 2024", "15%", "3rd"
         dollars and fifty cents"
zh, yue  hanzi numbers, no punctuation:          digits, full-width punctuation: "25元", "3月5日", "7:30",
         "二十五元", "三月五日", "七点三十分"      "1998年", "15%", "12楼"; yue uses 蚊/號/點/樓 and
                                                 traditional characters
ja       kana only (espeak-ng reads no kanji):   digits, 。 or ？: "3500えん", "2024ねん", "15%"
         "さんぜんごひゃくえん"
ko       hangul numbers, spaces kept:            digits attached to the unit, final . or ?: "3500원",
         "삼천오백 원"                            "2024년", "3월 5일", "15%", "12층"
======== ======================================= ==============================================================

Vocabulary is kept small on purpose (a few hundred words or characters per language, Faker names included):
the demo model is small and trained on CPU. Held-out sentences are new combinations of the same words.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from sensevoice.training.data import numbers as num

LANGS = ("zh", "yue", "en", "ja", "ko")

Piece = tuple[str, str]  # (spoken, written)
Slot = Callable[[np.random.Generator], Piece]

# Punctuation that the spoken (woitn) form drops; the apostrophe stays ("don't").
PUNCT_RE = re.compile(r"[.,?!:;，。？！、：；]")


@dataclass(frozen=True)
class Sentence:
    lang: str
    say: str  # what espeak-ng reads: spoken words, with punctuation kept for phrasing and question intonation
    spoken: str  # the <|woitn|> target
    written: str  # the <|withitn|> target
    itn: bool  # has numbers, dates, times or money: the written form differs beyond case and punctuation
    template: str  # the template it came from (for bookkeeping)


@dataclass(frozen=True)
class Grammar:
    """Templates and slots of one language."""

    lang: str
    plain: tuple[str, ...]  # templates without numbers
    numeric: tuple[str, ...]  # templates with at least one number slot (ITN pairs)
    slots: Mapping[str, Slot]
    attach: Callable[[Piece, str], Piece]  # applies a "{slot:spec}" format spec (Korean particles, English a/an)
    finish: Callable[[str, str], tuple[str, str]]  # (say, written) -> (spoken target, written target)


def words(text: str) -> tuple[str, ...]:
    """Whitespace-separated word list; '_' stands for a space inside one entry ('this_morning')."""
    return tuple(w.replace("_", " ") for w in text.split())


def pick(options: tuple[str, ...]) -> Slot:
    """A slot whose spoken and written forms are the same word."""
    return lambda rng: (w := options[rng.integers(len(options))], w)


def fill(template: str, grammar: Grammar, rng: np.random.Generator) -> tuple[str, str]:
    """Fill '{slot}' / '{slot2}' / '{slot:spec}' fields; digits after a slot name allow a second draw."""
    say, written = [], []
    for literal, field, spec, _ in string.Formatter().parse(template):
        say.append(literal)
        written.append(literal)
        if field is None:
            continue
        piece = grammar.slots[field.rstrip("0123456789")](rng)
        if spec:
            piece = grammar.attach(piece, spec)
        say.append(piece[0])
        written.append(piece[1])
    return "".join(say), "".join(written)


def make_sentence(grammar: Grammar, rng: np.random.Generator, numeric: bool) -> Sentence:
    templates = grammar.numeric if numeric else grammar.plain
    template = templates[rng.integers(len(templates))]
    say, written = fill(template, grammar, rng)
    spoken, written = grammar.finish(say, written)
    return Sentence(grammar.lang, say, spoken, written, numeric, template)


def no_attach(piece: Piece, spec: str) -> Piece:
    raise ValueError(f"format spec {spec!r} is not used in this language")


@functools.lru_cache(maxsize=None)
def faker_names(locale: str, method: str, n: int = 40, seed: int = 1234) -> tuple[str, ...]:
    """A fixed pool of ``n`` distinct names from Faker (pinned in setup.cfg, so the pool is stable)."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    pool: dict[str, None] = {}
    while len(pool) < n:
        pool[getattr(fake, method)()] = None
    return tuple(pool)


# ----------------------------------------------------------------------------------------------- English
def en_attach(piece: Piece, spec: str) -> Piece:
    if spec != "a":
        raise ValueError(f"English format spec {spec!r}; expected 'a'")
    article = "an" if piece[0][:1] in "aeiou" else "a"
    return f"{article} {piece[0]}", f"{article} {piece[1]}"


def en_finish(say: str, written: str) -> tuple[str, str]:
    spoken = " ".join(PUNCT_RE.sub(" ", say).lower().split())
    return spoken, written[:1].upper() + written[1:]


def en_money(rng: np.random.Generator) -> Piece:
    low, high = ((1, 100), (100, 1000), (1000, 20000))[rng.choice(3, p=[0.5, 0.35, 0.15])]
    dollars = int(rng.integers(low, high))
    cents = int(rng.integers(1, 100)) if rng.random() < 0.35 else 0
    spoken = f"{num.en_cardinal(dollars)} dollar{'s' if dollars != 1 else ''}"
    if cents:
        spoken += f" and {num.en_cardinal(cents)} cent{'s' if cents != 1 else ''}"
    return spoken, f"${dollars:,}" + (f".{cents:02d}" if cents else "")


def en_count(rng: np.random.Generator) -> Piece:
    n = int(rng.integers(2, 100) if rng.random() < 0.7 else rng.integers(100, 5000))
    return num.en_cardinal(n), f"{n:,}"


def en_percent(rng: np.random.Generator) -> Piece:
    n = int(rng.integers(1, 101))
    return f"{num.en_cardinal(n)} percent", f"{n}%"


def en_clock(rng: np.random.Generator) -> Piece:
    hour = int(rng.integers(1, 13))
    minute = int(rng.choice([0, rng.integers(1, 10), 5 * rng.integers(2, 12), rng.integers(10, 60)]))  # :00 :0x :x5 :xx
    if minute == 0:
        return f"{num.en_cardinal(hour)} o'clock", f"{hour}:00"
    oh = "oh " if minute < 10 else ""
    return f"{num.en_cardinal(hour)} {oh}{num.en_cardinal(minute)}", f"{hour}:{minute:02d}"


def en_year(rng: np.random.Generator) -> Piece:
    year = int(rng.integers(1950, 2031))
    return num.en_year(year, style=int(rng.integers(2))), str(year)


def en_date(rng: np.random.Generator) -> Piece:
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    name = num.EN_MONTHS[month - 1]
    spoken, written = f"{name} {num.en_ordinal(day)}", f"{name.capitalize()} {day}"
    if rng.random() < 0.4:
        year_spoken, year = en_year(rng)
        spoken, written = f"{spoken} {year_spoken}", f"{written}, {year}"
    return spoken, written


def en_ordinal(rng: np.random.Generator) -> Piece:
    n = int(rng.integers(2, 40))
    return num.en_ordinal(n), num.en_ordinal_suffix(n)


def en_names(rng: np.random.Generator) -> Piece:
    pool = faker_names("en_US", "first_name")
    name = pool[rng.integers(len(pool))]
    return name.lower(), name


EN = dict(
    relative=words("mother father sister brother friend neighbor uncle aunt cousin grandmother boss"),
    role=words("doctor driver manager student teacher farmer nurse cook pilot artist engineer lawyer singer "
               "waiter baker police_officer writer"),
    food=words("bread rice soup apples oranges noodles cheese eggs fish chicken salad cake cookies potatoes "
               "tomatoes grapes pizza sandwiches"),
    drink=words("tea coffee milk juice water lemonade"),
    thing=words("book bag phone key umbrella ticket letter camera lamp chair jacket hat bicycle computer map "
                "box picture newspaper watch blanket guitar bottle basket radio"),
    things=words("people students books chairs cars apples birds houses trees children boxes tickets pages "
                 "songs photos bottles cups"),
    place=words("park station market library school office kitchen garden hospital museum airport beach "
                "river village bridge restaurant hotel shop church bakery cinema farm"),
    adj=words("big small old new red blue green warm cold quiet heavy long short beautiful strange yellow "
              "cheap expensive broken empty"),
    mood=words("happy tired busy angry calm friendly nervous hungry sleepy proud"),
    weather=words("sunny cloudy rainy windy cold warm foggy"),
    verb=words("found bought lost carried cleaned opened closed painted sold borrowed washed moved fixed "
               "dropped forgot"),
    time=words("today yesterday tomorrow tonight this_morning this_evening last_night every_day next_week "
               "last_summer in_the_afternoon"),
    manner=words("slowly quickly quietly carefully together early late happily"),
)


EN_WEEKDAYS = words("monday tuesday wednesday thursday friday saturday sunday")


def en_time(rng: np.random.Generator) -> Piece:
    """A time phrase; weekday names are capitalised in the written form."""
    if rng.random() < 0.3:
        day = EN_WEEKDAYS[rng.integers(len(EN_WEEKDAYS))]
        return f"on {day}", f"on {day.capitalize()}"
    return pick(EN["time"])(rng)


def en_person(rng: np.random.Generator) -> Piece:
    roll = rng.random()
    if roll < 0.5:
        return en_names(rng)
    word = pick(EN["relative"] if roll < 0.75 else EN["role"])(rng)[0]
    who = f"my {word}" if roll < 0.75 else f"the {word}"
    return who, who


EN_GRAMMAR = Grammar(
    lang="en",
    plain=(
        "{person} {verb} the {adj} {thing} {time}.",
        "{person} went to the {place} {time}.",
        "we will meet {person} at the {place} {time}.",
        "did you see the {adj} {thing} near the {place}?",
        "{person} likes {food} and {food2}.",
        "please bring the {thing} to the {place}.",
        "I think {person} left the {thing} at the {place}.",
        "can you help {person} find the {adj} {thing}?",
        "{person} and {person2} walked {manner} to the {place}.",
        "there is {adj:a} {thing} in the {place}.",
        "the {role} at the {place} looked very {mood}.",
        "where did {person} put the {thing} {time}?",
        "{person} wants to eat {food} {time}.",
        "it was a {weather} day at the {place}.",
        "my {relative} works as {role:a} in the city.",
        "would {person} like some {drink} {time}?",
        "{person} was {mood} because the {thing} was {adj}.",
        "I {verb} my {thing} at the {place} {time}.",
        "let us have {food} and {drink} at the {place}.",
        "why is the {place} so {adj} {time}?",
    ),
    numeric=(
        "{person} paid {money} for the {thing}.",
        "the {adj} {thing} costs {money}.",
        "the meeting starts at {clock} {time}.",
        "the train to the {place} leaves at {clock}.",
        "{person} was born on {date}.",
        "we moved to the {place} in {year}.",
        "the {place} opens on {date}.",
        "there are {count} {things} in the {place}.",
        "about {count} people came to the {place} {time}.",
        "prices at the {place} went up by {percent} this year.",
        "my {relative} lives on the {ordinal} floor.",
        "I need {count} {things} by {clock}.",
        "{person} finished {ordinal} in the race {time}.",
        "the {thing} was on sale for {percent} off.",
        "can you lend me {money}?",
    ),
    slots={**{k: pick(v) for k, v in EN.items()}, "person": en_person, "time": en_time, "money": en_money,
           "count": en_count, "percent": en_percent, "clock": en_clock, "year": en_year, "date": en_date, "ordinal": en_ordinal},
    attach=en_attach,
    finish=en_finish,
)


# ----------------------------------------------------------------------------------------------- Chinese
def cjk_finish(say: str, written: str) -> tuple[str, str]:
    return PUNCT_RE.sub("", say).replace(" ", ""), written


def zh_numeric_slots(traditional: bool, yuan: tuple[str, ...], dot: str, day: str, floor: str) -> dict[str, Slot]:
    """Number slots shared by Mandarin and Cantonese; the unit words differ."""
    cn = functools.partial(num.zh_cardinal, traditional=traditional)

    def money(rng):
        n, unit = int(rng.choice([rng.integers(1, 100), rng.integers(100, 10000)])), yuan[rng.integers(len(yuan))]
        return f"{cn(n)}{unit}", f"{n}{unit}"

    def count(rng):
        n = int(rng.integers(3, 100) if rng.random() < 0.7 else rng.integers(100, 2000))
        return cn(n), str(n)

    def percent(rng):
        n = int(rng.integers(1, 101))
        return f"百分之{cn(n)}", f"{n}%"

    def clock(rng):
        hour, minute = int(rng.integers(1, 13)), int(rng.choice([0, rng.integers(1, 10), rng.integers(10, 60)]))
        if minute == 0:
            return f"{cn(hour)}{dot}整", f"{hour}:00"
        return f"{cn(hour)}{dot}{'零' if minute < 10 else ''}{cn(minute)}分", f"{hour}:{minute:02d}"

    def year(rng):
        y = int(rng.integers(1950, 2031))
        return f"{num.zh_digits(y)}年", f"{y}年"

    def date(rng):
        m, d = int(rng.integers(1, 13)), int(rng.integers(1, 32))
        return f"{cn(m)}月{cn(d)}{day}", f"{m}月{d}{day}"

    def storey(rng):
        n = int(rng.integers(2, 40))
        return f"{cn(n)}{floor}", f"{n}{floor}"

    return dict(money=money, count=count, percent=percent, clock=clock, year=year, date=date, floor=storey)


ZH = dict(
    relative=words("我妈妈 我爸爸 我的朋友 老师 医生 司机 邻居 哥哥 姐姐 弟弟 妹妹 经理 同学 奶奶 爷爷"),
    time=words("今天 昨天 明天 早上 晚上 下午 周末 上个月 明年 每天 刚才 中午"),
    place=words("公园 学校 医院 商店 超市 图书馆 火车站 机场 办公室 饭馆 银行 博物馆 公司 市场 海边 山上 电影院 书店"),
    food=words("米饭 面条 饺子 包子 苹果 西瓜 鸡蛋 蛋糕 牛肉 鱼 蔬菜 水果 面包 豆腐"),
    drink=words("茶 咖啡 牛奶 果汁 啤酒 热水"),
    thing=words("书 手机 电脑 雨伞 钥匙 衣服 鞋子 帽子 自行车 照片 报纸 杂志 礼物 桌子 椅子 包 眼镜 手表"),
    adj=words("很好 不错 太贵了 很便宜 很漂亮 很干净 很热闹 很安静 有点冷 特别热 很远 很近 很大 很小"),
    weather=words("很好 不太好 下雨了 很冷 很热 有风 阴天 晴天"),
    verb=words("买了 看了 找到了 丢了 借了 带来了 洗了 修好了 拿走了"),
    new=words("新 旧 大 小 红色的 蓝色的 黑色的 白色的"),
)


def zh_person(rng: np.random.Generator) -> Piece:
    if rng.random() < 0.5:
        return pick(faker_names("zh_CN", "name", 30))(rng)
    return pick(ZH["relative"])(rng)


ZH_GRAMMAR = Grammar(
    lang="zh",
    plain=(
        "{person}{time}去{place}了。",
        "{person}{time}在{place}吃{food}。",
        "{person}{time}想喝一杯{drink}。",
        "你的{thing}在{place}吗？",
        "这个{place}{adj}。",
        "{person}和{person2}一起去{place}。",
        "{place}{time}的天气{weather}。",
        "请把{new}{thing}放在{place}。",
        "{person}说{place}{adj}。",
        "我们{time}在{place}见面吧。",
        "{person}喜欢吃{food}和{food2}。",
        "你知道{person}{time}在哪里吗？",
        "{person}{time}{verb}{new}{thing}。",
        "{time}我在{place}{verb}{thing}。",
        "{person}为什么不去{place}？",
    ),
    numeric=(
        "{person}花了{money}买{thing}。",
        "这个{thing}要{money}。",
        "会议{time}{clock}开始。",
        "{person}是{year}出生的。",
        "{date}是我的生日。",
        "我们班有{count}个学生。",
        "{place}里有{count}个人。",
        "{place}的价格上涨了{percent}。",
        "{person}住在{floor}。",
        "这本书有{count}页。",
        "火车{clock}到{place}。",
        "{person}{year}去过{place}。",
        "我{date}要去{place}。",
    ),
    slots={**{k: pick(v) for k, v in ZH.items()}, "person": zh_person,
           **zh_numeric_slots(False, yuan=("元", "块"), dot="点", day="日", floor="楼")},
    attach=no_attach,
    finish=cjk_finish,
)

# ----------------------------------------------------------------------------------------------- Cantonese
YUE = dict(
    relative=words("我媽媽 我爸爸 我個朋友 老師 醫生 司機 鄰居 阿哥 家姐 細佬 細妹 經理 同學 嫲嫲 爺爺"),
    time=words("今日 琴日 聽日 朝早 夜晚 下晝 週末 上個月 出年 每日 啱啱 晏晝"),
    place=words("公園 學校 醫院 舖頭 超級市場 圖書館 火車站 機場 寫字樓 茶樓 銀行 博物館 公司 街市 海邊 山頂 戲院 書局"),
    food=words("飯 麵 餃子 叉燒包 蘋果 西瓜 雞蛋 蛋糕 牛肉 魚蛋 菜 生果 麵包 豆腐"),
    drink=words("奶茶 咖啡 檸檬茶 牛奶 果汁 啤酒 凍水"),
    thing=words("書 手機 電腦 遮 鎖匙 衫 鞋 帽 單車 相 報紙 禮物 枱 櫈 袋 眼鏡 手錶"),
    adj=words("好正 幾好 好貴 好平 好靚 好乾淨 好熱鬧 好靜 有啲凍 好熱 好遠 好近 好大 好細"),
    weather=words("好好 唔係幾好 落雨 好凍 好熱 有風 陰天 好晴"),
    verb=words("買咗 睇咗 搵到 跌咗 借咗 帶咗 洗咗 整好咗 攞走咗"),
    new=words("新 舊 大 細 紅色 藍色 黑色 白色"),
)


def yue_person(rng: np.random.Generator) -> Piece:
    if rng.random() < 0.5:
        return pick(faker_names("zh_TW", "name", 30))(rng)
    return pick(YUE["relative"])(rng)


YUE_GRAMMAR = Grammar(
    lang="yue",
    plain=(
        "{person}{time}去咗{place}。",
        "{person}{time}喺{place}食{food}。",
        "{person}{time}想飲杯{drink}。",
        "你嘅{thing}喺唔喺{place}呀？",
        "呢間{place}{adj}。",
        "{person}同{person2}一齊去{place}。",
        "{place}{time}天氣{weather}。",
        "唔該將{new}{thing}放喺{place}。",
        "我哋{time}喺{place}等你啦。",
        "{person}好鍾意食{food}同{food2}。",
        "你知唔知{person}{time}喺邊度呀？",
        "{person}{time}{verb}{new}{thing}。",
        "{time}我喺{place}{verb}{thing}。",
        "{person}點解唔去{place}呀？",
    ),
    numeric=(
        "{person}用咗{money}買{thing}。",
        "呢個{thing}要{money}。",
        "會議{time}{clock}開始。",
        "{person}係{year}出世嘅。",
        "{date}係我生日。",
        "我哋班有{count}個學生。",
        "{place}入面有{count}個人。",
        "{place}嘅價錢加咗{percent}。",
        "{person}住喺{floor}。",
        "呢本書有{count}頁。",
        "火車{clock}到{place}。",
        "我{date}要去{place}。",
    ),
    slots={**{k: pick(v) for k, v in YUE.items()}, "person": yue_person,
           **zh_numeric_slots(True, yuan=("蚊", "元"), dot="點", day="號", floor="樓")},
    attach=no_attach,
    finish=cjk_finish,
)


# ----------------------------------------------------------------------------------------------- Japanese
JA = dict(
    relative=words("わたし ともだち せんせい おかあさん おとうさん あに あね いもうと おとうと おばあさん"),
    time=words("きょう きのう あした けさ こんばん まいにち しゅうまつ らいしゅう せんしゅう あさ よる"),
    place=words("がっこう えき こうえん びょういん スーパー としょかん くうこう かいしゃ レストラン ぎんこう "
                "デパート うみ やま コンビニ ホテル"),
    food=words("パン ごはん りんご バナナ ケーキ ラーメン すし たまご さかな やさい カレー うどん"),
    drink=words("コーヒー おちゃ みず ぎゅうにゅう ジュース ビール"),
    thing=words("ほん かさ かぎ けいたい パソコン かばん くつ ぼうし じてんしゃ しゃしん てがみ ノート カメラ とけい"),
    adj=words("おおきい ちいさい あたらしい ふるい たかい やすい あかい しろい"),
    quality=words("しずか にぎやか きれい ゆうめい べんり"),
    weather=words("いいてんき あめ くもり ゆき"),
    mood=words("うれしい かなしい ねむい いそがしい"),
)


def ja_person(rng: np.random.Generator) -> Piece:
    if rng.random() < 0.5:
        name = pick(faker_names("ja_JP", "last_kana_name", 30))(rng)[0] + "さん"
        return name, name
    return pick(JA["relative"])(rng)


def ja_slots() -> dict[str, Slot]:
    def counter(lo: int, hi: int, unit: str, written_unit: str | None = None) -> Slot:
        def slot(rng):
            n = int(rng.integers(lo, hi))
            return num.ja_cardinal(n, unit), f"{n}{unit if written_unit is None else written_unit}"
        return slot

    return dict(money=counter(10, 100000, "えん"), year=counter(1950, 2031, "ねん"), month=counter(1, 13, "がつ"),
                percent=counter(1, 101, "パーセント", "%"), number=counter(1, 100, "ばん"))


JA_GRAMMAR = Grammar(
    lang="ja",
    plain=(
        "{person}は{time}{place}へいきました。",
        "{person}は{time}{place}で{food}をたべました。",
        "{person}は{time}{drink}をのみたいです。",
        "{person}の{adj}{thing}はどこですか？",
        "この{place}はとても{quality}です。",
        "{person}と{person2}は{place}にいきます。",
        "{place}は{time}{weather}ですね。",
        "{thing}を{place}にわすれました。",
        "{time}{place}であいましょう。",
        "{person}は{food}と{food2}がすきです。",
        "{person}は{adj}{thing}をかいました。",
        "{person}はとても{mood}です。",
        "{place}で{drink}をのみませんか？",
    ),
    numeric=(
        "この{thing}は{money}です。",
        "{person}は{year}にうまれました。",
        "{place}のねだんは{percent}あがりました。",
        "{person}は{time}{number}のバスにのります。",
        "{month}に{place}へいきます。",
        "{person}は{money}で{thing}をかいました。",
        "{year}に{place}ができました。",
    ),
    slots={**{k: pick(v) for k, v in JA.items()}, "person": ja_person, **ja_slots()},
    attach=no_attach,
    finish=cjk_finish,
)


# ----------------------------------------------------------------------------------------------- Korean
KO_PARTICLES = {"top": ("은", "는"), "obj": ("을", "를"), "subj": ("이", "가"), "with": ("과", "와"),
                "cop": ("이에요", "예요")}


def has_final_consonant(word: str) -> bool:
    """Whether the last hangul syllable ends in a consonant (batchim); particles depend on it."""
    last = word[-1]
    if not "가" <= last <= "힣":
        raise ValueError(f"{word!r} does not end in a hangul syllable")
    return (ord(last) - ord("가")) % 28 != 0


def ko_attach(piece: Piece, spec: str) -> Piece:
    if spec not in KO_PARTICLES:
        raise ValueError(f"Korean format spec {spec!r}; expected one of {sorted(KO_PARTICLES)}")
    particle = KO_PARTICLES[spec][0 if has_final_consonant(piece[0]) else 1]
    return piece[0] + particle, piece[1] + particle


def ko_finish(say: str, written: str) -> tuple[str, str]:
    return " ".join(PUNCT_RE.sub(" ", say).split()), written


def ko_slots() -> dict[str, Slot]:
    def counter(lo: int, hi: int, unit: str, written_unit: str | None = None) -> Slot:
        def slot(rng):
            n = int(rng.integers(lo, hi))
            return f"{num.ko_cardinal(n)} {unit}", f"{n}{unit if written_unit is None else written_unit}"
        return slot

    def date(rng):
        m, d = int(rng.integers(1, 13)), int(rng.integers(1, 32))
        return f"{num.ko_month(m)} {num.ko_cardinal(d)}일", f"{m}월 {d}일"

    return dict(money=counter(100, 100000, "원"), year=counter(1950, 2031, "년"), floor=counter(2, 40, "층"),
                percent=counter(1, 101, "퍼센트", "%"), date=date)


KO = dict(
    relative=words("친구 선생님 어머니 아버지 형 누나 동생 할머니 의사 사장님"),
    time=words("오늘 어제 내일 아침에 저녁에 주말에 다음_주에 지난주에 매일"),
    place=words("학교 역 공원 병원 마트 도서관 공항 회사 식당 은행 백화점 바다 산 편의점 시장 카페"),
    food=words("빵 밥 사과 바나나 케이크 라면 김치 계란 생선 채소 떡볶이 비빔밥"),
    drink=words("커피 차 물 우유 주스 맥주"),
    thing=words("책 우산 열쇠 휴대폰 컴퓨터 가방 신발 모자 자전거 사진 편지 공책 카메라 시계"),
    adj=words("큰 작은 새 오래된 비싼 싼 예쁜 빨간"),
    state=words("좋아요 커요 조용해요 멀어요 가까워요 깨끗해요 복잡해요"),
    weather=words("좋아요 추워요 더워요 흐려요"),
)


def ko_person(rng: np.random.Generator) -> Piece:
    if rng.random() < 0.5:
        name = pick(faker_names("ko_KR", "name", 30))(rng)[0] + " 씨"
        return name, name
    return pick(KO["relative"])(rng)


KO_GRAMMAR = Grammar(
    lang="ko",
    plain=(
        "{person:top} {time} {place}에 갔어요.",
        "{person:top} {time} {place}에서 {food:obj} 먹었어요.",
        "{person:top} {time} {drink:obj} 마시고 싶어요.",
        "{adj} {thing:subj} {place}에 있어요?",
        "이 {place:top} 정말 {state}.",
        "{person:with} {person2:top} {place}에 가요.",
        "{time} {place} 날씨가 {weather}.",
        "{thing:obj} {place}에 두고 왔어요.",
        "{time} {place}에서 만나요.",
        "{person:top} {food:obj} 좋아해요.",
        "{person:top} {adj} {thing:obj} 샀어요.",
        "{place}에서 {drink} 한잔 할까요?",
    ),
    numeric=(
        "이 {thing:top} {money:cop}.",
        "{person:top} {year}에 태어났어요.",
        "{place} 가격이 {percent} 올랐어요.",
        "{person}의 {place:top} {floor}에 있어요.",
        "{date}에 {place}에 가요.",
        "{person:top} {money}에 {thing:obj} 샀어요.",
    ),
    slots={**{k: pick(v) for k, v in KO.items()}, "person": ko_person, **ko_slots()},
    attach=ko_attach,
    finish=ko_finish,
)

GRAMMARS: dict[str, Grammar] = {g.lang: g for g in (ZH_GRAMMAR, YUE_GRAMMAR, EN_GRAMMAR, JA_GRAMMAR, KO_GRAMMAR)}


def random_sentence(lang: str, rng: np.random.Generator, p_numeric: float = 0.35) -> Sentence:
    """One sentence of ``lang``; with probability ``p_numeric`` from a number template (an ITN pair)."""
    if lang not in GRAMMARS:
        raise ValueError(f"lang={lang!r}; expected one of {sorted(GRAMMARS)}")
    return make_sentence(GRAMMARS[lang], rng, numeric=bool(rng.random() < p_numeric))



def sample_sentences(lang: str, n: int, seed: int = 0) -> list[Sentence]:
    """``n`` sentences of ``lang`` (both kinds), for vocabulary statistics and the espeak-ng reading check."""
    rng = np.random.default_rng(seed)
    return [random_sentence(lang, rng) for _ in range(n)]
