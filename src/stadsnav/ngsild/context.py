"""JSON-LD @context handling for NGSI-LD: term expansion and compaction.

Only the part of JSON-LD 1.1 that NGSI-LD payloads use is implemented: term definitions (string or
object with ``@id``/``@type``/``@container``), compact IRIs (``prefix:suffix``), ``@vocab``, and
contexts given as arrays. Fetching remote contexts is I/O and lives outside this package: callers
hand over already-resolved context objects.

The core contexts are ETSI's files (BSD-3-Clause, see contexts/LICENSE-ETSI.txt), bundled so that
nothing needs the internet at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from stadsnav.ngsild.errors import BadRequestData, InvalidRequest

CORE_BASE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"
NGSILD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"

# Every published URL of a core context we serve from disk. v1.6 is answered with the v1.7 file:
# no copy of v1.6 was available to bundle and v1.7 only adds terms to it (docs/api.md says so).
_CORE_FILES = {
    f"{CORE_BASE}-v1.6.jsonld": "ngsi-ld-core-context-v1.7.jsonld",
    f"{CORE_BASE}-v1.7.jsonld": "ngsi-ld-core-context-v1.7.jsonld",
    f"{CORE_BASE}-v1.8.jsonld": "ngsi-ld-core-context-v1.8.jsonld",
    f"{CORE_BASE}-v1.9.jsonld": "ngsi-ld-core-context-v1.9.jsonld",
    f"{CORE_BASE}.jsonld": "ngsi-ld-core-context-v1.8.jsonld",
}
CORE_CONTEXT_URL = f"{CORE_BASE}-v1.8.jsonld"
CORE_CONTEXT_URLS = frozenset(_CORE_FILES)


@cache
def core_document(url: str = CORE_CONTEXT_URL) -> dict[str, Any]:
    """The bundled core context document for a published core-context URL."""
    name = _CORE_FILES[url]
    text = resources.files("stadsnav.ngsild").joinpath("contexts", name).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def is_core_url(url: str) -> bool:
    return url in _CORE_FILES


@dataclass(frozen=True)
class TermDefinition:
    iri: str
    type: str | None = None
    container: str | None = None


@dataclass
class Context:
    """A processed active context: the user's terms on top of the core context."""

    terms: dict[str, TermDefinition] = field(default_factory=dict)
    vocab: str | None = DEFAULT_VOCAB
    _reverse: dict[str, str] = field(default_factory=dict, repr=False)
    _expand_cache: dict[str, str] = field(default_factory=dict, repr=False)
    _compact_cache: dict[str, str] = field(default_factory=dict, repr=False)
    # Attribute names already validated and expanded in this context (entity.py fills it).
    checked_names: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, user_contexts: Iterable[Mapping[str, Any]] = ()) -> Context:
        """Process user context objects (already fetched) followed by the core context.

        The core context is protected: its terms win over user redefinitions, as the spec asks.
        """
        ctx = cls()
        for local in user_contexts:
            ctx._add(local)
        ctx._add(_core_object())
        ctx._reverse = {}
        # Later (core) definitions were added last; build the reverse map so that user terms are
        # preferred for compaction where both map to the same IRI.
        for term, definition in ctx.terms.items():
            ctx._reverse.setdefault(definition.iri, term)
        return ctx

    def _add(self, local: Mapping[str, Any]) -> None:
        if not isinstance(local, Mapping):
            raise BadRequestData("An @context entry must be an object or a URL")
        pending = {k: v for k, v in local.items() if not k.startswith("@")}
        if "@vocab" in local:
            vocab = local["@vocab"]
            if vocab is not None and not isinstance(vocab, str):
                raise BadRequestData("@vocab must be a string")
            self.vocab = self._resolve(vocab) if vocab else None
        # Definitions may refer to prefixes defined in the same object, in any order.
        for _ in range(len(pending) + 1):
            progressed = False
            for term in list(pending):
                definition = _parse_definition(term, pending[term])
                if definition is None:
                    pending.pop(term)
                    self.terms.pop(term, None)
                    progressed = True
                    continue
                iri = definition.iri
                prefix = iri.split(":", 1)[0] if ":" in iri else None
                if prefix and prefix in pending and prefix != term and not iri.startswith("http"):
                    continue
                resolved = TermDefinition(
                    self._resolve(iri, term), definition.type, definition.container
                )
                self.terms[term] = resolved
                pending.pop(term)
                progressed = True
            if not pending or not progressed:
                break
        for term, raw in pending.items():
            definition = _parse_definition(term, raw)
            if definition is not None:
                self.terms[term] = TermDefinition(
                    self._resolve(definition.iri, term), definition.type, definition.container
                )

    def _resolve(self, value: str, term: str | None = None) -> str:
        if value.startswith("@"):
            return value
        if ":" in value:
            prefix, suffix = value.split(":", 1)
            if suffix.startswith("//"):
                return value
            known = self.terms.get(prefix)
            if known is not None:
                return known.iri + suffix
            return value
        known = self.terms.get(value)
        if known is not None and value != term:
            return known.iri
        if self.vocab:
            return self.vocab + value
        return value

    def expand(self, term: str) -> str:
        """Expand an attribute name or type name to its IRI."""
        hit = self._expand_cache.get(term)
        if hit is not None:
            return hit
        definition = self.terms.get(term)
        if definition is not None:
            iri = definition.iri
        elif ":" in term:
            prefix, suffix = term.split(":", 1)
            known = self.terms.get(prefix)
            iri = known.iri + suffix if known is not None and not suffix.startswith("//") else term
        elif self.vocab:
            iri = self.vocab + term
        else:
            iri = term
        if len(self._expand_cache) < 10_000:
            self._expand_cache[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """Compact an IRI to the shortest term the context knows for it."""
        hit = self._compact_cache.get(iri)
        if hit is not None:
            return hit
        term = self._reverse.get(iri)
        if term is None:
            suffix = iri[len(self.vocab) :] if self.vocab and iri.startswith(self.vocab) else ""
            # A suffix the context defines as a term means something else: the vocabulary
            # cannot shorten this IRI, a prefix may.
            term = suffix if suffix and suffix not in self.terms else self._prefixed(iri)
        if len(self._compact_cache) < 10_000:
            self._compact_cache[iri] = term
        return term

    def _prefixed(self, iri: str) -> str:
        """The compact IRI `prefix:rest` with the longest matching prefix, else the IRI."""
        best: tuple[int, str] | None = None
        for term, definition in self.terms.items():
            prefix = definition.iri
            if (
                prefix.endswith(("/", "#"))
                and iri.startswith(prefix)
                and len(iri) > len(prefix)
                and ":" not in term
                and (best is None or len(prefix) > best[0])
            ):
                best = (len(prefix), term)
        return f"{best[1]}:{iri[best[0] :]}" if best else iri


def _parse_definition(term: str, raw: Any) -> TermDefinition | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return TermDefinition(raw)
    if isinstance(raw, Mapping):
        iri = raw.get("@id", term)
        if iri is None:
            return None
        if not isinstance(iri, str):
            raise BadRequestData(f"Term {term!r} has an @id that is not a string")
        kind = raw.get("@type")
        container = raw.get("@container")
        return TermDefinition(
            iri,
            kind if isinstance(kind, str) else None,
            container if isinstance(container, str) else None,
        )
    raise BadRequestData(f"Term {term!r} has an invalid definition")


@cache
def _core_object() -> Mapping[str, Any]:
    inner = core_document()["@context"]
    if not isinstance(inner, dict):
        raise InvalidRequest("core context is malformed")
    return inner


@cache
def core_context() -> Context:
    """The active context when a request brings none (only the core context)."""
    return Context.build()
