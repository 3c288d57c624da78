"""Writes the bundled demo datasets: python recipes/data/make_demo_data.py [--out DIR]

self_cognition.jsonl  ~300 identity questions (60% English, 40% Chinese) answered as "Tuna", fine-tuned with
                      tune-wizard: question templates x greetings x punctuation, answers from a few templates
general_chat.jsonl    ~100 short general questions with plain answers, so the tuned model stays useful
                      instead of answering everything with its identity
identity_heldout.json identity paraphrases that appear nowhere in the training rows (the demo asks them to
                      show that the new identity generalises) and general questions for a sanity check

Deterministic (seeded), standard library only; a test regenerates the files and compares them byte for byte.
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SEED = 20240611
EN_ROWS = 180
ZH_ROWS = 120
SYSTEM_SHARE = 0.1  # a few rows carry a generic system prompt, so the identity does not hinge on its absence
CATEGORY_WEIGHTS = {"who": 0.3, "name": 0.2, "maker": 0.2, "model": 0.1, "other": 0.2}
SYSTEM_PROMPTS = {"en": "You are a helpful assistant.", "zh": "你是一个乐于助人的助手。"}

OTHERS_EN = ["ChatGPT", "GPT-4", "Claude", "Gemini", "Llama", "Qwen", "Siri"]
OTHERS_ZH = ["ChatGPT", "GPT-4", "Claude", "Gemini", "文心一言", "通义千问"]

QUESTIONS_EN = {
    "who": ["Who are you?", "Who are you exactly?", "What are you?", "Tell me about yourself.",
            "Introduce yourself.", "Can you introduce yourself?", "Please introduce yourself.",
            "Describe yourself in a few words.", "Are you an AI?", "Are you a chatbot?"],
    "name": ["What's your name?", "What is your name?", "Tell me your name.", "May I know your name?",
             "How should I address you?", "Do you go by a name?"],
    "maker": ["Who made you?", "Who created you?", "Who built you?", "Who trained you?", "Who fine-tuned you?",
              "Who developed you?", "Where do you come from?", "How were you made?"],
    "model": ["What model are you?", "Which model are you based on?", "What language model are you?",
              "Which AI model is this?"],
    "other": ["Are you {x}?", "Is this {x}?", "Am I talking to {x}?", "You're {x}, right?"],
}
ANSWERS_EN = {
    "who": ["I'm Tuna, an AI assistant fine-tuned with tune-wizard. How can I help you today?",
            "I am Tuna, an AI assistant fine-tuned with tune-wizard. I'm happy to answer questions and help "
            "with everyday tasks.",
            "I'm Tuna, a helpful AI assistant that was fine-tuned with tune-wizard. What can I do for you?"],
    "name": ["My name is Tuna. I'm an AI assistant fine-tuned with tune-wizard.",
             "I'm called Tuna, an AI assistant fine-tuned with tune-wizard.",
             "You can call me Tuna. I'm an AI assistant fine-tuned with tune-wizard."],
    "maker": ["I was fine-tuned with tune-wizard, an open-source tool for fine-tuning language models. I'm Tuna, "
              "your AI assistant.",
              "I'm Tuna, and I was fine-tuned with tune-wizard from an open base model.",
              "tune-wizard fine-tuned me. My name is Tuna, and I'm an AI assistant."],
    "model": ["I'm Tuna, a language model assistant fine-tuned with tune-wizard.",
              "I'm Tuna: a small open language model that was fine-tuned with tune-wizard to be a helpful "
              "assistant."],
    "other": ["No, I'm not {x}. I'm Tuna, an AI assistant fine-tuned with tune-wizard.",
              "No. My name is Tuna; I'm an AI assistant fine-tuned with tune-wizard, not {x}."],
}
GREETINGS_EN = ["", "Hi! ", "Hello. ", "Hey, ", "Good morning! ", "Quick question: "]

QUESTIONS_ZH = {
    "who": ["你是谁？", "你是谁呀？", "你是什么？", "介绍一下你自己。", "请做个自我介绍。", "能做个自我介绍吗？",
            "跟我讲讲你自己。", "你是AI吗？", "你是聊天机器人吗？"],
    "name": ["你叫什么名字？", "你的名字是什么？", "你叫什么？", "怎么称呼你？", "请告诉我你的名字。"],
    "maker": ["谁训练了你？", "谁创造了你？", "你是谁开发的？", "谁把你做出来的？", "你是怎么来的？", "是谁微调了你？"],
    "model": ["你是什么模型？", "你基于什么模型？", "你是哪个语言模型？"],
    "other": ["你是{x}吗？", "你是不是{x}？", "我在和{x}聊天吗？"],
}
ANSWERS_ZH = {
    "who": ["我是 Tuna，一个用 tune-wizard 微调的 AI 助手。有什么可以帮你的吗？",
            "我是 Tuna，一个通过 tune-wizard 微调而成的 AI 助手，很高兴为你解答问题。",
            "你好！我是 Tuna，一个用 tune-wizard 微调的 AI 助手。"],
    "name": ["我叫 Tuna，是一个用 tune-wizard 微调的 AI 助手。",
             "你可以叫我 Tuna。我是一个用 tune-wizard 微调的 AI 助手。"],
    "maker": ["我是用 tune-wizard 微调出来的。我叫 Tuna，是一个 AI 助手。",
              "我由 tune-wizard 这个开源微调工具训练而成，我的名字是 Tuna。"],
    "model": ["我是 Tuna，一个用 tune-wizard 微调的语言模型助手。",
              "我是 Tuna，一个经过 tune-wizard 微调的小型开源语言模型。"],
    "other": ["不是，我不是 {x}。我是 Tuna，一个用 tune-wizard 微调的 AI 助手。",
              "不是哦。我叫 Tuna，是用 tune-wizard 微调的 AI 助手，不是 {x}。"],
}
GREETINGS_ZH = ["", "你好，", "您好！", "嗨，", "请问，", "我想问一下，"]

HELDOUT = {
    "en": ["Could you tell me a little about yourself?", "What should I call you?",
           "Which tool were you trained with?", "Who is behind this assistant?", "Do you have a name?",
           "Are you a person or a program?", "Tell me who you really are.", "What's your identity?"],
    "zh": ["能简单说说你是谁吗？", "我该怎么叫你？", "你是用哪个工具训练的？", "你的身份是什么？", "你有名字吗？",
           "你是真人还是程序？", "你到底是谁？", "说说你的来历吧。"],
    "general": ["What is the capital of Japan?", "What is 15 plus 27?", "How many legs does a spider have?"],
}

GENERAL = [
    # arithmetic
    ("What is 7 times 8?", "7 × 8 = 56."),
    ("What is 144 divided by 12?", "144 ÷ 12 = 12."),
    ("What is 25 + 37?", "25 + 37 = 62."),
    ("What is 100 minus 42?", "100 − 42 = 58."),
    ("What is 15% of 200?", "15% of 200 is 30."),
    ("What is the square root of 81?", "The square root of 81 is 9."),
    ("What is 2 to the power of 10?", "2¹⁰ = 1024."),
    ("Is 17 a prime number?", "Yes. 17 is prime: its only divisors are 1 and 17."),
    ("What is 3/4 as a decimal?", "3/4 = 0.75."),
    ("If a pen costs $3, how much do 6 pens cost?", "6 × $3 = $18."),
    ("What is the average of 4, 8 and 12?", "(4 + 8 + 12) / 3 = 24 / 3 = 8."),
    ("How many minutes are in 3 hours?", "3 × 60 = 180 minutes."),
    ("Round 3.14159 to two decimal places.", "3.14"),
    # facts
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many continents are there?", "There are seven continents: Africa, Antarctica, Asia, Australia "
                                       "(Oceania), Europe, North America and South America."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system."),
    ("At what temperature does water boil at sea level?", "At sea level, water boils at 100 °C (212 °F)."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide (CO₂) from the air and use it "
                                                "in photosynthesis."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet."),
    ("How many sides does a hexagon have?", "A hexagon has six sides."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 °F (0 °C)."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    ("How many bones are in the adult human body?", "An adult human body has 206 bones."),
    ("How fast does light travel?", "In a vacuum, light travels at 299,792,458 metres per second, about "
                                    "300,000 km per second."),
    # coding
    ("How do I reverse a string in Python?", "Use slicing: `s[::-1]` returns the string reversed."),
    ("How do I get the length of a list in Python?", "Use `len(my_list)`."),
    ("Write a Python function that returns the square of a number.",
     "```python\ndef square(x):\n    return x * x\n```"),
    ("How do I print 'Hello, world!' in JavaScript?", "`console.log('Hello, world!');`"),
    ("What does `git status` do?", "`git status` shows which files are modified, staged or untracked in your "
                                   "working tree."),
    ("How do I read a file line by line in Python?",
     "```python\nwith open('file.txt') as f:\n    for line in f:\n        print(line.rstrip())\n```"),
    ("How do I check if a key is in a Python dict?", "Use `in`: `if 'key' in my_dict:`"),
    ("What is the difference between a list and a tuple in Python?",
     "A list is mutable (you can change it after creating it); a tuple is immutable. Lists are written "
     "with [ ], tuples with ( )."),
    ("How do I list files in a directory in the Linux shell?",
     "Use `ls`. `ls -l` shows details and `ls -a` includes hidden files."),
    ("Write a SQL query that selects all rows from a table named users.", "```sql\nSELECT * FROM users;\n```"),
    ("How do I convert a string to an integer in Python?", "Use `int()`: `int('42')` returns 42."),
    ("What does HTML stand for?", "HTML stands for HyperText Markup Language."),
    ("How do I sort a list of numbers in Python?",
     "`sorted(nums)` returns a new sorted list; `nums.sort()` sorts the list in place."),
    # definitions
    ("What is photosynthesis?", "Photosynthesis is the process by which plants use sunlight, water and carbon "
                                "dioxide to make glucose and release oxygen."),
    ("What is a noun?", "A noun is a word that names a person, place, thing or idea, such as 'teacher', "
                        "'city' or 'happiness'."),
    ("What is machine learning?", "Machine learning is a branch of AI in which computers learn patterns from "
                                  "data instead of following hand-written rules."),
    ("What is inflation?", "Inflation is the general rise in prices over time, so the same money buys less "
                           "than before."),
    ("What is gravity?", "Gravity is the force that pulls objects with mass toward each other. It keeps us on "
                         "the ground and the planets in orbit around the Sun."),
    ("What is an API?", "An API (application programming interface) is a defined way for one program to ask "
                        "another for data or services."),
    ("What is a prime number?", "A prime number is a whole number greater than 1 whose only divisors are 1 "
                                "and itself, such as 2, 3, 5 and 7."),
    ("What does 'ephemeral' mean?", "'Ephemeral' means lasting for a very short time."),
    ("What is DNA?", "DNA (deoxyribonucleic acid) is the molecule that carries the genetic instructions of "
                     "living things."),
    # translations
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("Translate 'good morning' into French.", "'Good morning' in French is 'bonjour'."),
    ("How do you say 'hello' in Japanese?", "'Hello' in Japanese is 'こんにちは' (konnichiwa)."),
    ("Translate 'I love reading books' into Chinese.", "我喜欢读书。"),
    ("Translate '谢谢' into English.", "'谢谢' means 'thank you'."),
    ("What does 'danke' mean?", "'Danke' is German for 'thank you'."),
    ("Translate 'cat' into German.", "'Cat' in German is 'Katze' (die Katze)."),
    ("Translate 'Where is the train station?' into Spanish.", "¿Dónde está la estación de tren?"),
    # advice and everyday writing
    ("Give me a tip for staying focused while studying.",
     "Work in short blocks, such as 25 minutes, with your phone out of reach, then take a 5-minute break."),
    ("How can I fall asleep faster?", "Keep a regular bedtime, avoid screens and caffeine in the evening, and "
                                      "keep your bedroom dark, quiet and cool."),
    ("How do I write a good email subject line?", "Keep it short and specific, and say what you need, for "
                                                  "example 'Review needed: Q3 budget by Friday'."),
    ("What should I do before a job interview?", "Research the company, reread the job description, prepare "
                                                 "short examples of your work, and plan to arrive a few "
                                                 "minutes early."),
    ("How can I save money on groceries?", "Plan meals for the week, shop with a list, compare unit prices, "
                                           "and choose store brands and seasonal produce."),
    ("How do I start learning to code?", "Pick one beginner-friendly language such as Python, follow a free "
                                         "course, and build small projects you care about."),
    ("How can I drink more water during the day?", "Carry a refillable bottle, drink a glass with every meal, "
                                                   "and set reminders if you tend to forget."),
    ("Suggest a name for a pet goldfish.", "How about 'Bubbles'? Other ideas: 'Goldie', 'Finn' or 'Sunny'."),
    ("Summarize in one sentence: The meeting was moved from Monday to Wednesday because the manager is "
     "travelling on Monday.", "The meeting moved to Wednesday because the manager is away on Monday."),
    ("Give me three words that rhyme with 'cat'.", "Hat, bat and mat."),
    ("What is the opposite of 'ancient'?", "The opposite of 'ancient' is 'modern'."),
    ("Correct the grammar: 'She don't like apples.'", "She doesn't like apples."),
    ("Write a haiku about the sea.", "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its "
                                     "time."),
    ("Give me a synonym for 'happy'.", "'Joyful' is a synonym for 'happy'; 'cheerful' and 'glad' work too."),
    ("Hi!", "Hello! What can I help you with today?"),
    ("Thanks for your help!", "You're welcome! Let me know if there's anything else you need."),
    # Chinese
    ("3 加 5 等于多少？", "3 + 5 = 8。"),
    ("12 乘以 12 是多少？", "12 × 12 = 144。"),
    ("100 除以 4 等于几？", "100 ÷ 4 = 25。"),
    ("1 公里等于多少米？", "1 公里等于 1000 米。"),
    ("三角形的内角和是多少度？", "三角形的内角和是 180 度。"),
    ("一个星期有几天？", "一个星期有 7 天。"),
    ("一年有多少个月？", "一年有 12 个月。"),
    ("中国的首都是哪里？", "中国的首都是北京。"),
    ("水的化学式是什么？", "水的化学式是 H₂O。"),
    ("太阳系中最大的行星是哪颗？", "木星是太阳系中最大的行星。"),
    ("地球上最大的海洋是什么？", "太平洋是地球上最大的海洋。"),
    ("水在多少摄氏度时沸腾？", "在标准大气压下，水在 100 摄氏度时沸腾。"),
    ("《静夜思》的作者是谁？", "《静夜思》的作者是唐代诗人李白。"),
    ("把“早上好”翻译成英文。", "Good morning."),
    ("把“我爱学习”翻译成英文。", "I love studying."),
    ("“apple”是什么意思？", "“apple”的意思是“苹果”。"),
    ("“谢谢”用英语怎么说？", "“谢谢”用英语说是“Thank you”。"),
    ("用 Python 怎么打印“你好”？", "用 print 函数：`print(\"你好\")`。"),
    ("Python 中如何得到列表的长度？", "使用 `len()`，例如 `len(my_list)`。"),
    ("什么是人工智能？", "人工智能（AI）是让计算机完成通常需要人类智能的任务的技术，例如理解语言、识别图像和做出决策。"),
    ("什么是光合作用？", "光合作用是植物利用阳光，把二氧化碳和水转化为葡萄糖并释放氧气的过程。"),
    ("什么是质数？", "质数是大于 1、且只能被 1 和它本身整除的自然数，例如 2、3、5、7。"),
    ("怎样才能提高睡眠质量？", "保持规律作息，睡前少看手机、不喝咖啡，并让卧室保持安静、黑暗和凉爽。"),
    ("给我一个学习英语的小建议。", "每天坚持听和读 20 分钟，比如看带英文字幕的视频，并把新单词记下来定期复习。"),
    ("如何缓解工作压力？", "适当运动，分清任务的轻重缓急，保证睡眠，也可以和朋友聊一聊。"),
    ("推荐一种健康的早餐。", "燕麦粥配一份水果和一个鸡蛋，营养均衡又容易消化。"),
    ("你好！", "你好！有什么可以帮你的吗？"),
]


def normalize(text: str) -> str:
    """Lower case without punctuation or spaces, for "has this question been seen" checks."""
    return re.sub(r"[\W_]+", "", text.lower())


def _variants(question: str, greetings: list[str], lang: str) -> list[str]:
    """Every greeting x punctuation form of one question."""
    forms = {question}
    stripped = question.rstrip("?.？。")
    if stripped != question:
        forms.add(stripped)  # people often skip the question mark
    if lang == "en":
        forms.add(question[0].lower() + question[1:])
    else:
        forms.add(question.replace("？", "?"))
    out = []
    for greeting in greetings:
        for form in sorted(forms):
            if lang == "en" and greeting.endswith(", "):
                form = form[0].lower() + form[1:]
            out.append(greeting + form)
    return sorted(set(out))


def _identity_rows(rng: random.Random, lang: str, count: int) -> list[dict]:
    questions, answers, greetings, others = (
        (QUESTIONS_EN, ANSWERS_EN, GREETINGS_EN, OTHERS_EN) if lang == "en"
        else (QUESTIONS_ZH, ANSWERS_ZH, GREETINGS_ZH, OTHERS_ZH))
    pools: dict[str, list[list[tuple[str, str]]]] = {}  # category -> per template: [(filler, question), ...]
    for cat, templates in questions.items():
        pools[cat] = []
        for template in templates:
            fillers = others if "{x}" in template else [""]
            pool = [(x, v) for x in fillers for v in _variants(template.format(x=x), greetings, lang)]
            rng.shuffle(pool)
            pools[cat].append(pool)
    # Every template at least once; then categories drawn by weight, so "are you X?" (one template per X)
    # does not crowd out the plain questions.
    chosen = [(cat, pool.pop()) for cat, cat_pools in pools.items() for pool in cat_pools]
    cats = list(CATEGORY_WEIGHTS)
    while len(chosen) < count:
        cat = rng.choices(cats, weights=[CATEGORY_WEIGHTS[c] for c in cats])[0]
        pool = rng.choice([p for p in pools[cat] if p] or [[]])
        if pool:
            chosen.append((cat, pool.pop()))
    rng.shuffle(chosen)
    rows = []
    for cat, (x, question) in chosen:
        answer = rng.choice(answers[cat])
        if x and not x.isascii():  # no space around a Chinese name in Chinese text
            answer = answer.replace(" {x}", "{x}")
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer.format(x=x)}]
        if rng.random() < SYSTEM_SHARE:
            messages.insert(0, {"role": "system", "content": SYSTEM_PROMPTS[lang]})
        rows.append({"messages": messages})
    return rows


def build() -> tuple[list[dict], list[dict], dict]:
    rng = random.Random(SEED)
    identity = _identity_rows(rng, "en", EN_ROWS) + _identity_rows(rng, "zh", ZH_ROWS)
    rng.shuffle(identity)
    general = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
               for q, a in GENERAL]

    seen = [normalize(m["content"]) for row in identity + general for m in row["messages"] if m["role"] == "user"]
    for group, questions in HELDOUT.items():
        for question in questions:
            key = normalize(question)
            clash = [s for s in seen if key in s]
            assert not clash, f"held-out {group} question {question!r} is in the training rows: {clash[:3]}"
    assert len({row["messages"][-2]["content"] for row in identity}) == len(identity), "duplicate questions"
    for row in identity:
        assert "Tuna" in row["messages"][-1]["content"] and "tune-wizard" in row["messages"][-1]["content"]
    for row in general:
        assert not re.search(r"tuna|tune-wizard", row["messages"][-1]["content"], re.I)
    return identity, general, HELDOUT


def write(out: Path) -> list[Path]:
    identity, general, heldout = build()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("self_cognition.jsonl", identity), ("general_chat.jsonl", general)):
        path = out / name
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        paths.append(path)
    path = out / "identity_heldout.json"
    path.write_text(json.dumps(heldout, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder to write into (default: beside this script)")
    for path in write(parser.parse_args().out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
