#!/usr/bin/env python3
"""An hq-interop (HTTP/0.9 over QUIC) client on aioquic, for the tarte
interop tests: one connection, all URLs on parallel streams, each body
written to OUTPUT/<last path segment>. Prints "HANDSHAKE cipher=<suite>
alpn=<p> retry=<n>" and "ELAPSED <seconds>", and exits non-zero on any
failure or after --timeout. With --migrate the first URL is fetched alone,
then the client changes its connection ID and moves to a new local UDP
port (the old socket closed: RFC 9000 connection migration, as the interop
runner's "connectionmigration" case does), prints "MIGRATED <old port>
<new port>" and fetches the others on the same connection. With
--session-file the client resumes the session stored there, if any, stores
the server's newest ticket there and prints "RESUMED <True|False>"; with
--zero-rtt as well, the requests go in 0-RTT packets when the ticket allows
it (the HANDSHAKE line then says early=True if the server accepted them).
"""

import argparse
import asyncio
import os
import pickle
import socket
import ssl
import sys
import time
from urllib.parse import urlparse

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h0.connection import H0_ALPN, H0Connection
from aioquic.h3.events import DataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamReset
from aioquic.tls import CipherSuite


class HqClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h0 = H0Connection(self._quic)
        self._bodies = {}
        self._waiters = {}
        self.handshake = None

    async def get(self, path: str) -> bytes:
        stream_id = self._quic.get_next_available_stream_id()
        self._h0.send_headers(stream_id, [(b":method", b"GET"), (b":path", path.encode())], end_stream=True)
        fut = asyncio.get_running_loop().create_future()
        self._waiters[stream_id] = fut
        self._bodies[stream_id] = bytearray()
        self.transmit()
        return await fut

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            suite = self._quic.tls.key_schedule.cipher_suite
            self.handshake = (
                f"cipher={suite.name} alpn={event.alpn_protocol} retry={self._quic._retry_count}"
                f" early={event.early_data_accepted}"
            )
        elif isinstance(event, StreamReset):
            fut = self._waiters.pop(event.stream_id, None)
            if fut and not fut.done():
                fut.set_exception(RuntimeError(f"stream {event.stream_id} reset, code {event.error_code:#x}"))
        elif isinstance(event, ConnectionTerminated):
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(RuntimeError(f"connection closed: {event.error_code:#x} {event.reason_phrase}"))
            self._waiters.clear()
        for ev in self._h0.handle_event(event):
            if isinstance(ev, DataReceived) and ev.stream_id in self._bodies:
                self._bodies[ev.stream_id] += ev.data
                if ev.stream_ended:
                    fut = self._waiters.pop(ev.stream_id, None)
                    if fut and not fut.done():
                        fut.set_result(bytes(self._bodies.pop(ev.stream_id)))


async def migrate(client) -> None:
    """New connection ID, new local port; the old socket is closed."""
    loop = asyncio.get_running_loop()
    old = client._transport.get_extra_info("sockname")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0, 0, 0))
    old_transport = client._transport
    client._quic.change_connection_id()
    await loop.create_datagram_endpoint(lambda: client, sock=sock)
    old_transport.close()
    new = client._transport.get_extra_info("sockname")
    print(f"MIGRATED {old[1]} {new[1]}", flush=True)
    # PING: something ack-eliciting leaves from the new address at once.
    client._quic.send_ping(0)
    client.transmit()


async def run(args) -> int:
    urls = [urlparse(u) for u in args.urls]
    host, port = urls[0].hostname, urls[0].port or 443
    if any((u.hostname, u.port or 443) != (host, port) for u in urls):
        print("all URLs must share one host and port", file=sys.stderr)
        return 2
    config = QuicConfiguration(is_client=True, alpn_protocols=H0_ALPN, idle_timeout=args.timeout)
    if args.ca:
        config.load_verify_locations(args.ca)
    else:
        config.verify_mode = ssl.CERT_NONE
    if args.chacha:
        config.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]
    config.server_name = args.server_name or host
    tickets = []
    if args.session_file and os.path.exists(args.session_file):
        with open(args.session_file, "rb") as f:
            config.session_ticket = pickle.load(f)
    start = time.monotonic()
    async with connect(
        host,
        port,
        configuration=config,
        create_protocol=HqClientProtocol,
        session_ticket_handler=tickets.append,
        # Not waiting for the handshake lets the requests go in 0-RTT.
        wait_connected=not args.zero_rtt,
    ) as client:
        paths = [u.path or "/" for u in urls]
        if args.migrate:
            first = await asyncio.gather(client.get(paths[0]), return_exceptions=True)
            await migrate(client)
            rest = await asyncio.gather(*(client.get(p) for p in paths[1:]), return_exceptions=True)
            bodies = first + rest
        else:
            bodies = await asyncio.gather(*(client.get(p) for p in paths), return_exceptions=True)
        if client.handshake is None:
            await client.wait_connected()
        print(f"HANDSHAKE {client.handshake}", flush=True)
        if args.session_file:
            print(f"RESUMED {client._quic.tls.session_resumed}", flush=True)
            if tickets:
                with open(args.session_file, "wb") as f:
                    pickle.dump(tickets[-1], f)
        # Connection set-up and every response, without interpreter start-up.
        print(f"ELAPSED {time.monotonic() - start:.4f}", flush=True)
        failed = 0
        for p, b in zip(paths, bodies):
            if isinstance(b, BaseException):
                print(f"error: {p}: {b}", file=sys.stderr)
                failed += 1
                continue
            name = p.rsplit("/", 1)[-1] or "index.html"
            with open(os.path.join(args.output, name), "wb") as f:
                f.write(b)
        client.close()
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--output", required=True)
    p.add_argument("--ca")
    p.add_argument("--server-name")
    p.add_argument("--chacha", action="store_true", help="offer only TLS_CHACHA20_POLY1305_SHA256")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--migrate", action="store_true", help="move to a new local port after the first URL")
    p.add_argument("--session-file", help="resume the session stored here; store the newest ticket here")
    p.add_argument("--zero-rtt", action="store_true", help="with --session-file: requests in 0-RTT")
    p.add_argument("urls", nargs="+")
    args = p.parse_args()
    try:
        rc = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print(f"error: timed out after {args.timeout} s", file=sys.stderr)
        rc = 3
    except Exception as e:  # noqa: BLE001 - report any failure as an exit status
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
