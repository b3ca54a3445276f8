"""At MX DATA each recipient's copy is filed by that recipient's own sender rules: a recipient
who blocks the sender gets it in Junk while the others get it in INBOX."""

from __future__ import annotations

from sqlmodel import Session

from storage.models import SenderRuleKind
from storage.sender_rules import set_sender_rule
from tests.smtp.helpers import blocking, folder_messages, message, sendmail
from tests.support.harness import LiveServer

AN = "an@sotest.gov.vn"
BINH = "binh@sotest.gov.vn"
SENDER = "quangcao@ngoai.gov.vn"


async def test_each_recipient_copy_follows_its_own_sender_rules(live_server: LiveServer) -> None:
    await live_server.add_mailbox(AN)
    await live_server.add_mailbox(BINH)

    def block(session: Session) -> None:
        set_sender_rule(session, "test", BINH, SENDER, SenderRuleKind.BLOCK)

    await live_server.running.instance.store.write(block)
    raw = message(SENDER, f"{AN}, {BINH}", "Khuyến mãi")
    refused = await blocking(sendmail, live_server.address("smtp_mx"), SENDER, [AN, BINH], raw)
    assert refused == {}
    assert len(await folder_messages(live_server, AN, "INBOX")) == 1
    assert await folder_messages(live_server, AN, "Junk") == []
    assert await folder_messages(live_server, BINH, "INBOX") == []
    assert len(await folder_messages(live_server, BINH, "Junk")) == 1
