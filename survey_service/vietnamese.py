"""Vietnamese collation without ICU: Python's ``sorted`` puts Đ, Ă, Ơ, Ư and toned vowels after Z.

The key compares base letters first in the Vietnamese alphabet (a ă â b c d đ e ê … o ô ơ … u ư …), then
tones in the order ngang, huyền, hỏi, ngã, sắc, nặng, then the original text (for a stable, total order).
"""
from __future__ import annotations

import unicodedata

ALPHABET = "a ă â b c d đ e ê f g h i j k l m n o ô ơ p q r s t u ư v w x y z".split()
_RANK = {letter: i for i, letter in enumerate(ALPHABET)}
#: Combining tone marks: huyền, hỏi, ngã, sắc, nặng (ngang, no mark, is 0).
_TONES = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}


def sort_key(text: str) -> tuple:
    """Key for ``sorted(names, key=sort_key)`` in Vietnamese dictionary order."""
    letters, tones = [], []
    for ch in unicodedata.normalize("NFC", text).lower():
        tone, base = 0, ""
        for part in unicodedata.normalize("NFD", ch):
            if part in _TONES:
                tone = _TONES[part]
            else:
                base += part
        base = unicodedata.normalize("NFC", base)
        if not base:  # a lone combining tone mark: it belongs to the previous letter
            if tones:
                tones[-1] = tones[-1] or tone
            continue
        if base in _RANK:
            letters.append((1, _RANK[base]))
        elif base.isspace():
            letters.append((0, 0))  # "An Hòa" before "Anh"
        else:
            letters.append((2, ord(base[0])))
        tones.append(tone)
    return letters, tones, text
