"""Agency abbreviations are unique where they form addresses.

On a shared domain (the province's ``hanoi.gov.vn``) the address ``<name>.<abbreviation>@``
belongs to the agency with that abbreviation (storage.admin_scope.may_use_address). Were two
agencies to share an abbreviation, even for a moment, one agency's admin could create names of
the other's and keep them after renaming back. So an abbreviation given to an agency (new or
renamed) must:

* differ, once folded (case, diacritics: ``STC`` = ``stc`` = ``Stc``), from every other
  agency's; and
* not already end an address of someone else on a domain of the agency's ancestors (the
  shared domains where the agency's abbreviation forms addresses): taking it would hand over
  that name.

Both raise :class:`storage.agency_tree.AgencyConflict` (409 in the API).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.address_convention import normalise_agency_abbreviation
from storage.admin_scope import effective_agency_id, subtree_ids
from storage.models import Agency, Alias, Domain, Mailbox, MailGroup
from storage.text_fold import fold_for_search


def folded_abbreviation(abbreviation: str) -> str:
    return fold_for_search(abbreviation).strip()


def abbreviation_owner(session: Session, abbreviation: str, except_id: int | None) -> int | None:
    """The other agency whose abbreviation folds to the same as ``abbreviation``, if any."""
    wanted = folded_abbreviation(abbreviation)
    for agency_id, other in session.exec(select(Agency.id, Agency.abbreviation)):
        if agency_id != except_id and folded_abbreviation(other) == wanted:
            return agency_id
    return None


def ancestor_ids(session: Session, parent_id: int | None) -> list[int]:
    """``parent_id`` and every agency above it."""
    found: list[int] = []
    while parent_id is not None and parent_id not in found:
        found.append(parent_id)
        parent = session.get(Agency, parent_id)
        parent_id = parent.parent_id if parent is not None else None
    return found


def suffix_taken_by_others(
    session: Session, abbreviation: str, agency_id: int | None, parent_id: int | None
) -> str | None:
    """An address of someone else that ``abbreviation`` would hand to the agency, if any."""
    try:
        suffix = "." + normalise_agency_abbreviation(abbreviation)
    except ValueError:
        return None  # forms no addresses
    shared = select(col(Domain.id)).where(
        col(Domain.agency_id).in_(ancestor_ids(session, parent_id))
    )
    own = subtree_ids(session, agency_id) if agency_id is not None else frozenset()
    for model in (Mailbox, Alias, MailGroup):
        rows = session.exec(
            select(model.address, model.agency_id, model.domain_id).where(
                col(model.domain_id).in_(shared), col(model.address).like(f"%{suffix}@%")
            )
        )
        for address, owner_id, domain_id in rows:
            if not address.partition("@")[0].endswith(suffix):
                continue
            if effective_agency_id(session, owner_id, domain_id) not in own:
                return str(address)
    return None
