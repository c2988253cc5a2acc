"""Money: exact decimals, never floats.

Every price and amount is a `decimal.Decimal` in US dollars. Arithmetic goes through `EXACT`, a context
that raises instead of rounding, so a product or sum is exact or an error, never silently rounded.
Stored values have at most `MONEY_SCALE` (20) decimal places, matching the `NUMERIC(38,20)` columns:
a per-token price like $0.000000075 fits with room to spare, and because token counts are integers, every
amount computed from such prices fits too. Rounding happens only at presentation (`round_money`).
In JSON, money is a string (`money_str`), never a JSON number.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)

MONEY_SCALE = 20
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
ZERO = Decimal(0)

# 38 digits is the column precision; 80 leaves headroom for intermediate products before a check.
EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN,
                traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded])
_ROUNDING = Context(prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])


def to_decimal(value: Decimal | int | str, *, what: str = "value") -> Decimal:
    """A finite Decimal from a Decimal, int or numeric string. Floats are refused: convert them at the edge
    with `Decimal(str(x))` (or parse JSON with `parse_float=Decimal`)."""
    if isinstance(value, bool | float):
        raise TypeError(f"{what}: {type(value).__name__} is not accepted for money; use Decimal or str")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{what}: {value!r} is not a number") from exc
    else:
        raise TypeError(f"{what}: {type(value).__name__} is not accepted for money")
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not finite")
    return result


def check_scale(value: Decimal, *, what: str = "value") -> Decimal:
    """`value`, refused when it has more than `MONEY_SCALE` decimal places (it would not store exactly)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked by to_decimal
    if exponent < -MONEY_SCALE and value != value.quantize(MONEY_QUANTUM, context=_ROUNDING):
        raise ValueError(f"{what}: {value} has more than {MONEY_SCALE} decimal places")
    return value


def quantize_money(value: Decimal) -> Decimal:
    """`value` rounded (half-even) to `MONEY_SCALE` places: only for derived prices such as a discount."""
    return value.quantize(MONEY_QUANTUM, context=_ROUNDING)


def money_str(value: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros: `Decimal('1.5E-7')` -> `'0.00000015'`."""
    if value == 0:
        return "0"
    return format(value.normalize(_ROUNDING), "f")


def round_money(value: Decimal, places: int = 2) -> Decimal:
    """For presentation only (reports, invoices): half-even rounding to `places` decimals."""
    return value.quantize(Decimal(1).scaleb(-places), context=_ROUNDING)


def display_money(value: Decimal, significant: int = 3) -> str:
    """An amount as a person reads it: cents, and never fewer than `significant` significant digits, so a
    real cost never shows as zero (`0.004123` -> `'0.00412'`, `12.3456` -> `'12.35'`, `0` -> `'0.00'`).
    Half-even; for display only (the exact string stays beside it)."""
    if value == 0:
        return "0.00"
    places = max(2, significant - 1 - value.copy_abs().adjusted())
    return format(round_money(value, places), "f")
