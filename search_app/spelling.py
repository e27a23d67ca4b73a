"""Edit distance for did-you-mean suggestions (pure)."""

# After normalization the hamza seats stay distinct (see indexer/normalize.py),
# and writers often pick the wrong one or none: a swap among them is half an edit.
HAMZA_SWAPS = {frozenset(p) for p in ("يئ", "وؤ", "ءئ", "ءؤ", "اء", "ئؤ")}


def _substitution(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return 0.5 if frozenset((a, b)) in HAMZA_SWAPS else 1.0


def edit_distance(a: str, b: str) -> float:
    """Levenshtein distance with cheap hamza-seat swaps (الجزاير ~ الجزائر)."""
    if a == b:
        return 0.0
    previous = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        current = [float(i)]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + _substitution(ca, cb)))
        previous = current
    return previous[-1]
