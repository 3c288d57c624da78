"""Write the DPO demo's preference pairs: recipes/data/preference_demo.jsonl and preference_heldout.jsonl.

    python recipes/data/make_preference_data.py        # rewrites both files, byte for byte the same each time

The preference is a style a reader sees at a glance: the chosen answer gives the fact in one sentence and
closes with "Hope that helps!"; the rejected answer pads the fact with filler, the way a small chat model tends
to answer, and a third of the time never gives the fact at all. Both answer the same question, so what DPO can learn from a pair is the style,
not new facts. Held-out pairs ask questions that no training pair asks.

Rows are in TRL's conversational preference format, one JSON object per line:
    {"prompt": [{"role": "user", "content": ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}
"""
from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 1234
TRAIN_PAIRS = 200
HELDOUT_PAIRS = 30
HERE = Path(__file__).resolve().parent
SIGN_OFF = "Hope that helps!"

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
    ("Canada", "Ottawa"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Poland", "Warsaw"),
    ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Chile", "Santiago"), ("Cuba", "Havana"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Hungary", "Budapest"), ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"), ("India", "New Delhi"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Iran", "Tehran"),
    ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Belgium", "Brussels"), ("Morocco", "Rabat"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"), ("up", "down"),
    ("early", "late"), ("full", "empty"), ("hard", "soft"), ("loud", "quiet"), ("rich", "poor"), ("wet", "dry"),
    ("open", "closed"), ("old", "young"), ("strong", "weak"), ("tall", "short"), ("thick", "thin"),
    ("heavy", "light"), ("clean", "dirty"), ("near", "far"), ("first", "last"), ("win", "lose"),
    ("push", "pull"), ("buy", "sell"), ("day", "night"), ("north", "south"),
]
BABIES = [
    ("cat", "kitten"), ("dog", "puppy"), ("cow", "calf"), ("sheep", "lamb"), ("horse", "foal"), ("goat", "kid"),
    ("duck", "duckling"), ("frog", "tadpole"), ("bear", "cub"), ("lion", "cub"), ("kangaroo", "joey"),
    ("deer", "fawn"), ("goose", "gosling"), ("swan", "cygnet"), ("owl", "owlet"), ("pig", "piglet"),
    ("eagle", "eaglet"), ("hen", "chick"), ("seal", "pup"), ("whale", "calf"),
]
PLURALS = [
    ("mouse", "mice"), ("child", "children"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"),
    ("man", "men"), ("woman", "women"), ("person", "people"), ("leaf", "leaves"), ("knife", "knives"),
    ("wolf", "wolves"), ("box", "boxes"), ("city", "cities"), ("baby", "babies"), ("cactus", "cacti"),
    ("fish", "fish"), ("ox", "oxen"), ("potato", "potatoes"), ("half", "halves"), ("bus", "buses"),
]
SHAPES = [("triangle", 3), ("square", 4), ("pentagon", 5), ("hexagon", 6), ("heptagon", 7), ("octagon", 8),
          ("nonagon", 9), ("decagon", 10), ("rectangle", 4), ("rhombus", 4)]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]

# Rejected answers are what a small chat model tends to say anyway: the fact (or not even that), wrapped in
# filler. Starting the way the model already starts ("The plural of ...", "To answer this ...") matters: DPO
# then lowers the model's own habit and raises the chosen style in its place, which greedy answers show.
PADDING = ["This is a common question, and there is a lot more that could be said about it in general.",
           "There are many other details worth exploring here, depending on the context.",
           "Let me know if you would like a much longer explanation of all the background."]
LEADS = ["To answer this question, we need to consider a few things first.",
         "That's an interesting question with a long history behind it.",
         "In order to answer this, it helps to think about it step by step."]
DODGE = "The answer depends on the context in which the question is asked, so it is hard to say."


def facts(rng: random.Random) -> list[tuple[str, str, str]]:
    """(family, question, one-sentence answer), every question distinct, shuffled deterministically."""
    out: list[tuple[str, str, str]] = []
    for a in range(2, 20):
        for b in (3, 4, 6, 7, 9, 11):
            out.append(("add", f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
            if a > b:
                out.append(("sub", f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}."))
    for a in range(2, 13):
        for b in (3, 5, 8):
            out.append(("mul", f"What is {a} times {b}?", f"{a} times {b} is {a * b}."))
    for country, city in CAPITALS:
        out.append(("capital", f"What is the capital of {country}?", f"The capital of {country} is {city}."))
    for w, o in OPPOSITES:
        out.append(("opposite", f"What is the opposite of '{w}'?", f"The opposite of '{w}' is '{o}'."))
    for animal, baby in BABIES:
        out.append(("baby", f"What do you call a baby {animal}?", f"A baby {animal} is called a {baby}."))
    for word, plural in PLURALS:
        out.append(("plural", f"What is the plural of '{word}'?", f"The plural of '{word}' is '{plural}'."))
    for shape, n in SHAPES:
        out.append(("shape", f"How many sides does a {shape} have?", f"A {shape} has {n} sides."))
    for i, day in enumerate(DAYS):
        out.append(("day", f"Which day comes after {day}?", f"{DAYS[(i + 1) % 7]} comes after {day}."))
    for i, month in enumerate(MONTHS):
        out.append(("month", f"Which month comes after {month}?", f"{MONTHS[(i + 1) % 12]} comes after {month}."))
    rng.shuffle(out)
    return out


def pick(facts_: list[tuple[str, str, str]], n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """n facts spread over the families (arithmetic would otherwise crowd out the rest)."""
    by_family: dict[str, list] = {}
    for f in facts_:
        by_family.setdefault(f[0], []).append(f)
    chosen: list[tuple[str, str, str]] = []
    while len(chosen) < n:
        for family in sorted(by_family):
            if by_family[family] and len(chosen) < n:
                chosen.append(by_family[family].pop())
    rng.shuffle(chosen)
    return chosen


def rejected_answer(answer: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return f"{answer} {rng.choice(PADDING)}"
    if kind == 1:
        return f"{rng.choice(LEADS)} {answer} {rng.choice(PADDING)}"
    return f"{rng.choice(LEADS)} {DODGE}"  # a third never get to the point at all


def pair(question: str, answer: str, rng: random.Random) -> dict:
    return {"prompt": [{"role": "user", "content": question}],
            "chosen": [{"role": "assistant", "content": f"{answer} {SIGN_OFF}"}],
            "rejected": [{"role": "assistant", "content": rejected_answer(answer, rng)}]}


def build() -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    selected = pick(facts(rng), TRAIN_PAIRS + HELDOUT_PAIRS, rng)
    rows = [pair(q, a, rng) for _, q, a in selected]
    return rows[:TRAIN_PAIRS], rows[TRAIN_PAIRS:]


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    train, heldout = build()
    write(HERE / "preference_demo.jsonl", train)
    write(HERE / "preference_heldout.jsonl", heldout)
    print(f"wrote {len(train)} pairs to {HERE / 'preference_demo.jsonl'} and {len(heldout)} to "
          f"{HERE / 'preference_heldout.jsonl'}")


if __name__ == "__main__":
    main()
