#!/usr/bin/env python3
"""An hq-interop (HTTP/0.9 over QUIC) file server on aioquic, for the tarte
interop tests (aioquic's own examples are not in its wheel).

Prints "LISTENING <port>" on stdout once bound (--port 0 picks a free port),
then one line per completed handshake: "HANDSHAKE cipher=<suite> alpn=<p>".
GET /path answers with the file's bytes and FIN; a missing file or a path
outside the root resets the stream with code 0x404.
"""

import argparse
import asyncio
import os
import sys
from functools import partial

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h0.connection import H0_ALPN, H0Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, ProtocolNegotiated
from aioquic.tls import CipherSuite

NOT_FOUND = 0x404


def resolve(root: str, path: str):
    path = path.split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." or "\\" in p or "\0" in p for p in parts):
        return None
    full = os.path.realpath(os.path.join(root, *parts) if parts else os.path.join(root, "index.html"))
    if os.path.commonpath([full, root]) != root or not os.path.isfile(full):
        return None
    return full


class HqServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args, root: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._root = root
        self._h0 = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H0_ALPN:
            self._h0 = H0Connection(self._quic)
        if isinstance(event, HandshakeCompleted):
            suite = self._quic.tls.key_schedule.cipher_suite
            print(
                f"HANDSHAKE cipher={suite.name} alpn={event.alpn_protocol} resumed={event.session_resumed}"
                f" early_data={event.early_data_accepted}",
                flush=True,
            )
        if self._h0 is None:
            return
        for ev in self._h0.handle_event(event):
            if isinstance(ev, HeadersReceived):
                headers = dict(ev.headers)
                path = headers.get(b":path", b"").decode(errors="replace")
                full = resolve(self._root, path) if headers.get(b":method") == b"GET" else None
                if full is None:
                    self._quic.reset_stream(ev.stream_id, NOT_FOUND)
                else:
                    with open(full, "rb") as f:
                        self._h0.send_data(ev.stream_id, f.read(), end_stream=True)
                self.transmit()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--retry", action="store_true")
    p.add_argument("--chacha", action="store_true", help="offer only TLS_CHACHA20_POLY1305_SHA256")
    args = p.parse_args()

    config = QuicConfiguration(is_client=False, alpn_protocols=H0_ALPN, max_datagram_frame_size=None)
    config.load_cert_chain(args.cert, args.key)
    if args.chacha:
        config.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
    root = os.path.realpath(args.root)
    # Session tickets for resumption: aioquic keeps them server-side, by
    # ticket (each one usable once, as RFC 8446 §8.1 suggests).
    tickets = {}
    server = await serve(
        args.host,
        args.port,
        configuration=config,
        create_protocol=partial(HqServerProtocol, root=root),
        retry=args.retry,
        session_ticket_fetcher=lambda t: tickets.pop(t, None),
        session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
    )
    port = server._transport.get_extra_info("sockname")[1]
    print(f"LISTENING {port}", flush=True)
    # Exit when the parent goes away (stdin closes) or on SIGTERM/SIGKILL.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
