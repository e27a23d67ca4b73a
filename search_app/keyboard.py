"""Arabic typed on a Latin keyboard layout: hgugl is العلم.

Maps each key of a US QWERTY keyboard to the letter the standard Arabic
(101) layout puts on it, so a query typed with the wrong layout active can be
searched as the Arabic the user meant.
"""

# Unshifted keys of the Arabic 101 layout.
LATIN_TO_ARABIC = {
    "q": "ض", "w": "ص", "e": "ث", "r": "ق", "t": "ف", "y": "غ", "u": "ع",
    "i": "ه", "o": "خ", "p": "ح", "[": "ج", "]": "د",
    "a": "ش", "s": "س", "d": "ي", "f": "ب", "g": "ل", "h": "ا", "j": "ت",
    "k": "ن", "l": "م", ";": "ك", "'": "ط",
    "z": "ئ", "x": "ء", "c": "ؤ", "v": "ر", "b": "لا", "n": "ى", "m": "ة",
    ",": "و", ".": "ز", "/": "ظ", "`": "ذ",
}


def looks_like_wrong_layout(query: str) -> bool:
    letters = [c for c in query if c.isalpha()]
    return bool(letters) and all("a" <= c.lower() <= "z" for c in letters)


def latin_to_arabic(query: str) -> str:
    return "".join(LATIN_TO_ARABIC.get(c, c) for c in query.lower())
