"""Tool JSON Schemas made fit for Ollama (wire doc A.2).

Ollama parses tool parameters into a narrow struct and silently drops every other keyword
($ref, oneOf, allOf, minimum, default, pattern, ...). So before sending we inline `$ref`s from
`$defs`/`definitions`, rewrite `oneOf` to `anyOf`, merge `allOf`, and fold the constraints Ollama
would drop into the property's `description`, so the model still sees what the client meant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Keywords Ollama keeps on a property (ToolProperty) or on the parameters object.
KEPT = frozenset({"type", "description", "enum", "items", "properties", "required", "anyOf"})
# Keywords folded into the description, in this order, with a readable label.
FOLDED = (
    ("const", "must be"),
    ("default", "default"),
    ("minimum", "minimum"),
    ("maximum", "maximum"),
    ("exclusiveMinimum", "greater than"),
    ("exclusiveMaximum", "less than"),
    ("multipleOf", "multiple of"),
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("pattern", "pattern"),
    ("format", "format"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("uniqueItems", "unique items"),
    ("minProperties", "min properties"),
    ("maxProperties", "max properties"),
    ("examples", "examples"),
)
_MAX_DEPTH = 32


def normalize_parameters(schema: Any) -> Any:
    """Normalise a tool's `parameters` schema; non-objects are returned unchanged."""
    if not isinstance(schema, Mapping):
        return schema
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), Mapping):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    out = _node(schema, defs, 0, set())
    if isinstance(out, dict):
        out.setdefault("type", "object")
        if "properties" not in out and out.get("type") == "object":
            out["properties"] = {}
    return out


def _node(node: Any, defs: dict[str, Any], depth: int, seen: set[str]) -> Any:
    """Normalise one schema node recursively."""
    if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        target = defs.get(ref)
        if target is not None and ref not in seen:
            merged = {**target, **node}  # sibling keywords next to $ref win
            return _node(merged, defs, depth + 1, seen | {ref})
        # A recursive or unknown reference cannot be inlined; say so in the description.
        name = ref.rsplit("/", 1)[-1]
        node = {**node, "type": node.get("type", "object")}
        node["description"] = _join(node.get("description"), f"(a {name} object)")
    if isinstance(node.get("allOf"), list):
        for part in node.pop("allOf"):
            part = _node(part, defs, depth + 1, seen)
            if isinstance(part, Mapping):
                for key, value in part.items():
                    mine = node.get(key)
                    if key == "properties" and isinstance(value, Mapping):
                        node["properties"] = {
                            **(mine if isinstance(mine, Mapping) else {}),
                            **value,
                        }
                    elif key == "required" and isinstance(value, list):
                        have = list(mine) if isinstance(mine, list) else []
                        node["required"] = have + [r for r in value if r not in have]
                    elif key == "description":
                        node["description"] = _join(node.get("description"), value)
                    else:
                        node.setdefault(key, value)
    if isinstance(node.get("oneOf"), list):
        node["anyOf"] = [*node.get("anyOf", []), *node.pop("oneOf")]
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in node.items():
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {k: _node(v, defs, depth + 1, seen) for k, v in value.items()}
        elif key == "items":
            out[key] = _node(value, defs, depth + 1, seen)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_node(v, defs, depth + 1, seen) for v in value]
        elif key == "type" and isinstance(value, list) and "null" in value:
            kept = [t for t in value if t != "null"]
            out[key] = kept[0] if len(kept) == 1 else kept
            notes.append("may be null")
        elif key in KEPT:
            out[key] = value
        elif key in (
            "$defs",
            "definitions",
            "$schema",
            "$id",
            "title",
            "additionalProperties",
            "$comment",
        ):
            continue
        elif key == "nullable" and value is True:
            notes.append("may be null")
    for key, label in FOLDED:
        if key in node:
            notes.append(
                f"{label} {_show(node[key])}" if label != "unique items" else "items must be unique"
            )
    if notes:
        out["description"] = _join(out.get("description"), "; ".join(notes))
    return out


def _show(value: Any) -> str:
    """A compact JSON rendering of a keyword's value."""
    return json.dumps(value, ensure_ascii=False)


def _join(first: Any, second: Any) -> str:
    """Join two description fragments."""
    parts = [str(p).strip() for p in (first, second) if isinstance(p, str) and p.strip()]
    if len(parts) == 2 and not parts[0].endswith((".", ")", ":")):
        return f"{parts[0]} ({parts[1]})"
    return " ".join(parts)
