"""Write the quickstart dataset: school-subject classification in Chinese and English.

The notes' own example of an exact-answer task is "判断一道题是数学题还是语文题". A base model cannot do
it zero-shot in the required one-word format (it rambles on), and a few minutes of LoRA teach it.
Instructions are phrased many ways (the notes warn that one fixed phrasing over-fits), questions are
built from templates with varied slots, and the answer language follows the instruction's language.

Run: python examples/make_quickstart_data.py  (deterministic; writes examples/data/)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = {  # key: (Chinese label, English label)
    "math": ("数学", "math"),
    "chinese": ("语文", "Chinese"),
    "english": ("英语", "English"),
    "physics": ("物理", "physics"),
    "chemistry": ("化学", "chemistry"),
    "history": ("历史", "history"),
    "geography": ("地理", "geography"),
    "biology": ("生物", "biology"),
}

POEMS = ["床前明月光", "白日依山尽", "春眠不觉晓", "红豆生南国", "锄禾日当午", "欲穷千里目", "举头望明月",
         "谁知盘中餐", "野火烧不尽", "海内存知己"]
IDIOMS = ["画蛇添足", "守株待兔", "亡羊补牢", "刻舟求剑", "井底之蛙", "对牛弹琴", "掩耳盗铃", "杯弓蛇影"]
WORDS = ["apple", "library", "beautiful", "quickly", "weather", "friendship", "necessary", "although"]
VERBS = [("go", "goes"), ("play", "plays"), ("watch", "watches"), ("study", "studies"), ("fly", "flies")]
ELEMENTS = [("钠", "Na", "sodium"), ("氯", "Cl", "chlorine"), ("铁", "Fe", "iron"), ("铜", "Cu", "copper"),
            ("氧", "O", "oxygen"), ("碳", "C", "carbon"), ("钙", "Ca", "calcium")]
DYNASTIES = ["唐朝", "宋朝", "明朝", "清朝", "汉朝", "秦朝"]
EVENTS = ["the French Revolution", "the fall of the Roman Empire", "the Industrial Revolution",
          "World War I", "the Renaissance", "the Cold War"]
RIVERS = [("长江", "Yangtze"), ("黄河", "Yellow River"), ("尼罗河", "Nile"), ("亚马逊河", "Amazon")]
COUNTRIES = [("日本", "Japan"), ("巴西", "Brazil"), ("埃及", "Egypt"), ("澳大利亚", "Australia"), ("加拿大", "Canada")]
ORGANS = [("心脏", "heart"), ("肺", "lungs"), ("肝脏", "liver"), ("肾脏", "kidneys")]
CELLS = [("线粒体", "mitochondria"), ("叶绿体", "chloroplasts"), ("细胞核", "the nucleus"), ("核糖体", "ribosomes")]


def questions(subject: str, rng: random.Random) -> list[tuple[str, str]]:
    """(language, question) candidates for one subject, with random slots filled."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    poem, idiom, word = rng.choice(POEMS), rng.choice(IDIOMS), rng.choice(WORDS)
    verb = rng.choice(VERBS)
    el = rng.choice(ELEMENTS)
    dyn, event = rng.choice(DYNASTIES), rng.choice(EVENTS)
    river, country = rng.choice(RIVERS), rng.choice(COUNTRIES)
    organ, cell = rng.choice(ORGANS), rng.choice(CELLS)
    v, t, m = rng.randint(2, 30), rng.randint(2, 20), rng.randint(1, 50)
    bank = {
        "math": [("zh", f"计算 {a} × {c} + {b} 等于多少？"), ("zh", f"一个长方形长{a}厘米，宽{c}厘米，它的面积是多少？"),
                 ("en", f"Solve for x: {c}x + {b} = {a + b}."), ("en", f"What is the greatest common divisor of {a} and {b}?"),
                 ("zh", f"解方程：{c}x − {b} = {a}。"), ("en", f"Find the derivative of x^{c} + {a}x.")],
        "chinese": [("zh", f"“{poem}”出自哪首古诗？作者是谁？"), ("zh", f"请解释成语“{idiom}”的意思。"),
                    ("zh", f"用“{idiom}”造一个句子。"), ("en", f"In classical Chinese poetry, who wrote the line “{poem}”?"),
                    ("zh", f"“{poem}”这句诗用了什么修辞手法？"), ("en", f"Explain the Chinese idiom “{idiom}”.")],
        "english": [("zh", f"“{word}”这个英文单词是什么词性？"), ("en", f"Choose the correct form: She ___ ({verb[0]}) to school every day."),
                    ("en", f"Give a synonym for the word “{word}”."), ("zh", f"把“{word}”这个单词用在一个英文句子里。"),
                    ("en", f"Is “{verb[1]}” the correct third-person singular form of “{verb[0]}”?"),
                    ("zh", f"英语中“{verb[0]}”的第三人称单数形式是什么？")],
        "physics": [("zh", f"一辆车以{v}米每秒匀速行驶{t}秒，受到的合力是多少？"), ("en", f"A {m} kg object accelerates at {c} m/s². What force acts on it?"),
                    ("zh", f"质量为{m}千克的物体从{t}米高处落下，重力势能减少了多少？"), ("en", "Why does a ball thrown upward slow down?"),
                    ("en", f"A current of {c} A flows through a {a} ohm resistor. What is the voltage?"),
                    ("zh", f"电阻为{a}欧的导体通过{c}安的电流，电压是多少？")],
        "chemistry": [("zh", f"{el[0]}元素的化学符号是什么？"), ("en", f"What is the chemical symbol of {el[2]}?"),
                      ("zh", "配平化学方程式：H2 + O2 → H2O，并说明反应类型。"), ("en", f"How many protons does an atom of {el[2]} have?"),
                      ("zh", f"{el[1]}在元素周期表中属于金属还是非金属？"), ("en", f"Is {el[2]} ({el[1]}) a metal or a non-metal?")],
        "history": [("zh", f"{dyn}是在哪一年建立的？"), ("en", f"What were the main causes of {event}?"),
                    ("zh", f"简述{dyn}灭亡的主要原因。"), ("en", f"In which century did {event} take place?"),
                    ("zh", f"{dyn}有哪些著名的皇帝？"), ("en", f"Who were the key figures of {event}?")],
        "geography": [("zh", f"{river[0]}流经哪些国家或省份？"), ("en", f"Which ocean does the {river[1]} flow into?"),
                      ("zh", f"{country[0]}位于哪个大洲？"), ("en", f"What is the climate of {country[1]} like?"),
                      ("zh", f"{country[0]}的首都是哪里？"), ("en", f"Which continent is {country[1]} in?")],
        "biology": [("zh", f"{organ[0]}在人体中起什么作用？"), ("en", f"What is the function of the {organ[1]} in the human body?"),
                    ("zh", f"细胞中的{cell[0]}有什么功能？"), ("en", f"What role do {cell[1]} play in a cell?"),
                    ("zh", "光合作用需要哪些条件？"), ("en", "How do plants make their food through photosynthesis?")],
    }
    return bank[subject]


INSTRUCTIONS = {
    "zh": ["判断下面这道题属于哪个学科，只回答学科名称。", "这道题是哪一科的？请用一个词回答。", "请给下列题目分类（数学/语文/英语/物理/化学/历史/地理/生物）。",
           "阅读题目，指出它所属的科目。", "下面的问题考查的是哪门课？", "学科分类：", "请判断题目所属学科，不要解答题目。",
           "这是一道什么科目的题？"],
    "en": ["Which school subject does this question belong to? Answer with one word.", "Classify the subject of the following question.",
           "Name the subject this exam question tests (math, Chinese, English, physics, chemistry, history, geography, biology).",
           "Subject:", "Tell me which class this homework question is from. Do not solve it.",
           "What subject is this? Reply with the subject name only.", "Identify the academic subject of the question below."],
}


def build(n: int = 320, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows, seen = [], set()
    subjects = list(SUBJECTS)
    while len(rows) < n:
        subject = subjects[len(rows) % len(subjects)]
        q_lang, question = rng.choice(questions(subject, rng))
        lang = q_lang if rng.random() < 0.8 else ("en" if q_lang == "zh" else "zh")
        instruction = rng.choice(INSTRUCTIONS[lang])
        if (instruction, question) in seen:
            continue
        seen.add((instruction, question))
        answer = SUBJECTS[subject][0 if lang == "zh" else 1]
        rows.append({"instruction": instruction, "input": question, "output": answer})
    rng.shuffle(rows)
    return rows


def main() -> None:
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    rows = build()
    (out / "subjects.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} examples to {out / 'subjects.json'}")


if __name__ == "__main__":
    main()
