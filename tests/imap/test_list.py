"""LIST and LSUB over a real connection: subscriptions (RFC 3501 6.3.9), LIST-EXTENDED
(RFC 5258). Cases follow Dovecot's imaptest scripted groups (subscribe, listext)."""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient
from tests.support.harness import LiveServer


async def _client(server: LiveServer) -> RawClient:
    await server.add_mailbox(USER)
    client = await RawClient.connect(server)
    await client.login()
    return client


async def test_lsub_percent_returns_unsubscribed_parents_as_noselect(
    protocol_server: LiveServer,
) -> None:
    client = await _client(protocol_server)
    for name in ("box/test", "box/test2/test", "box/test3/test3"):
        _, status = await client.command(f"CREATE {name}")
        assert status == b"OK CREATE completed"
    # CREATE does not subscribe (the client does); nothing is listed yet.
    untagged, _ = await client.command('LSUB "" box/*')
    assert untagged == []
    for name in ("box/test", "box/test2/test", "box/test3/test3"):
        await client.command(f"SUBSCRIBE {name}")
    untagged, _ = await client.command('LSUB "" box/%')
    assert untagged == [
        b'* LSUB () "/" box/test',
        b'* LSUB (\\Noselect) "/" box/test2',
        b'* LSUB (\\Noselect) "/" box/test3',
    ]
    untagged, _ = await client.command('LSUB "" *test')
    assert untagged == [b'* LSUB () "/" box/test', b'* LSUB () "/" box/test2/test']
    await client.command("UNSUBSCRIBE box/test3/test3")
    untagged, _ = await client.command('LSUB "" box/%')
    assert b'* LSUB (\\Noselect) "/" box/test3' not in untagged
    await client.close()


async def test_recursivematch_childinfo_only_for_subscribed_children_not_listed(
    protocol_server: LiveServer,
) -> None:
    client = await _client(protocol_server)
    for name in ("box/test2/test1", "box/test7/test7", "box/test8/test8", "box/test8/test9"):
        await client.command(f"CREATE {name}")
        await client.command(f"SUBSCRIBE {name}")
    childinfo = b' ("CHILDINFO" ("SUBSCRIBED"))'
    # test7's subscribed child is listed itself: no CHILDINFO line for test7.
    untagged, _ = await client.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" box*test7')
    assert untagged == [b'* LIST (\\HasNoChildren \\Subscribed) "/" box/test7/test7']
    # test8/test9 is not matched by the pattern: test8 carries CHILDINFO.
    untagged, _ = await client.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" box*test8')
    assert untagged == [
        b'* LIST (\\HasChildren) "/" box/test8' + childinfo,
        b'* LIST (\\HasNoChildren \\Subscribed) "/" box/test8/test8',
    ]
    untagged, _ = await client.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" (box/test2)')
    assert untagged == [b'* LIST (\\HasChildren) "/" box/test2' + childinfo]
    untagged, _ = await client.command(
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" (box/test2 box/test2/test1)'
    )
    assert untagged == [b'* LIST (\\HasNoChildren \\Subscribed) "/" box/test2/test1']
    # RFC 5258 3.1: RECURSIVEMATCH needs a selection option that selects something.
    for selection in ("RECURSIVEMATCH", "RECURSIVEMATCH REMOTE"):
        _, status = await client.command(f'LIST ({selection}) "" ""')
        assert status.startswith(b"BAD"), selection
    await client.close()


async def test_a_deleted_folder_stays_subscribed_until_unsubscribe(
    protocol_server: LiveServer,
) -> None:
    client = await _client(protocol_server)
    await client.command("CREATE box/gone")
    await client.command("SUBSCRIBE box/gone")
    _, status = await client.command("DELETE box/gone")
    assert status == b"OK DELETE completed"
    # RFC 3501 6.3.6: the server must not drop the subscription by itself.
    untagged, _ = await client.command('LIST (SUBSCRIBED) "" box/*')
    assert untagged == [b'* LIST (\\NonExistent \\Subscribed) "/" box/gone']
    untagged, _ = await client.command('LSUB "" box/*')
    assert untagged == [b'* LSUB () "/" box/gone']
    untagged, _ = await client.command('LIST "" box*')  # the folder itself is gone
    assert untagged == [b'* LIST (\\HasNoChildren) "/" box']
    # Created again, the folder has its subscription back.
    await client.command("CREATE box/gone")
    untagged, _ = await client.command('LIST (SUBSCRIBED) "" box/*')
    assert untagged == [b'* LIST (\\HasNoChildren \\Subscribed) "/" box/gone']
    await client.command("DELETE box/gone")
    _, status = await client.command("UNSUBSCRIBE box/gone")
    assert status == b"OK UNSUBSCRIBE completed"
    untagged, _ = await client.command('LSUB "" box*')
    assert untagged == []
    _, status = await client.command("UNSUBSCRIBE box/gone")
    assert status.startswith(b"NO [NONEXISTENT]")
    await client.close()
