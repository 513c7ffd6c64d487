"""Resolving @context references: core contexts from disk, hosted ones from memory, remote ones
fetched once over HTTP (bounded in size and time) and cached.

Also keeps the registry behind the /jsonldContexts endpoints (clause 5.13).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from stadsnav.ngsild.context import CORE_CONTEXT_URL, Context, core_document, is_core_url
from stadsnav.ngsild.errors import (
    BadRequestData,
    InvalidRequest,
    LdContextNotAvailable,
    ResourceNotFound,
)
from stadsnav.settings import Settings
from stadsnav.store.base import HostedContext, Store

_MAX_DEPTH = 8
HOSTED_PATH = "/ngsi-ld/v1/jsonldContexts/"


@dataclass
class StoredContext:
    id: str
    url: str
    kind: str  # "Hosted" or "Cached" (clause 5.13.2)
    document: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    last_usage: float = field(default_factory=time.time)
    uses: int = 0


class ContextResolver:
    def __init__(
        self, settings: Settings, store: Store, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._store = store
        self._client = client or httpx.AsyncClient(
            timeout=settings.context_fetch_timeout, follow_redirects=True
        )
        self._remote: OrderedDict[str, StoredContext] = OrderedDict()
        self._hosted: dict[str, StoredContext] = {}
        self._contexts: OrderedDict[bytes, Context] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._core = StoredContext(
            id="core", url=CORE_CONTEXT_URL, kind="Cached", document=core_document()
        )

    async def load(self) -> None:
        """Bring back the contexts clients asked to host before a restart."""
        for kept in await self._store.hosted_contexts():
            self._hosted[kept.id] = StoredContext(
                id=kept.id,
                url=kept.url,
                kind="Hosted",
                document=kept.document,
                created_at=kept.created_at,
                last_usage=kept.created_at,
            )

    async def close(self) -> None:
        await self._client.aclose()

    async def context_for(self, raw: Any) -> Context:
        """The active context for a Link header URL or a body's @context value (None: core)."""
        if raw is None:
            raw = CORE_CONTEXT_URL
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        hit = self._contexts.get(key)
        if hit is not None and not self._has_stale_remote(raw):
            self._contexts.move_to_end(key)
            return hit
        locals_: list[dict[str, Any]] = []
        await self._collect(raw, locals_, 0)
        ctx = Context.build(locals_)
        self._contexts[key] = ctx
        while len(self._contexts) > self.settings.context_cache_entries:
            self._contexts.popitem(last=False)
        return ctx

    def _has_stale_remote(self, raw: Any) -> bool:
        items = raw if isinstance(raw, list) else [raw]
        limit = time.time() - self.settings.context_cache_seconds
        for item in items:
            if isinstance(item, str) and not is_core_url(item):
                cached = self._remote.get(item)
                if item not in self._hosted_urls() and (
                    cached is None or cached.created_at < limit
                ):
                    return True
        return False

    def _hosted_urls(self) -> set[str]:
        return {c.url for c in self._hosted.values()}

    async def _collect(self, raw: Any, out: list[dict[str, Any]], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise BadRequestData("@context nests too deeply")
        if raw is None:
            return
        if isinstance(raw, list):
            for item in raw:
                await self._collect(item, out, depth + 1)
        elif isinstance(raw, str):
            document = await self.document(raw)
            await self._collect(document.get("@context"), out, depth + 1)
        elif isinstance(raw, dict):
            out.append(raw)
        else:
            raise BadRequestData("@context must be a URL, an object or an array of them")

    async def document(self, url: str) -> dict[str, Any]:
        """The JSON-LD document behind a context URL."""
        if is_core_url(url):
            return core_document(url)
        for hosted in self._hosted.values():
            if hosted.url == url or url.endswith(HOSTED_PATH + hosted.id):
                hosted.uses += 1
                hosted.last_usage = time.time()
                return hosted.document
        cached = self._remote.get(url)
        if (
            cached is not None
            and cached.created_at >= time.time() - self.settings.context_cache_seconds
        ):
            cached.uses += 1
            cached.last_usage = time.time()
            self._remote.move_to_end(url)
            return cached.document
        pending = self._inflight.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[url] = future
        try:
            document = await self._fetch(url)
            future.set_result(document)
        except BaseException as error:
            future.set_exception(error)
            # A waiter may not exist; mark the exception as retrieved to avoid a warning.
            future.exception()
            raise
        finally:
            del self._inflight[url]
        self._remote[url] = StoredContext(
            id=str(uuid.uuid4()), url=url, kind="Cached", document=document, uses=1
        )
        while len(self._remote) > self.settings.context_cache_entries:
            self._remote.popitem(last=False)
        return document

    async def _fetch(self, url: str) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise LdContextNotAvailable(f"@context {url!r:.200} is not an http(s) URL")
        if not self.settings.context_allow_private_networks:
            await _refuse_internal(url)
        limit = self.settings.context_max_bytes
        try:
            async with asyncio.timeout(self.settings.context_fetch_timeout):
                async with self._client.stream(
                    "GET", url, headers={"Accept": "application/ld+json, application/json"}
                ) as response:
                    if response.status_code != 200:
                        raise LdContextNotAvailable(
                            f"@context {url} answered HTTP {response.status_code}"
                        )
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            raise LdContextNotAvailable(
                                f"@context {url} is larger than {limit} bytes"
                            )
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, OSError) as error:
            raise LdContextNotAvailable(f"@context {url} could not be fetched: {error}") from None
        try:
            document = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            raise LdContextNotAvailable(f"@context {url} is not JSON") from None
        if not isinstance(document, dict) or "@context" not in document:
            raise LdContextNotAvailable(f"@context {url} holds no @context member")
        return dict(document)

    # -- the /jsonldContexts registry -------------------------------------------------------------

    async def add_hosted(self, document: Any, base_url: str) -> StoredContext:
        if not isinstance(document, dict) or "@context" not in document:
            raise InvalidRequest("A context to host must be a JSON object with an @context member")
        context_id = str(uuid.uuid4())
        stored = StoredContext(
            id=context_id,
            url=base_url.rstrip("/") + HOSTED_PATH + context_id,
            kind="Hosted",
            document=document,
        )
        await self._store.put_context(
            HostedContext(stored.id, stored.url, document, stored.created_at)
        )
        self._hosted[context_id] = stored
        return stored

    def listing(self, kind: str | None = None) -> list[StoredContext]:
        every = [self._core, *self._hosted.values(), *self._remote.values()]
        return [c for c in every if kind is None or c.kind == kind]

    def find(self, reference: str) -> StoredContext:
        """A context by its local id or by its URL."""
        for stored in self.listing():
            if reference in (stored.id, stored.url):
                return stored
        raise ResourceNotFound(f"No @context with id or URL {reference}")

    async def delete(self, reference: str, *, reload: bool) -> None:
        """Delete a hosted or cached context; reload refetches a cached one instead."""
        try:
            stored = self.find(reference)
        except ResourceNotFound:
            if reload:
                raise BadRequestData(f"No cached @context {reference} to reload") from None
            raise
        if stored is self._core:
            raise BadRequestData("The core @context cannot be deleted")
        if reload:
            if stored.kind != "Cached":
                raise BadRequestData("Only a cached @context can be reloaded")
            del self._remote[stored.url]
            await self.document(stored.url)
        elif stored.kind == "Hosted":
            await self._store.delete_context(stored.id)
            del self._hosted[stored.id]
        else:
            del self._remote[stored.url]
        self._contexts.clear()


async def _refuse_internal(url: str) -> None:
    """Refuse URLs whose host resolves to a loopback, private or link-local address."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as error:
        raise LdContextNotAvailable(f"@context {url!r:.200} is not a valid URL: {error}") from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as error:
        raise LdContextNotAvailable(f"@context host {host} cannot be resolved: {error}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise LdContextNotAvailable(
                f"@context {url} points into a private network, which this server does not fetch"
            )
