"""The commit guard's patterns (constants.GUARD_DIR_PATTERNS and
GUARD_WEIGHT_NAMES), matched without the re module on the common path.

The guard runs on every commit, and `import re` plus compiling the patterns
costs about as much as starting Python.  So: a substring search over all
staged paths at once finds the few that may match (may_match); those get
exact checks.  Weight names are '*'-globs, matched as such.  A dir pattern
within a small regex subset (literals, escapes, '.', '[0-9]', '[^/]', with
'+' or '*') is matched by a backtracking matcher with re's semantics for ASCII
paths; a non-ASCII path, or a pattern outside the subset, goes to re itself
(IGNORECASE folds e.g. KELVIN SIGN to 'k').  tests/test_guard.py checks both
ways agree.  Standard library only (hook path).
"""
from __future__ import annotations

from git_ckpt import constants as C

def _literal_head(regex: str) -> str:
    """The literal text every match of `regex` starts with ('\\.art' -> '.art',
    'checkpoint-[0-9]+' -> 'checkpoint-'), read without the re module."""
    head, i = [], 0
    while i < len(regex):
        ch, step = regex[i], 1
        if ch == '\\' and i + 1 < len(regex) and not regex[i + 1].isalnum():
            ch, step = regex[i + 1], 2     # an escaped literal; '\\d' and the like end the head
        elif ch in '.[](){}*+?|^$\\':
            break
        if regex[i + step:i + step + 1] in ('*', '?', '{'):
            break                          # optional: not in every match
        head.append(ch)
        i += step
    return ''.join(head)


# Cheap necessary conditions, derived from the patterns themselves, that let
# almost every path skip the regexes.  A dir pattern's match contains its
# literal head (ASCII paths only: IGNORECASE also folds e.g. KELVIN SIGN to
# 'k', so non-ASCII paths always get the regex).  A weight name matching a
# pattern that starts with '*' ends with the text after its last '*'; one
# matching any other pattern starts with the text before its first '*'.
_DIR_HEADS = tuple(sorted({_literal_head(regex).lower() for regex, _, _ in C.GUARD_DIR_PATTERNS}))
_WEIGHT_ENDS = tuple({n.lower().rpartition('*')[2] for n in C.GUARD_WEIGHT_NAMES if n.startswith('*')})
_WEIGHT_STARTS = tuple({n.lower().partition('*')[0] for n in C.GUARD_WEIGHT_NAMES if not n.startswith('*')})

_compiled: dict = {}


def _regex(key: str):
    """re's version of a pattern, compiled on first need ('dir': all dir
    patterns in one; a weight name: its glob)."""
    if key not in _compiled:
        import re
        if key == 'dir':
            _compiled[key] = re.compile(
                '(?:^|/)(?:' + '|'.join(f'({regex})' for regex, _, _ in C.GUARD_DIR_PATTERNS) + ')(?=/|$)',
                re.IGNORECASE)
        else:
            _compiled[key] = re.compile(re.escape(key.lower()).replace(r'\*', '.*'), re.DOTALL)
    return _compiled[key]


def glob_fullmatch(name: str, text: str) -> bool:
    """`text` matches `name`, where '*' is any run of characters (newlines
    too) and everything else is literal: re.escape(name) with '*' -> '.*',
    DOTALL, fullmatch -- the weight patterns' meaning."""
    if '*' not in name:
        return text == name
    first, *middle, last = name.split('*')
    if not text.startswith(first):
        return False
    pos = len(first)
    for part in middle:
        pos = text.find(part, pos)
        if pos == -1:
            return False
        pos += len(part)
    return len(text) - len(last) >= pos and text.endswith(last)


def weight_name(lower_base: str) -> str | None:
    """The first weight pattern a lower-cased file name matches, if any."""
    if not _may_be_weights(lower_base):
        return None
    return next((name for name in C.GUARD_WEIGHT_NAMES if glob_fullmatch(name.lower(), lower_base)), None)


# One dir pattern as tokens (kind, char, quantifier): kind 'lit' (char, compared
# lower-cased), 'digit' ([0-9]), 'any' (., not a newline) or 'notslash' ([^/],
# a newline too); quantifier '', '+' or '*'.
def _tokens(regex: str) -> list[tuple[str, str, str]] | None:
    """The pattern as tokens, or None when it is outside the subset."""
    out, i = [], 0
    while i < len(regex):
        ch = regex[i]
        if ch == '\\' and i + 1 < len(regex) and not regex[i + 1].isalnum():
            token, i = ('lit', regex[i + 1].lower(), ''), i + 2
        elif regex.startswith('[0-9]', i):
            token, i = ('digit', '', ''), i + 5
        elif regex.startswith('[^/]', i):
            token, i = ('notslash', '', ''), i + 4
        elif ch == '.':
            token, i = ('any', '', ''), i + 1
        elif ch.isascii() and (ch.isalnum() or ch in '-_/ ,:;=@#%&!~<>\'"'):
            token, i = ('lit', ch.lower(), ''), i + 1
        else:
            return None
        if regex[i:i + 1] in ('+', '*'):
            token, i = token[:2] + (regex[i],), i + 1
            if regex[i:i + 1] in ('+', '*', '?', '{'):
                return None  # possessive, lazy, nested: not in the subset
        out.append(token)
    return out


_DIR_TOKENS = [_tokens(regex) for regex, _, _ in C.GUARD_DIR_PATTERNS]
_DIR_SUBSET = all(tokens is not None for tokens in _DIR_TOKENS)


def _one(kind: str, want: str, ch: str) -> bool:
    if kind == 'lit':
        return ch == want
    if kind == 'digit':
        return '0' <= ch <= '9'
    if kind == 'notslash':
        return ch != '/'
    return ch != '\n'


def _match_at(tokens, t: int, s: str, i: int) -> int | None:
    """Where tokens[t:] matching s[i:] end, followed by '/' or the end ($:
    also before a final newline); greedy with backtracking, like re."""
    if t == len(tokens):
        return i if i == len(s) or s[i] == '/' or (i == len(s) - 1 and s[i] == '\n') else None
    kind, want, quantifier = tokens[t]
    if not quantifier:
        return _match_at(tokens, t + 1, s, i + 1) if i < len(s) and _one(kind, want, s[i]) else None
    j = i
    while j < len(s) and _one(kind, want, s[j]):
        j += 1
    for end in range(j, i + (quantifier == '+') - 1, -1):
        found = _match_at(tokens, t + 1, s, end)
        if found is not None:
            return found
    return None


def dir_match(path: str) -> tuple[int, int] | None:
    """re.search of the dir regex: (which pattern, 1-based; where its match
    ends) or None.  ASCII paths without re (see the module docstring)."""
    if not (_DIR_SUBSET and path.isascii()):
        m = _regex('dir').search(path)
        return (m.lastindex, m.end(m.lastindex)) if m else None
    lower = path.lower()
    starts = [0] + [i + 1 for i, ch in enumerate(path) if ch == '/']
    for start in starts:
        for index, tokens in enumerate(_DIR_TOKENS, 1):
            end = _match_at(tokens, 0, lower, start)
            if end is not None:
                return index, end
    return None


def _may_be_weights(lower_base: str) -> bool:
    return lower_base.endswith(_WEIGHT_ENDS) or lower_base.startswith(_WEIGHT_STARTS)


def fields_containing(text: str, needles) -> set[int]:
    """Indices of the NUL-separated fields of `text` that contain one of
    `needles`: str.find over all paths at once, and str.count of the NULs
    before a hit says which field it is in (all in C, whatever the number of
    paths), instead of a Python test per path."""
    if '' in needles:
        return set(range(text.count('\0') + 1))
    found = set()
    for needle in needles:
        index, counted_to = 0, 0
        pos = text.find(needle)
        while pos != -1:
            index += text.count('\0', counted_to, pos)
            found.add(index)
            end = text.find('\0', pos)
            if end == -1:
                break
            index, counted_to = index + 1, end + 1   # on to the next field
            pos = text.find(needle, counted_to)
    return found


def may_match(paths: list[str], allowed) -> set[int]:
    """Indices of the paths any path check could apply to (a superset: each
    gets the exact checks); every other path needs only the size check."""
    joined = '\0'.join(paths)
    ascii_only = joined.isascii()   # of the paths themselves: KELVIN SIGN lower-cases to 'k'
    lowered = joined.lower()
    # lower() keeps every NUL: the i-th field of `lowered` is paths[i].lower().
    maybe = fields_containing(lowered, [n for n in _DIR_HEADS + _WEIGHT_ENDS + _WEIGHT_STARTS if n in lowered])
    if not ascii_only:
        maybe.update(i for i, path in enumerate(paths) if not path.isascii())
    if allowed is not None:
        maybe.update(i for i, path in enumerate(paths) if allowed(path))
    return maybe


