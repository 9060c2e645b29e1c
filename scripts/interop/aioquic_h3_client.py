#!/usr/bin/env python3
"""aioquic HTTP/3 client for tarte's interop tests.

Sends every --path concurrently on one connection (or --count copies of
one path), optionally with a --body-size byte body (byte i = i % 251) and
--trailer NAME=VALUE, optionally sends GOAWAY (--goaway) when done. Prints
one JSON line per response (status, headers, body length and SHA-256,
trailers) and a final "stats" line (QPACK stream byte counts; encoder
bytes received > 1 means the peer's encoder used our dynamic table; the number of
GOAWAY frames received).

--migrate: the first --path is fetched alone; once --migrate-after body
bytes have arrived (default 0: when it completes) the client migrates
(RFC 9000 §9.2): it switches to an unused connection ID of the server's
and moves to a new local UDP port, then fetches the other paths on the
same connection. A "migration" line gives the old and new local ports
and destination connection IDs and how many unused IDs the server had
issued; with none the client fails.
"""
import argparse
import asyncio
import hashlib
import json
import os
import pickle
import socket
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamReset


def pattern(n):
    block = bytes(i % 251 for i in range(251)) * 64
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.h3 = H3Connection(self._quic)
        self.waiters = {}
        self.resp = {}
        self.goaways = []
        # aioquic parses GOAWAY's type and discards its payload, so count the
        # frame headers its control-stream parser checks.
        orig = self.h3._check_control_frame_type

        def spy(frame_type):
            if frame_type == FrameType.GOAWAY:
                self.goaways.append(frame_type)
            return orig(frame_type)

        self.h3._check_control_frame_type = spy
        # Migration: the body bytes that trigger it, the task doing it,
        # and a hold on transmit while the socket is swapped.
        self.migrate_at = None
        self.received = 0
        self.migration = None
        self.hold = False

    def transmit(self):
        # No packet may leave while the connection ID and socket change:
        # RFC 9000 §9.5 forbids one connection ID on two local addresses.
        if not self.hold:
            super().transmit()

    async def migrate(self):
        q = self._quic
        spare = len(q._peer_cid_available)
        if spare == 0:
            raise RuntimeError("the server issued no spare connection ID: cannot migrate")
        old_port = self._transport.get_extra_info("sockname")[1]
        old_dcid = q._peer_cid.cid.hex()
        # A dual-stack socket like aioquic.asyncio.connect's (the peer
        # address is IPv4-mapped).
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0, 0, 0))
        at = self.received
        self.hold = True
        try:
            q.change_connection_id()
            self._transport.close()
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=sock)
        finally:
            self.hold = False
        self.transmit()
        return {"migration": True, "old_port": old_port, "new_port": self._transport.get_extra_info("sockname")[1], "old_dcid": old_dcid, "new_dcid": q._peer_cid.cid.hex(), "spare_dcids": spare, "at_bytes": at}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset) and event.stream_id in self.waiters:
            self.resp[event.stream_id]["reset"] = event.error_code
            self.waiters.pop(event.stream_id).set_result(None)
            return
        for ev in self.h3.handle_event(event):
            r = self.resp.get(ev.stream_id)
            if r is None:
                continue
            if isinstance(ev, HeadersReceived):
                if r["headers"] is None:
                    r["headers"] = [(n.decode(), v.decode()) for n, v in ev.headers]
                else:
                    r["trailers"] = [(n.decode(), v.decode()) for n, v in ev.headers]
            elif isinstance(ev, DataReceived):
                r["sha"].update(ev.data)
                r["len"] += len(ev.data)
                self.received += len(ev.data)
                if self.migrate_at is not None and self.migration is None and self.received >= self.migrate_at:
                    self.migration = asyncio.ensure_future(self.migrate())
            if getattr(ev, "stream_ended", False):
                w = self.waiters.pop(ev.stream_id, None)
                if w:
                    w.set_result(None)

    async def request(self, method, authority, path, body, trailers):
        sid = self._quic.get_next_available_stream_id()
        fut = asyncio.get_running_loop().create_future()
        self.waiters[sid] = fut
        self.resp[sid] = {"path": path, "headers": None, "trailers": [], "sha": hashlib.sha256(), "len": 0, "stream_id": sid}
        has_body = body is not None or trailers
        self.h3.send_headers(sid, [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path.encode()), (b"user-agent", b"aioquic-interop"), (b"x-custom-field", b"the same value on every request")], end_stream=not has_body)
        if body is not None:
            self.h3.send_data(sid, body, end_stream=not trailers)
        if trailers:
            self.h3.send_headers(sid, [(n.encode(), v.encode()) for n, v in trailers], end_stream=True)
        self.transmit()
        await fut
        r = self.resp.pop(sid)
        r["sha256"] = r.pop("sha").hexdigest()
        return r


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--method", default="GET")
    ap.add_argument("--body-size", type=int, default=-1)
    ap.add_argument("--trailer", action="append", default=[])
    ap.add_argument("--goaway", action="store_true")
    ap.add_argument("--migrate", action="store_true")
    ap.add_argument("--migrate-after", type=int, default=0)
    ap.add_argument("--session-file", help="resume the ticket stored here; store the newest one here")
    ap.add_argument("--zero-rtt", action="store_true", help="with --session-file: requests in 0-RTT")
    ap.add_argument("--secrets-log", help="append the TLS secrets here (NSS key log format)")
    a = ap.parse_args()
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=False, max_stream_data=20_000_000, max_data=100_000_000)
    import ssl
    cfg.verify_mode = ssl.CERT_NONE
    if a.secrets_log:
        cfg.secrets_log_file = open(a.secrets_log, "a")
    body = pattern(a.body_size) if a.body_size >= 0 else None
    trailers = [tuple(t.split("=", 1)) for t in a.trailer]
    paths = [p for p in a.path for _ in range(a.count)]
    tickets = []
    if a.session_file and os.path.exists(a.session_file):
        with open(a.session_file, "rb") as f:
            cfg.session_ticket = pickle.load(f)
    async with connect(
        "127.0.0.1",
        a.port,
        configuration=cfg,
        create_protocol=Client,
        session_ticket_handler=tickets.append,
        # Not waiting for the handshake lets the requests go in 0-RTT.
        wait_connected=not a.zero_rtt,
    ) as c:
        # Wait for the peer's SETTINGS so that our encoder may use its
        # dynamic table from the first request (not in 0-RTT: the requests
        # go at once, with the static table).
        for _ in range(0 if a.zero_rtt else 500):
            if c.h3._settings_received:
                break
            await asyncio.sleep(0.01)
        get = lambda p: c.request(a.method, f"127.0.0.1:{a.port}", p, body, trailers)
        migration = None
        if a.migrate:
            if a.migrate_after > 0:
                c.migrate_at = a.migrate_after
            rs = [await get(paths[0])]
            if c.migration is None:
                c.migration = asyncio.ensure_future(c.migrate())
            migration = await c.migration
            rs += await asyncio.gather(*(get(p) for p in paths[1:]))
        else:
            rs = await asyncio.gather(*(get(p) for p in paths))
        for r in rs:
            print(json.dumps(r), flush=True)
        if migration is not None:
            print(json.dumps(migration), flush=True)
        if a.goaway:
            frame = encode_frame(FrameType.GOAWAY, encode_uint_var(0))
            c._quic.send_stream_data(c.h3._local_control_stream_id, frame)
            c.transmit()
        # Let late control-stream frames (a GOAWAY) arrive.
        await asyncio.sleep(0.3)
        h = c.h3
        if migration is not None:
            # connect() closes the first transport only.
            c.close()
            await c.wait_closed()
            c._transport.close()
        if a.session_file and tickets:
            with open(a.session_file, "wb") as f:
                pickle.dump(tickets[-1], f)
        print(json.dumps({"stats": True, "resumed": c._quic.tls.session_resumed, "early_data": c._quic.tls.early_data_accepted, "encoder_bytes_received": h._encoder_bytes_received, "decoder_bytes_received": h._decoder_bytes_received, "encoder_bytes_sent": h._encoder_bytes_sent, "decoder_bytes_sent": h._decoder_bytes_sent, "goaways": c.goaways}), flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), timeout=60))
