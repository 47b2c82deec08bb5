"""record(): named tuples for the modules on the commit hook's path; Fields:
the base of plain mutable records.

collections.namedtuple costs the hook more than its purpose: importing
collections (with keyword, operator, reprlib) and exec'ing the source of
each class took about as long as the guard's checks of 5,000 paths.  A record
is the same thing for what git-ckpt uses: a tuple subclass (equal to the
plain tuple, unpacks, hashes), fields by name, positional or keyword
construction, _replace, _fields, _asdict and a readable repr.
Standard library only (hook path).
"""
from __future__ import annotations


def record(name: str, fields: str, doc: str = '', module: str | None = None) -> type:
    """A tuple subclass `name` with the space-separated `fields`."""
    names = tuple(fields.split())

    def __new__(cls, *args, **kwargs):
        if kwargs:
            missing = [f for f in names[len(args):] if f not in kwargs]
            extra = set(kwargs) - set(names[len(args):])
            if missing or extra:
                raise TypeError(f'{name}() missing {missing} or unexpected {sorted(extra)}')
            args += tuple(kwargs[f] for f in names[len(args):])
        if len(args) != len(names):
            raise TypeError(f'{name}() takes {len(names)} values ({", ".join(names)}), got {len(args)}')
        return tuple.__new__(cls, args)

    def _replace(self, **changes):
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(f'{name} has no field {sorted(unknown)}')
        return tuple.__new__(type(self), [changes.get(f, v) for f, v in zip(names, self)])

    def __repr__(self):
        return f'{name}(' + ', '.join(f'{f}={v!r}' for f, v in zip(names, self)) + ')'

    namespace = {
        '__doc__': doc or f'{name}({", ".join(names)})', '__slots__': (), '__new__': __new__,
        '__repr__': __repr__, '_replace': _replace, '_fields': names, '__match_args__': names,
        '_asdict': lambda self: dict(zip(names, self)),
        '__getnewargs__': lambda self: tuple(self),
    }
    for i, field in enumerate(names):
        namespace[field] = property(lambda self, i=i: self[i], doc=f'field {i}: {field}')
    cls = type(name, (tuple,), namespace)
    if module is not None:
        cls.__module__ = module
    return cls


class Fields:
    """The base of a mutable record: what @dataclass gives (equality and repr
    over the fields), without importing dataclasses, which brings inspect, ast
    and dis along: ~9 ms of CPU in every `git ckpt status`.  A subclass names
    its `_fields` and writes its own __init__ (a generic one costs ~2 us more
    per object, and a cold status makes thousands)."""
    __slots__ = ()
    _fields: tuple[str, ...] = ()
    __hash__ = None  # mutable, as a dataclass with eq

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __repr__(self):
        return f'{type(self).__name__}(' + ', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields) + ')'
