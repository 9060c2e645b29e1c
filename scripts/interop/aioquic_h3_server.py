#!/usr/bin/env python3
"""aioquic HTTP/3 server for tarte's interop tests.

Paths: /bytes/N (N bytes, byte i = i % 251), /trailers (body + trailers),
POST anything (answers x-received-sha256/-length, echoes request trailers
as x-request-trailer-NAME). --goaway-after N sends GOAWAY (raw frame on
the control stream) after N responses. Prints "ready PORT" once listening
and one JSON "stats" line per response (QPACK stream byte counts; the
encoder-stream bytes received show the peer used our decoder's dynamic
table) and per GOAWAY received.
"""
import argparse
import asyncio
import hashlib
import json
import sys

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, ProtocolNegotiated, QuicEvent


def pattern(n):
    block = bytes(i % 251 for i in range(251)) * 64
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def emit(obj):
    print(json.dumps(obj), flush=True)


class Handler(QuicConnectionProtocol):
    goaway_after = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.h3 = None
        self.reqs = {}
        self.served = 0
        self.goaway_sent = False

    def stats(self, extra):
        h = self.h3
        d = {
            "stats": True,
            "encoder_bytes_received": h._encoder_bytes_received,
            "decoder_bytes_received": h._decoder_bytes_received,
            "encoder_bytes_sent": h._encoder_bytes_sent,
            "decoder_bytes_sent": h._decoder_bytes_sent,
        }
        d.update(extra)
        emit(d)

    def install(self):
        self.h3 = H3Connection(self._quic)
        # aioquic parses GOAWAY's type and discards its payload: spy on the
        # frame headers its control-stream parser checks.
        orig = self.h3._check_control_frame_type

        def spy(frame_type):
            if frame_type == FrameType.GOAWAY:
                emit({"goaway_received": True})
            return orig(frame_type)

        self.h3._check_control_frame_type = spy

    def quic_event_received(self, event: QuicEvent):
        if isinstance(event, ProtocolNegotiated):
            self.install()
        if isinstance(event, HandshakeCompleted):
            emit({"handshake": True, "resumed": event.session_resumed, "early_data": event.early_data_accepted})
        if self.h3 is None:
            return
        for ev in self.h3.handle_event(event):
            sid = ev.stream_id
            if isinstance(ev, HeadersReceived):
                r = self.reqs.get(sid)
                if r is None:
                    self.reqs[sid] = {"headers": dict(ev.headers), "body": hashlib.sha256(), "len": 0, "trailers": []}
                else:
                    r["trailers"] = ev.headers
                if ev.stream_ended:
                    self.respond(sid)
            elif isinstance(ev, DataReceived):
                r = self.reqs.get(sid)
                if r is not None:
                    r["body"].update(ev.data)
                    r["len"] += len(ev.data)
                if ev.stream_ended:
                    self.respond(sid)

    def respond(self, sid):
        r = self.reqs.pop(sid)
        h = r["headers"]
        method = h.get(b":method", b"")
        path = h.get(b":path", b"/").decode()
        trailers = None
        extra = []
        if method in (b"POST", b"PUT"):
            body = b"ok\n"
            extra = [(b"x-received-sha256", r["body"].hexdigest().encode()), (b"x-received-length", str(r["len"]).encode())]
            for n, v in r["trailers"]:
                extra.append((b"x-request-trailer-" + n, v))
            status = 200
        elif path.startswith("/bytes/"):
            body = pattern(int(path[7:]))
            status = 200
        elif path == "/trailers":
            body = b"a body followed by trailers\n"
            trailers = [(b"x-body-sha256", hashlib.sha256(body).hexdigest().encode()), (b"x-trailer", b"yes")]
            status = 200
        else:
            body = b"hello from aioquic " + path.encode() + b"\n"
            status = 200
        headers = [(b":status", str(status).encode()), (b"server", b"aioquic"), (b"x-echo-path", path.encode()), (b"content-length", str(len(body)).encode())] + extra
        self.h3.send_headers(sid, headers)
        self.h3.send_data(sid, body, end_stream=trailers is None)
        if trailers is not None:
            self.h3.send_headers(sid, trailers, end_stream=True)
        self.served += 1
        if self.goaway_after and self.served >= self.goaway_after and not self.goaway_sent:
            self.goaway_sent = True
            frame = encode_frame(FrameType.GOAWAY, encode_uint_var(sid + 4))
            self._quic.send_stream_data(self.h3._local_control_stream_id, frame)
            emit({"goaway_sent": sid + 4})
        self.transmit()
        self.stats({"path": path, "method": method.decode()})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--goaway-after", type=int, default=0)
    a = ap.parse_args()
    cfg = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    cfg.load_cert_chain(a.cert, a.key)
    Handler.goaway_after = a.goaway_after
    # Session tickets for resumption and 0-RTT, each usable once.
    tickets = {}
    await serve(
        "127.0.0.1",
        a.port,
        configuration=cfg,
        create_protocol=Handler,
        session_ticket_fetcher=lambda t: tickets.pop(t, None),
        session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t),
    )
    print(f"ready {a.port}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
