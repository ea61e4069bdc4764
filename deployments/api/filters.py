"""The one filter validator: every `where` and `where_document` of every route passes here before
it reaches the store, so a filter chromadb would refuse (or fail on with a 500) is a 422 naming the
place inside the filter that is wrong.

The grammar is chromadb 1.5.9's, made strict where chromadb is loose at validation and fails at
query time: one operator per object, `$gt`-style comparisons on numbers only, `$in` lists of one
type, text that UTF-8 can encode. Its size (depth and number of values) is the plan's to bound
(deployments.api.limits); a hard depth cap here keeps validation itself safe from deep nesting.
"""

from collections.abc import Callable
from typing import NamedTuple

from deployments.core.types import Filter
from deployments.storage.internal_metadata import RESERVED_KEY_PREFIXES

# Deeper than any plan allows; checked before any recursion (JSON itself nests up to ~1,000 levels).
MAX_DEPTH = 32
MAX_PATTERN_CHARS = 1_000  # a $regex's length: chromadb's regex engine has a compiled-size limit too

COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
EQUALITIES = ("$eq", "$ne")
MEMBERSHIPS = ("$in", "$nin")
CONTAINMENTS = ("$contains", "$not_contains")  # on a metadata value that is a list
LOGICAL = ("$and", "$or")
TEXT_OPERATORS = ("$contains", "$not_contains", "$regex", "$not_regex")

MEMBER_KINDS = {str: "strings", bool: "booleans", int: "integers", float: "decimals"}


class FilterSize(NamedTuple):
    depth: int  # levels of objects, 1 for {"k": 1}
    values: int  # values compared against, each member of an $in list counted


def where_size(where: Filter) -> FilterSize:
    """The size of a metadata filter; ValueError saying what is wrong if it is not one."""
    _check_depth(where)
    return _where(where, "")


def where_document_size(where_document: Filter) -> FilterSize:
    """The size of a filter on the stored text; ValueError saying what is wrong if it is not one."""
    _check_depth(where_document)
    return _where_document(where_document, "")


def _check_depth(value: object) -> None:
    """Iterative, so a filter nested a thousand deep is refused, not a RecursionError. Objects count
    as levels; the lists of $and and $or do not."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"the filter nests more than {MAX_DEPTH} levels deep")
            stack.extend((child, depth) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth) for child in node)


def _one_key(value: object, at: str, what: str) -> tuple[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{at or 'the filter'} must be an object ({what}), not {_kind(value)}")
    if len(value) != 1:
        keys = ", ".join(map(repr, value)) or "none"
        raise ValueError(f"{at or 'the filter'} must have exactly one key ({what}), not {keys}: combine with $and")
    ((key, operand),) = value.items()
    return key, operand


def _where(where: object, at: str) -> FilterSize:
    key, operand = _one_key(where, at, "a field or $and/$or")
    here = f"{at}.{key}" if at else key
    if key in LOGICAL:
        return _combined(operand, here, _where)
    if key.startswith("$"):
        raise ValueError(f"{here}: unknown operator; a field name, or one of $and, $or, goes here")
    _text(key, here)
    if key.startswith(RESERVED_KEY_PREFIXES):
        raise ValueError(f"{here}: metadata keys starting with {', '.join(RESERVED_KEY_PREFIXES)} are reserved")
    if not isinstance(operand, dict):
        _scalar(operand, here)  # {"field": value} means $eq
        return FilterSize(1, 1)
    operator, value = _one_key(operand, here, "one operator")
    there = f"{here}.{operator}"
    if operator in COMPARISONS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{there}: compares numbers, not {_kind(value)}")
    elif operator in EQUALITIES or operator in CONTAINMENTS:
        _scalar(value, there)
    elif operator in MEMBERSHIPS:
        return FilterSize(2, _members(value, there))
    else:
        known = ", ".join((*EQUALITIES, *COMPARISONS, *MEMBERSHIPS, *CONTAINMENTS))
        raise ValueError(f"{there}: unknown operator; one of {known}")
    return FilterSize(2, 1)


def _where_document(where_document: object, at: str) -> FilterSize:
    operator, operand = _one_key(where_document, at, "$contains, $not_contains, $regex, $not_regex, $and or $or")
    here = f"{at}.{operator}" if at else operator
    if operator in LOGICAL:
        return _combined(operand, here, _where_document)
    if operator not in TEXT_OPERATORS:
        raise ValueError(f"{here}: unknown operator; one of {', '.join((*TEXT_OPERATORS, *LOGICAL))}")
    if not isinstance(operand, str) or not operand:
        raise ValueError(f"{here}: takes a non-empty string, not {_kind(operand)}")
    _text(operand, here)
    if operator.endswith("regex") and len(operand) > MAX_PATTERN_CHARS:
        raise ValueError(f"{here}: the pattern has {len(operand)} characters; at most {MAX_PATTERN_CHARS}")
    return FilterSize(1, 1)


def _combined(operand: object, at: str, each: Callable[[object, str], FilterSize]) -> FilterSize:
    if not isinstance(operand, list) or len(operand) < 2:
        raise ValueError(f"{at}: takes a list of at least two filters, not {_kind(operand)}")
    sizes = [each(part, f"{at}.{index}") for index, part in enumerate(operand)]
    return FilterSize(1 + max(size.depth for size in sizes), sum(size.values for size in sizes))


def _members(value: object, at: str) -> int:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{at}: takes a non-empty list of values, not {_kind(value)}")
    for index, member in enumerate(value):
        _scalar(member, f"{at}.{index}")
    # chromadb compares by exact type: 1 and 1.5 (an integer and a decimal) are two.
    kinds = {MEMBER_KINDS[type(member)] for member in value}
    if len(kinds) > 1:
        raise ValueError(f"{at}: the values must all be of one type, not {' and '.join(sorted(kinds))}")
    return len(value)


def _scalar(value: object, at: str) -> None:
    if not isinstance(value, str | int | float):  # bool is an int
        raise ValueError(f"{at}: takes a string, number or boolean, not {_kind(value)}")
    if isinstance(value, str):
        _text(value, at)


def _text(value: str, at: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{at}: contains a lone surrogate (\\ud800-\\udfff), which is not text") from None


def _kind(value: object) -> str:
    """A JSON value's type as the tenant wrote it (true is a boolean, 1 a number)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
