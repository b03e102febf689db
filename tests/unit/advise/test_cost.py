"""The price table: the notes' formulas, the 1000-token minimum, editable files, safe formulas."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.advise.cost import evaluate, load_prices, training_costs
from tunesmith.utils.errors import ConfigError


def test_shipped_prices_follow_the_notes() -> None:
    table = load_prices()
    assert "unknown" in table.as_of and table.currency == "CNY"
    costs = {c.provider.name: c for c in training_costs(table, train_tokens=1_000_000, epochs=3, mix_tokens=500_000,
                                                         model_params_b=7)}
    assert costs["bailian-8b"].amount == pytest.approx((1_000_000 + 500_000) * 3 * 0.006 / 1000)  # 27 元
    assert costs["bailian-32b"].amount == pytest.approx(1_500_000 * 3 * 0.04 / 1000)
    assert costs["volcengine"].amount == pytest.approx(1_000_000 * 0.03 / 1000 * 3), "mix tokens are 百炼-only"
    assert costs["bailian-8b"].applies
    big = {c.provider.name: c for c in training_costs(table, train_tokens=10, epochs=1, model_params_b=14)}
    assert not big["bailian-8b"].applies and big["bailian-32b"].applies


def test_volcengine_bills_at_least_1000_tokens() -> None:
    table = load_prices()
    small = {c.provider.name: c.amount for c in training_costs(table, train_tokens=200, epochs=2)}
    assert small["volcengine"] == pytest.approx(1000 * 0.03 / 1000 * 2)
    assert small["bailian-8b"] == pytest.approx(200 * 2 * 0.006 / 1000)


def test_user_price_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("currency: USD\nas_of: 2030-01-01\nproviders:\n"
                    "  - {name: x, title: X, unit_price: 2, per_tokens: 1000000, formula: ceil(train_tokens * epochs "
                    "/ per_tokens) * unit_price}\n")
    (cost,) = training_costs(load_prices(path), train_tokens=1_500_000, epochs=1)
    assert cost.amount == 4.0
    path.write_text("providers:\n  - {name: y, title: Y, unit_price: 1, formula: __import__('os').system('x')}\n")
    with pytest.raises(ConfigError, match="providers\\[0\\]"):
        load_prices(path)


def test_formula_evaluator_is_arithmetic_only() -> None:
    assert evaluate("max(a, 10) * (b - 1) / 2", {"a": 4, "b": 5}) == 20
    for bad in ("a.__class__", "open('x')", "a if a else b", "[a]"):
        with pytest.raises(ValueError):
            evaluate(bad, {"a": 1, "b": 2})
    with pytest.raises(ValueError, match="unknown name"):
        evaluate("c + 1", {"a": 1})
