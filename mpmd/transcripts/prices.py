"""Pure: what a model's tokens cost, in US dollars, priced the way Claude Code prices them.

The shipped prices are Claude Code's own. Claude Code 2.1.328 bundles a model catalog
(its source says "Hand-maintained baked-in model catalog"): ``pricing_tiers``, each in
dollars per million tokens (``input``, ``output``, ``cache_write_5m``, ``cache_write_1h``,
``cache_read``) and per web search request (``web_search``), and ``models``, each naming its
tier (``"pricing":"tier_4_20_cache_read_0_20"``) and its spellings at each provider
(``provider_ids``). Beside it, a second table prices fast mode (``speed: "fast"`` in a
response's usage) for the models that have it. How it computes a response's cost, mirrored
by cost():

- tokens by kind times their price, per million; cache creation marked 1 h at the 1 h
  price, the rest of it at the 5 min price;
- a price with a long-prompt tier (Haiku 5.5's) uses it for a whole request whose prompt
  (input, cache read and cache creation tokens) is over its threshold: a request's cost,
  not a sum of requests', which is what mpmd prices (one response at a time);
- the token part times 1.1 when the response's ``inference_geo`` is "us" (US-only
  inference), web searches not;
- web searches at their price per request.

A model Claude Code has no price for it prices as its default model and says so
(``hasUnknownModelCost``); here such a model has no price (None), never a guess. Claude
Code may also get prices from Anthropic's servers at run time, or from an organisation's
managed settings: those win over the baked ones, and only its ``cost-state`` entries have
them.

Model ids come from transcripts (untrusted text): a lookup is refused for an id longer than
MAX_MODEL_ID, and the normalisation's cache is bounded.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import msgspec

from mpmd.errors import ConfigError

MAX_MODEL_ID = 200  # a longer model id is no model's (the longest provider id is ~50)
MAX_MODELS = 200  # models config.toml may price
MAX_PRICE = 10_000.0  # dollars a million tokens: the bound Claude Code puts on fetched prices
US_INFERENCE = 1.1  # Claude Code's multiplier for inference_geo "us"

# Anthropic's cache prices, relative to input, for a model config.toml prices without
# them and that has no shipped price to take its own ratios from. Every shipped price
# writes the cache at 1.25x and 2x; reads are 0.1x for most, but 0.05x for Opus 5.5 and
# Sonnet 5.5, 0.025x for Fable and Mythos 5.1 and 5.2.
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1
WEB_SEARCH = 0.01  # dollars a request, the same for every model Claude Code prices


class LongPrompt(msgspec.Struct, frozen=True, kw_only=True):
    """The prices of a request whose prompt is over ``above_prompt_tokens``."""

    above_prompt_tokens: int
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """A model's prices: US dollars per million tokens, web_search per request."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    web_search: float = WEB_SEARCH
    long_prompt: LongPrompt | None = None


# Claude Code 2.1.328's own list prices, taken from its bundled JavaScript on 2026-12-03:
# the tiers of its model catalog, under the catalog's names.
_TIER_2_10 = Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.2)
_TIER_2_10_CACHE_READ_0_10 = Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4,
                                   cache_read=0.1)
_TIER_3_15 = Price(input=3, output=15, cache_write_5m=3.75, cache_write_1h=6, cache_read=0.3)
_TIER_4_20_CACHE_READ_0_20 = Price(input=4, output=20, cache_write_5m=5, cache_write_1h=8,
                                   cache_read=0.2)
_TIER_5_25 = Price(input=5, output=25, cache_write_5m=6.25, cache_write_1h=10, cache_read=0.5)
_TIER_8_40_CACHE_READ_0_20 = Price(input=8, output=40, cache_write_5m=10, cache_write_1h=16,
                                   cache_read=0.2)
_TIER_10_50 = Price(input=10, output=50, cache_write_5m=12.5, cache_write_1h=20, cache_read=1)
_TIER_10_50_CACHE_READ_0_25 = Price(input=10, output=50, cache_write_5m=12.5, cache_write_1h=20,
                                    cache_read=0.25)
_TIER_15_75 = Price(input=15, output=75, cache_write_5m=18.75, cache_write_1h=30,
                    cache_read=1.5)
_HAIKU_35 = Price(input=0.8, output=4, cache_write_5m=1, cache_write_1h=1.6, cache_read=0.08)
_HAIKU_45 = Price(input=1, output=5, cache_write_5m=1.25, cache_write_1h=2, cache_read=0.1)
_HAIKU_55 = Price(input=0.1, output=0.5, cache_write_5m=0.125, cache_write_1h=0.2,
                  cache_read=0.01,
                  long_prompt=LongPrompt(above_prompt_tokens=100_000, input=0.5, output=2.5,
                                         cache_write_5m=0.625, cache_write_1h=1,
                                         cache_read=0.05))

# Every model of the catalog, by its catalog id. Claude Code knows claude-3-opus,
# claude-3-sonnet and claude-3-haiku by name but has no price for them: not here either.
DEFAULT_PRICES: dict[str, Price] = {
    "claude-3-5-haiku": _HAIKU_35,
    "claude-haiku-4-5": _HAIKU_45,
    "claude-haiku-5-5": _HAIKU_55,
    "claude-3-5-sonnet": _TIER_3_15,
    "claude-3-7-sonnet": _TIER_3_15,
    "claude-sonnet-4-0": _TIER_3_15,
    "claude-sonnet-4-5": _TIER_3_15,
    "claude-sonnet-4-6": _TIER_3_15,
    "claude-sonnet-5": _TIER_2_10,
    "claude-sonnet-5-5": _TIER_2_10_CACHE_READ_0_10,
    "claude-opus-4-0": _TIER_15_75,
    "claude-opus-4-1": _TIER_15_75,
    "claude-opus-4-5": _TIER_5_25,
    "claude-opus-4-6": _TIER_5_25,
    "claude-opus-4-7": _TIER_5_25,
    "claude-opus-4-8": _TIER_5_25,
    "claude-opus-5": _TIER_5_25,
    "claude-opus-5-5": _TIER_4_20_CACHE_READ_0_20,
    "claude-fable-5": _TIER_10_50,
    "claude-fable-5-1": _TIER_10_50_CACHE_READ_0_25,
    "claude-fable-5-2": _TIER_8_40_CACHE_READ_0_20,
    "claude-mythos-5": _TIER_10_50,
    "claude-mythos-5-1": _TIER_10_50_CACHE_READ_0_25,
    "claude-mythos-5-2": _TIER_8_40_CACHE_READ_0_20,
}

# Fast mode's prices, from the same bundle (a table apart from the catalog's). A model not
# here is priced at its standard price in fast mode too, as Claude Code does.
_FAST_8_40 = Price(input=8, output=40, cache_write_5m=10, cache_write_1h=16, cache_read=0.4)
_FAST_10_50 = Price(input=10, output=50, cache_write_5m=12.5, cache_write_1h=20, cache_read=1)
_FAST_16_80 = Price(input=16, output=80, cache_write_5m=20, cache_write_1h=32, cache_read=0.4)
_FAST_30_150 = Price(input=30, output=150, cache_write_5m=37.5, cache_write_1h=60,
                     cache_read=3)
DEFAULT_FAST_PRICES: dict[str, Price] = {
    "claude-opus-4-6": _FAST_30_150,
    "claude-opus-4-7": _FAST_30_150,
    "claude-opus-4-8": _FAST_10_50,
    "claude-opus-5": _FAST_10_50,
    "claude-opus-5-5": _FAST_8_40,
    "claude-fable-5-2": _FAST_16_80,
    "claude-mythos-5-2": _FAST_16_80,
}


# ---- model ids

# Claude Code's rules for a model id's spellings (its model-id parser): Bedrock's
# "<region>.anthropic." or "anthropic." before the id, an ARN's or a gateway's path before
# that, a context-window mark after ("[1m]"), and after the id only these: "-latest", a
# date ("-20250929", Vertex's "@20250929", "-v2@20241022"), Bedrock's version ("-v1:0").
_REGIONS = ("us", "eu", "apac", "jp", "au", "us-gov", "global")
_PROVIDER = re.compile(r"(?:([a-z-]+)\.)?anthropic\.(claude-.*)")
_VERSION_DOT = re.compile(r"(claude-(?:[a-z]+-)?\d{1,2})\.(?=\d)")  # claude-opus-4.5
_NAME = re.compile(r"claude-([a-z]+)-(\d{1,2})(?!\d)(?:-(\d{1,2})(?!\d))?")
_LEGACY_NAME = re.compile(r"claude-(\d{1,2})(?!\d)(?:-(\d{1,2})(?!\d))?-([a-z]+)")
_TRAILER = re.compile(r"(?:-fast|-latest)?(?:-v\d{1,3}@\d{8}|[-@]\d{8})?"
                      r"(?:-v\d{1,3}(?::\d{1,3})?)?")

_Key = tuple[str, int, int, bool]  # family, major, minor (0 if none), legacy name order


def _parse(model: str) -> tuple[str, _Key] | None:
    """The id without its decorations and its version, or None if it is not a Claude
    model's id as a provider spells it."""
    text = model.strip().lower()
    if not text or any(c.isspace() for c in text):
        return None
    text = re.sub(r"\[[12]m\]$", "", text)
    text = text[text.rfind("/") + 1:]
    text = _VERSION_DOT.sub(r"\1-", text)
    if provider := _PROVIDER.fullmatch(text):
        region, text = provider.groups()
        if region is not None and region not in _REGIONS:
            return None
    if name := _NAME.match(text):
        family, major, minor = name.groups()
        key = (family, int(major), int(minor or 0), False)
    elif name := _LEGACY_NAME.match(text):
        major, minor, family = name.groups()
        key = (family, int(major), int(minor or 0), True)
    else:
        return None
    if not _TRAILER.fullmatch(text, name.end()):
        return None
    return name.group(), key


_KNOWN: dict[_Key, str] = {}
for _model in DEFAULT_PRICES:
    _parsed = _parse(_model)
    assert _parsed is not None and _parsed[0] == _model, _model
    _KNOWN[_parsed[1]] = _model


@lru_cache(maxsize=1024)
def _canonical(model: str) -> str | None:
    parsed = _parse(model)
    if parsed is None:
        return None
    name, key = parsed
    # "claude-opus-4-20250514" is Opus 4.0's: the shipped ids spell a minor version of 0
    return _KNOWN.get(key, name)


def canonical(model: str) -> str | None:
    """The catalog id a model id names ("claude-sonnet-4-5" for "claude-sonnet-4-5-20250929",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0" or "claude-sonnet-4-5@20250929"); for a
    Claude model not in the catalog, its id without decorations; None for anything else."""
    if len(model) > MAX_MODEL_ID:
        return None
    return _canonical(model)


class PriceTable:
    """The shipped prices, with config.toml's ``overrides`` before them."""

    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self.overrides = dict(overrides or {})
        # An override under a dated or a provider's spelling prices the model's other
        # spellings too, unless another override names the model by its catalog id.
        self._by_canonical: dict[str, Price] = {}
        for model, price in self.overrides.items():
            name = canonical(model)
            if name is not None and (name not in self._by_canonical or name == model):
                self._by_canonical[name] = price

    def price(self, model: str, *, fast: bool = False) -> Price | None:
        """The price of ``model``'s tokens (in fast mode if ``fast``), None if it has none:
        its exact id first, then the catalog id it names; config.toml's before the shipped."""
        if len(model) > MAX_MODEL_ID:
            return None
        name = canonical(model)
        # config.toml prices standard speed only: fast mode keeps Claude Code's price, as
        # Claude Code's own price overrides do.
        if fast and name in DEFAULT_FAST_PRICES:
            return DEFAULT_FAST_PRICES[name]
        if model in self.overrides:
            return self.overrides[model]
        if name is None:
            return None
        override = self._by_canonical.get(name)
        return override if override is not None else DEFAULT_PRICES.get(name)


def cost(price: Price, input_tokens: int, output_tokens: int, cache_read: int,
         cache_write_5m: int, cache_write_1h: int, *, web_search_requests: int = 0,
         inference_geo: str | None = None) -> float:
    """US dollars for one response's tokens, as Claude Code computes them.

    ``cache_write_5m`` is the cache creation not written for 1 h: a transcript's
    ``cache_creation_input_tokens`` less its ``cache_creation.ephemeral_1h_input_tokens``.
    Where a transcript has no 5 min / 1 h split, pass all of ``cache_creation_input_tokens``
    as ``cache_write_5m``: Claude Code prices cache creation not marked 1 h at the 5 min price.
    A count below 0 counts as 0. The terms are added in Claude Code's order.
    """
    input_tokens, output_tokens, cache_read, cache_write_5m, cache_write_1h = (
        max(0, n) for n in (input_tokens, output_tokens, cache_read, cache_write_5m,
                            cache_write_1h))
    rates: Price | LongPrompt = price
    long = price.long_prompt
    if (long is not None and input_tokens + cache_read + cache_write_5m + cache_write_1h
            > long.above_prompt_tokens):
        rates = long
    tokens = (input_tokens / 1e6 * rates.input + output_tokens / 1e6 * rates.output
              + cache_read / 1e6 * rates.cache_read
              + (cache_write_1h / 1e6 * rates.cache_write_1h
                 + cache_write_5m / 1e6 * rates.cache_write_5m))
    if inference_geo == "us":
        tokens *= US_INFERENCE
    return tokens + max(0, web_search_requests) * price.web_search


# ---- config.toml

_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "web_search")


def from_config(table: object) -> dict[str, Price]:
    """config.toml's ``[prices]`` table, checked: ``[prices."<model id>"]`` tables of
    ``input`` and ``output`` (dollars per million tokens, required), ``cache_read``,
    ``cache_write_5m``, ``cache_write_1h`` (derived from ``input`` when left out: by the
    model's shipped ratios if it has a shipped price, else by Anthropic's 0.1, 1.25 and 2)
    and ``web_search`` (dollars a request). ConfigError names what is wrong."""
    if not isinstance(table, dict):
        raise ConfigError("prices: must be a table of [prices.\"<model id>\"] tables")
    if len(table) > MAX_MODELS:
        raise ConfigError(f"prices: {len(table)} models priced, at most {MAX_MODELS}")
    return {model: _price(model, entry) for model, entry in table.items()}


def _price(model: object, entry: object) -> Price:
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"prices: {model!r} is not a model id")
    if len(model) > MAX_MODEL_ID:
        raise ConfigError(f"prices: model id {model[:40]!r}... is longer than "
                          f"{MAX_MODEL_ID} characters")
    where = f'prices."{model}"'
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table (input = ..., output = ...)")
    for key in entry:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(_KEYS)})")
    values = {key: _dollars(where, key, value) for key, value in entry.items()}
    for key in ("input", "output"):
        if key not in values:
            raise ConfigError(f"{where}: {key}: required (US dollars per million tokens)")
    base = _shipped(model)
    if base is None:
        ratios = {"cache_read": CACHE_READ, "cache_write_5m": CACHE_WRITE_5M,
                  "cache_write_1h": CACHE_WRITE_1H}
    else:
        ratios = {key: getattr(base, key) / base.input
                  for key in ("cache_read", "cache_write_5m", "cache_write_1h")}
    for key, ratio in ratios.items():
        values.setdefault(key, values["input"] * ratio)
    values.setdefault("web_search", base.web_search if base is not None else WEB_SEARCH)
    return Price(input=values["input"], output=values["output"],
                 cache_write_5m=values["cache_write_5m"],
                 cache_write_1h=values["cache_write_1h"], cache_read=values["cache_read"],
                 web_search=values["web_search"])


def _shipped(model: str) -> Price | None:
    name = canonical(model)
    return DEFAULT_PRICES.get(name) if name is not None else None


def _dollars(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {key}: must be a number of US dollars (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key}: must be 0 or more (got {value!r})")
    if value > MAX_PRICE:
        raise ConfigError(f"{where}: {key}: {value!r} is more than {MAX_PRICE:g} dollars, "
                          "surely not a price per million tokens")
    return float(value)
