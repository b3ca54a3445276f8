"""Runs opendkim-testmsg (OpenDKIM's verifier) against a private DNS: a test helper.

Started by the tests as ``unshare -rnm python opendkim_in_netns.py KEYS.json < message``: in a
new user, network and mount namespace it brings up loopback, points /etc/resolv.conf (for this
namespace only) at 127.0.0.1, answers TXT queries from KEYS.json on 127.0.0.1:53, and runs
opendkim-testmsg on the message. Prints "rc=<exit status>" and opendkim-testmsg's stderr.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def serve_dns(sock: socket.socket, records: dict[str, str]) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        value = records.get(question.name.to_text().lower().rstrip("."))
        if value is not None and question.rdtype == dns.rdatatype.TXT:
            strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", strings))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(response.to_wire(), peer)


def main() -> None:
    with open(sys.argv[1]) as handle:
        records = {k.lower().rstrip("."): v for k, v in json.load(handle).items()}
    message = sys.stdin.buffer.read()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Beside KEYS.json, in the test's own temporary directory, which the test removes.
    resolv = Path(sys.argv[1]).with_name("resolv.conf")
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    threading.Thread(target=serve_dns, args=(sock, records), daemon=True).start()
    run = subprocess.run(["opendkim-testmsg"], input=message, capture_output=True, timeout=30)
    print(f"rc={run.returncode}")
    print(run.stderr.decode(errors="replace").strip())


if __name__ == "__main__":
    main()
