"""Clauses of a problem: the spaCy dependency-parse rule that turns one token into the clause around it.

Used by ``clause_regions`` (IAF tokens expanded to clauses) and by the operation graph (an operation without an IAF
region is placed in the clause of its first problem operand). Pure functions over spaCy tokens; the caller parses.
"""

from __future__ import annotations

CLAUSAL = {"ROOT", "conj", "advcl", "relcl", "ccomp", "xcomp", "acl", "csubj", "parataxis"}
EDGE_TRIM = {"cc", "punct", "mark", "prep"}


def clause_head(token):
    """The nearest clausal head at or above ``token`` in the dependency tree."""
    while token.dep_ not in CLAUSAL and token.head is not token:
        token = token.head
    return token


def clause_range(token) -> tuple[int, int]:
    """Character range of the clause around ``token``: its clausal head's subtree without clausal children's
    subtrees, the contiguous run holding ``token``, trimmed of punctuation / coordinating words at the edges."""
    head = clause_head(token)
    excluded = set()
    for child in head.children:
        if child.dep_ in CLAUSAL and child.dep_ != "ROOT":
            excluded.update(t.i for t in child.subtree)
    members = sorted(t.i for t in head.subtree if t.i not in excluded)
    if token.i not in members:  # the token sits in an excluded child: fall back to its own subtree
        members = sorted(t.i for t in token.subtree)
    # the contiguous run around the token
    index = members.index(token.i)
    lo = hi = index
    while lo > 0 and members[lo - 1] == members[lo] - 1:
        lo -= 1
    while hi + 1 < len(members) and members[hi + 1] == members[hi] + 1:
        hi += 1
    doc = token.doc
    first, last = members[lo], members[hi]
    while first < last and (doc[first].dep_ in EDGE_TRIM or doc[first].is_punct) and first != token.i:
        first += 1
    while last > first and (doc[last].dep_ in EDGE_TRIM or doc[last].is_punct) and last != token.i:
        last -= 1
    return doc[first].idx, doc[last].idx + len(doc[last].text)


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged
