"""Query parameters every list shares (offset, limit, sort) and the page envelope."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from storage.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest, sort_clause

T = TypeVar("T")
Out = TypeVar("Out", bound=BaseModel)


class PageOut(BaseModel, Generic[Out]):
    items: list[Out]
    total: int
    offset: int
    limit: int


def page_request(
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows per page")] = (
        DEFAULT_PAGE_SIZE
    ),
    sort: Annotated[
        str,
        Query(
            max_length=40,
            pattern=r"^-?[a-z_]*$",
            description="Field to sort by; '-field' for descending",
        ),
    ] = "",
) -> PageRequest:
    return PageRequest(offset=offset, limit=limit, sort=sort)


def page_out(page: Page[T], convert: Callable[[T], Out]) -> dict[str, Any]:
    return {
        "items": [convert(item) for item in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
    }


def slice_page(items: Sequence[T], request: PageRequest, key: str = "address") -> Page[T]:
    """A page of a short list held in memory (delegates, members, DKIM keys), sorted by ``key``
    (strings sort as themselves)."""
    sort_clause(request.sort, {key: None}, key)

    def value(item: T) -> Any:
        return item if isinstance(item, str) else getattr(item, key)

    ordered = sorted(items, key=value, reverse=request.sort.startswith("-"))
    chosen = ordered[request.offset : request.offset + request.limit]
    return Page(items=chosen, total=len(items), offset=request.offset, limit=request.limit)


Paging = Annotated[PageRequest, Depends(page_request)]
