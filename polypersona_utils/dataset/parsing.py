"""Map a free-text answer to one of a closed question's options, or None when it cannot be done honestly."""
from __future__ import annotations

import re
from typing import Sequence


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def parse_option(answer: str, options: Sequence[str]) -> str | None:
    """The option the answer names; None if it names none or several (never a guess).

    Rules, in order (case and punctuation ignored): the whole answer is an option; its first clause (up to
    . , ; : ! ? or a line break) is an option ("Yes, I do."); exactly one option occurs in it as whole words,
    longer options matched first so that "strongly agree" does not also count as "agree".
    """
    by_words = {_words(option): option for option in options}
    said = _words(answer)
    if not said:
        return None
    if said in by_words:
        return by_words[said]
    first_clause = _words(re.split(r"[.,;:!?\n]", answer.strip(), maxsplit=1)[0])
    if first_clause in by_words:
        return by_words[first_clause]
    found, remaining = [], f" {said} "
    for words in sorted(by_words, key=len, reverse=True):
        if f" {words} " in remaining:
            found.append(words)
            remaining = remaining.replace(f" {words} ", " | ")
    return by_words[found[0]] if len(found) == 1 else None
