"""Cloud training cost from an editable price table (prices.yaml): one formula per provider.

Formulas are plain arithmetic over a few named quantities, evaluated by a small expression
interpreter (no ``eval``), so a user can copy a provider's billing rule into the file as written.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunesmith.utils.errors import ConfigError

PRICES_FILE = Path(__file__).with_name("prices.yaml")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CALLS = {"max": max, "min": min, "ceil": math.ceil}


def evaluate(formula: str, values: dict[str, float]) -> float:
    """Evaluate an arithmetic formula (+ - * /, parentheses, max/min/ceil, names from ``values``)."""
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse {formula!r}: {exc.msg}") from exc

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"unknown name {node.id!r} (known: {', '.join(sorted(values))})")
            return float(values[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            return float(_CALLS[node.func.id](*(walk(a) for a in node.args)))
        raise ValueError(f"unsupported expression {ast.unparse(node)!r}")

    return walk(tree)


@dataclass
class Provider:
    """One price-table entry."""

    name: str
    title: str
    unit_price: float
    formula: str
    per_tokens: float = 1000
    min_tokens: float = 0
    formula_zh: str = ""
    model_size_max_b: float | None = None


@dataclass
class PriceTable:
    currency: str
    as_of: str
    providers: list[Provider]
    source: str


def load_prices(path: str | Path | None = None) -> PriceTable:
    """Read prices.yaml (or a user's file of the same shape), checking every formula."""
    file = Path(path) if path else PRICES_FILE
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"cannot read the price table {str(file)!r}: {exc}"]) from exc
    problems: list[str] = []
    providers = []
    for i, entry in enumerate(data.get("providers") or []):
        try:
            p = Provider(**entry)
            evaluate(p.formula, _values(p, train_tokens=1000, mix_tokens=0, epochs=1))
            providers.append(p)
        except (TypeError, ValueError) as exc:
            problems.append(f"providers[{i}] ({entry.get('name', '?') if isinstance(entry, dict) else entry}): {exc}")
    if problems:
        raise ConfigError(problems, source=str(file))
    return PriceTable(str(data.get("currency", "")), str(data.get("as_of", "unknown")), providers, str(file))


def _values(p: Provider, *, train_tokens: float, mix_tokens: float, epochs: float) -> dict[str, float]:
    return {"train_tokens": train_tokens, "mix_tokens": mix_tokens, "epochs": epochs, "unit_price": p.unit_price,
            "per_tokens": p.per_tokens, "min_tokens": p.min_tokens}


@dataclass
class Cost:
    provider: Provider
    amount: float
    applies: bool  # False when the model is larger than the tier this price is for


def training_costs(table: PriceTable, *, train_tokens: int, epochs: float, mix_tokens: int = 0,
                   model_params_b: float | None = None) -> list[Cost]:
    """Cost per provider for a training set of ``train_tokens`` tokens trained for ``epochs``."""
    out = []
    for p in table.providers:
        amount = evaluate(p.formula, _values(p, train_tokens=train_tokens, mix_tokens=mix_tokens, epochs=epochs))
        applies = p.model_size_max_b is None or model_params_b is None or model_params_b <= p.model_size_max_b
        out.append(Cost(p, amount, applies))
    return out


def price_summary(table: PriceTable) -> dict[str, Any]:
    return {"currency": table.currency, "as_of": table.as_of, "source": table.source}
