"""mpmd.transcripts.prices: Claude Code's own cost of every cost-state entry of the real
transcripts (tests/fixtures/transcripts, CLI 2.1.328) is the table's cost of its tokens;
model ids as the providers spell them; config.toml's [prices]; and what cost() must be for
any tokens (hypothesis)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpmd.errors import ConfigError
from mpmd.transcripts.prices import (
    DEFAULT_FAST_PRICES,
    DEFAULT_PRICES,
    MAX_MODEL_ID,
    LongPrompt,
    Price,
    PriceTable,
    canonical,
    cost,
    from_config,
)
from tests.utils import ROOT, examples

FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"

# The bundle's CATALOG_MODEL_IDS: every model Claude Code 2.1.328 has a price for.
CATALOG_MODEL_IDS = {
    "claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet", "claude-fable-5",
    "claude-fable-5-1", "claude-fable-5-2", "claude-haiku-4-5", "claude-haiku-5-5",
    "claude-mythos-5", "claude-mythos-5-1", "claude-mythos-5-2", "claude-opus-4-0",
    "claude-opus-4-1", "claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7",
    "claude-opus-4-8", "claude-opus-5", "claude-opus-5-5", "claude-sonnet-4-0",
    "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-sonnet-5", "claude-sonnet-5-5"}

OPUS_5_5 = DEFAULT_PRICES["claude-opus-5-5"]


def cost_states() -> list[dict]:
    found = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "cost-state":
                found.append(entry)
    return found


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


# ---- Claude Code's own accounting


def test_every_cost_state_is_the_tables_cost_of_its_tokens() -> None:
    states = cost_states()
    assert states, "the fixtures have cost-state entries"
    table = PriceTable(None)
    for state in states:
        total = 0.0
        for model, usage in state["modelUsage"].items():
            price = table.price(model)
            assert price is not None, model
            one_hour = usage["cacheCreationEphemeral1hInputTokens"]
            ours = cost(price, usage["inputTokens"], usage["outputTokens"],
                        usage["cacheReadInputTokens"],
                        usage["cacheCreationInputTokens"] - one_hour, one_hour,
                        web_search_requests=usage["webSearchRequests"])
            assert close(ours, usage["costUSD"]), (model, usage, ours)
            total += ours
        assert close(total, state["totalCostUSD"])
        assert state["hasUnknownModelCost"] is False


def test_a_measured_response() -> None:
    # Claude Code's costUSD of a real session of the default model: 7942 in, 36 out
    assert close(cost(OPUS_5_5, 7942, 36, 0, 0, 0), 0.032488)
    assert (OPUS_5_5.input, OPUS_5_5.output) == (4, 20)


def test_the_shipped_prices_are_the_catalogs() -> None:
    assert set(DEFAULT_PRICES) == CATALOG_MODEL_IDS
    assert set(DEFAULT_FAST_PRICES) <= CATALOG_MODEL_IDS
    # every price of the bundle writes the cache at 1.25x (5 min) and 2x (1 h) its input,
    # reads it at 0.1x or less: a typo in the table breaks one of these
    for price in [*DEFAULT_PRICES.values(), *DEFAULT_FAST_PRICES.values()]:
        tiers: list[Price | LongPrompt] = [price]
        if price.long_prompt is not None:
            tiers.append(price.long_prompt)
        for rates in tiers:
            assert close(rates.cache_write_5m, 1.25 * rates.input), price
            assert close(rates.cache_write_1h, 2 * rates.input), price
            assert 0 < rates.cache_read <= 0.1 * rates.input + 1e-12, price
        assert price.web_search == 0.01
    for model, fast in DEFAULT_FAST_PRICES.items():
        assert fast.input > DEFAULT_PRICES[model].input


def test_each_kind_of_token_at_its_price() -> None:
    million = 1_000_000
    assert cost(OPUS_5_5, million, 0, 0, 0, 0) == 4
    assert cost(OPUS_5_5, 0, million, 0, 0, 0) == 20
    assert cost(OPUS_5_5, 0, 0, million, 0, 0) == 0.2
    assert cost(OPUS_5_5, 0, 0, 0, million, 0) == 5
    assert cost(OPUS_5_5, 0, 0, 0, 0, million) == 8
    assert cost(OPUS_5_5, 0, 0, 0, 0, 0, web_search_requests=3) == 0.03


def test_us_only_inference_costs_a_tenth_more_but_not_its_web_searches() -> None:
    plain = cost(OPUS_5_5, 1000, 100, 10, 20, 30)
    assert close(cost(OPUS_5_5, 1000, 100, 10, 20, 30, inference_geo="us"), 1.1 * plain)
    assert close(cost(OPUS_5_5, 1000, 0, 0, 0, 0, web_search_requests=2, inference_geo="us"),
                 1.1 * 0.004 + 0.02)
    assert cost(OPUS_5_5, 1000, 100, 10, 20, 30, inference_geo="eu") == plain


def test_a_long_prompt_of_haiku_5_5_is_priced_at_its_long_prompt_tier() -> None:
    haiku = DEFAULT_PRICES["claude-haiku-5-5"]
    assert haiku.long_prompt is not None
    # the prompt is input, cache read and cache creation: 100,000 is not over the line
    assert close(cost(haiku, 40_000, 1000, 30_000, 20_000, 10_000),
                 (40_000 * 0.1 + 1000 * 0.5 + 30_000 * 0.01 + 20_000 * 0.125
                  + 10_000 * 0.2) / 1e6)
    assert close(cost(haiku, 40_001, 1000, 30_000, 20_000, 10_000),
                 (40_001 * 0.5 + 1000 * 2.5 + 30_000 * 0.05 + 20_000 * 0.625
                  + 10_000 * 1) / 1e6)


def test_a_count_below_zero_counts_as_zero() -> None:
    assert cost(OPUS_5_5, -5, -1, -1, -1, -1, web_search_requests=-2) == 0
    assert cost(OPUS_5_5, 1000, -1, 0, 0, 0) == cost(OPUS_5_5, 1000, 0, 0, 0, 0)


# ---- model ids

SPELLINGS = [
    # dated first-party ids, Vertex's and Bedrock's, and the catalog's other provider ids
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
    ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
    ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("anthropic.claude-haiku-4-5", "claude-haiku-4-5"),
    ("claude-sonnet-4", "claude-sonnet-4-0"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-0"),
    ("claude-sonnet-4@20250514", "claude-sonnet-4-0"),
    ("us.anthropic.claude-opus-4-20250514-v1:0", "claude-opus-4-0"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ("claude-opus-4-5-20251101", "claude-opus-4-5"),
    ("us.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
    ("anthropic.claude-opus-5-5", "claude-opus-5-5"),
    ("us.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5"),
    ("us.anthropic.claude-fable-5-2", "claude-fable-5-2"),
    # other regions' Bedrock profiles, an ARN's path, the 1M context mark, case, a dot
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
    ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
    ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
    ("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
     "eu.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5"),
    ("claude-opus-5-5[1m]", "claude-opus-5-5"),
    ("Claude-Opus-5-5", "claude-opus-5-5"),
    ("claude-opus-4.5", "claude-opus-4-5"),
    ("claude-sonnet-4-5-latest", "claude-sonnet-4-5"),
]


@pytest.mark.parametrize(("model", "catalog_id"), SPELLINGS)
def test_a_model_id_as_a_provider_spells_it(model: str, catalog_id: str) -> None:
    assert canonical(model) == catalog_id
    assert PriceTable(None).price(model) == DEFAULT_PRICES[catalog_id]


@pytest.mark.parametrize("model", [
    "claude-3-opus-20240229",  # known to Claude Code, but it has no price for it
    "claude-opus-6", "claude-opus-6-20270101", "gpt-4o", "", "   ", "claude",
    "claude-opus-4-5-thinking",  # not a spelling Claude Code's parser accepts
    "claude-opus-5-5 please", "xx.anthropic.claude-opus-4-6",  # not a Bedrock region
    "claude-opus-5-5-" + "9" * 10_000, "claude-opus-5-5@" + "2" * (MAX_MODEL_ID + 1),
    "x" * (MAX_MODEL_ID + 1), "claude-opus-5-5[1m]" + " " * MAX_MODEL_ID,
])
def test_a_model_without_a_price_has_none(model: str) -> None:
    assert PriceTable(None).price(model) is None
    assert PriceTable(None).price(model, fast=True) is None


def test_fast_mode_has_its_own_prices() -> None:
    table = PriceTable(None)
    assert table.price("claude-opus-5-5", fast=True) == DEFAULT_FAST_PRICES["claude-opus-5-5"]
    assert table.price("us.anthropic.claude-opus-4-6-v1", fast=True) == Price(
        input=30, output=150, cache_write_5m=37.5, cache_write_1h=60, cache_read=3)
    # a model without fast prices is priced as at standard speed, as Claude Code does
    assert table.price("claude-sonnet-4-5", fast=True) == DEFAULT_PRICES["claude-sonnet-4-5"]


# ---- overrides

MINE = Price(input=1, output=2, cache_write_5m=3, cache_write_1h=4, cache_read=5)
OTHER = Price(input=6, output=7, cache_write_5m=8, cache_write_1h=9, cache_read=10)


def test_overrides_win_under_every_spelling() -> None:
    table = PriceTable({"claude-opus-5-5": MINE})
    assert table.price("claude-opus-5-5") is MINE
    assert table.price("us.anthropic.claude-opus-5-5") is MINE
    assert table.price("claude-opus-5-5[1m]") is MINE
    assert table.price("claude-sonnet-5-5") == DEFAULT_PRICES["claude-sonnet-5-5"]
    # config.toml prices standard speed: fast mode keeps Claude Code's price
    assert table.price("claude-opus-5-5", fast=True) == DEFAULT_FAST_PRICES["claude-opus-5-5"]


def test_an_override_under_a_dated_spelling_prices_the_others() -> None:
    table = PriceTable({"claude-sonnet-4-5-20250929": MINE})
    assert table.price("claude-sonnet-4-5") is MINE
    assert table.price("us.anthropic.claude-sonnet-4-5-20250929-v1:0") is MINE
    # ... unless another override names the model itself, in either order
    for overrides in ({"claude-sonnet-4-5-20250929": MINE, "claude-sonnet-4-5": OTHER},
                      {"claude-sonnet-4-5": OTHER, "claude-sonnet-4-5-20250929": MINE}):
        table = PriceTable(overrides)
        assert table.price("claude-sonnet-4-5-20250929") is MINE
        assert table.price("claude-sonnet-4-5@20250929") is OTHER


def test_an_override_prices_a_model_claude_code_does_not() -> None:
    table = PriceTable({"gpt-4o": MINE, "claude-opus-6": OTHER})
    assert table.price("gpt-4o") is MINE
    assert table.price("GPT-4o") is None  # not a Claude id: its exact spelling only
    assert table.price("claude-opus-6-20270101") is OTHER


# ---- config.toml

def test_the_documented_example() -> None:
    table = {"claude-opus-5-5": {"input": 4.0, "output": 20.0, "cache_read": 0.4,
                                 "cache_write_5m": 5.0, "cache_write_1h": 8.0}}
    assert from_config(table) == {"claude-opus-5-5": Price(
        input=4, output=20, cache_read=0.4, cache_write_5m=5, cache_write_1h=8)}
    assert from_config({}) == {}


def test_cache_prices_left_out_are_derived_from_input() -> None:
    # a shipped model keeps its own ratios (Opus 5.5 reads the cache at 0.05x)...
    assert from_config({"claude-opus-5-5": {"input": 2, "output": 10}}) == {
        "claude-opus-5-5": Price(input=2, output=10, cache_read=0.1, cache_write_5m=2.5,
                                 cache_write_1h=4)}
    # ... another takes Anthropic's: 0.1x, 1.25x, 2x
    found = from_config({"my-model": {"input": 10, "output": 30, "web_search": 0}})
    assert found == {"my-model": Price(input=10, output=30, cache_read=1, cache_write_5m=12.5,
                                       cache_write_1h=20, web_search=0)}
    assert all(isinstance(getattr(found["my-model"], key), float)
               for key in ("input", "output", "cache_read", "web_search"))


GOOD = {"input": 1, "output": 2}


@pytest.mark.parametrize(("table", "named"), [
    ([], "prices"),
    ("claude-opus-5-5", "prices"),
    ({"claude-opus-5-5": 4}, 'prices."claude-opus-5-5"'),
    ({"m": {**GOOD, "input": -1}}, "input"),
    ({"m": {**GOOD, "output": -0.01}}, "output"),
    ({"m": {**GOOD, "cache_read": -1}}, "cache_read"),
    ({"m": {**GOOD, "input": "4"}}, "input"),
    ({"m": {**GOOD, "output": True}}, "output"),
    ({"m": {**GOOD, "cache_write_5m": None}}, "cache_write_5m"),
    ({"m": {**GOOD, "cache_write_1h": [1]}}, "cache_write_1h"),
    ({"m": {**GOOD, "input": math.nan}}, "input"),
    ({"m": {**GOOD, "output": math.inf}}, "output"),
    ({"m": {**GOOD, "input": 1e6}}, "input"),
    ({"m": {**GOOD, "cache_raed": 0.1}}, "cache_raed"),
    ({"m": {"input": 1}}, "output"),
    ({"m": {"output": 1}}, "input"),
    ({"": GOOD}, "model id"),
    ({"x" * (MAX_MODEL_ID + 1): GOOD}, "longer than 200"),
    ({f"model-{i}": GOOD for i in range(201)}, "201 models"),
])
def test_a_bad_prices_table_is_refused_naming_the_key(table: object, named: str) -> None:
    with pytest.raises(ConfigError, match="prices") as caught:
        from_config(table)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_two_hundred_models_and_ids_of_200_characters_are_fine() -> None:
    assert len(from_config({f"model-{i}": GOOD for i in range(200)})) == 200
    assert len(from_config({"x" * MAX_MODEL_ID: GOOD})) == 1


# ---- any tokens

rates = st.floats(min_value=0, max_value=10_000, allow_nan=False, allow_infinity=False)
prices = st.sampled_from([*DEFAULT_PRICES.values(), *DEFAULT_FAST_PRICES.values()]) | st.builds(
    Price, input=rates, output=rates, cache_write_5m=rates, cache_write_1h=rates,
    cache_read=rates, web_search=rates)
counts = st.lists(st.integers(min_value=0, max_value=10**9), min_size=5, max_size=5)
geos = st.sampled_from([None, "", "us", "eu"])


@settings(max_examples=examples(500))
@given(prices, counts, st.integers(min_value=0, max_value=10_000), geos)
def test_cost_is_never_below_zero(price: Price, tokens: list[int], searches: int,
                                  geo: str | None) -> None:
    assert cost(price, *tokens, web_search_requests=searches, inference_geo=geo) >= 0


@settings(max_examples=examples(500))
@given(prices, counts, st.integers(min_value=0, max_value=5), st.integers(min_value=0,
       max_value=10**9), geos)
def test_cost_grows_with_each_count(price: Price, tokens: list[int], which: int, more: int,
                                    geo: str | None) -> None:
    searches = 0
    grown = list(tokens)
    if which == 5:
        searches = more
    else:
        grown[which] += more
    assert (cost(price, *tokens, inference_geo=geo)
            <= cost(price, *grown, web_search_requests=searches, inference_geo=geo))


@settings(max_examples=examples(200))
@given(prices, geos)
def test_no_tokens_cost_nothing(price: Price, geo: str | None) -> None:
    assert cost(price, 0, 0, 0, 0, 0, inference_geo=geo) == 0
