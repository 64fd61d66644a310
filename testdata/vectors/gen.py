#!/usr/bin/env python3
"""Generates frames.json and roap.json, the test vectors that the Go
(filexfer, roap) and JavaScript (webclient/src/transfer) codecs must both
pass. This third, independent encoder is the reference; run it after
changing the wire format: python3 testdata/vectors/gen.py"""
import hashlib, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def field(b): return struct.pack(">H", len(b)) + b

def describe(fid, name, size, mime, sha, cs, extra=b""):
    return bytes([0x10]) + field(fid) + field(name.encode()) + field(struct.pack(">Q", size)) + \
        field(mime.encode()) + field(sha) + field(struct.pack(">I", cs)) + extra

def request(fid, ranges):
    return bytes([0x20]) + field(fid) + field(b"".join(struct.pack(">II", a, n) for a, n in ranges))

def chunk(fid, cid, data): return bytes([0x40]) + field(fid) + field(struct.pack(">I", cid)) + field(data)
def cancel(fid, reason=None): return bytes([0x80]) + field(fid) + (field(bytes([reason])) if reason is not None else b"")
def complete(fid): return bytes([0x11]) + field(fid)
def digest(fid, sha): return bytes([0x12]) + field(fid) + field(sha)

sha_hello = hashlib.sha256(b"hello world\n").digest()
fid = b"f-0123456789abcdef"
valid = []
def v(name, raw, frame): valid.append({"name": name, "hex": raw.hex(), "frame": frame})

v("describe", describe(fid, "hello.txt", 12, "text/plain", sha_hello, 16384),
  {"type": 0x10, "fileID": fid.decode(), "name": "hello.txt", "size": 12, "mime": "text/plain",
   "sha256": sha_hello.hex(), "chunkSize": 16384})
v("describe utf-8 name, empty mime, empty file", describe(b"x", "报告 ✓.pdf", 0, "", hashlib.sha256(b"").digest(), 1),
  {"type": 0x10, "fileID": "x", "name": "报告 ✓.pdf", "size": 0, "mime": "", "sha256": hashlib.sha256(b"").hexdigest(), "chunkSize": 1})
v("describe largest size (2^53-1)", describe(fid, "big.bin", 2**53 - 1, "application/octet-stream", b"\xab" * 32, 65460),
  {"type": 0x10, "fileID": fid.decode(), "name": "big.bin", "size": 2**53 - 1, "mime": "application/octet-stream", "sha256": "ab" * 32, "chunkSize": 65460})
v("describe with a trailing extension field (ignored)", describe(b"x", "a", 1, "b", b"\x00" * 32, 16384, field(b"future")),
  {"type": 0x10, "fileID": "x", "name": "a", "size": 1, "mime": "b", "sha256": "00" * 32, "chunkSize": 16384, "reencodeDiffers": True})
v("request one range", request(fid, [(0, 64)]), {"type": 0x20, "fileID": fid.decode(), "ranges": [[0, 64]]})
v("request several ranges", request(fid, [(3, 1), (10, 5), (4294967295, 1)]),
  {"type": 0x20, "fileID": fid.decode(), "ranges": [[3, 1], [10, 5], [4294967295, 1]]})
v("chunk", chunk(fid, 7, b"hello world\n"), {"type": 0x40, "fileID": fid.decode(), "chunkID": 7, "data": b"hello world\n".hex()})
v("chunk empty data", chunk(b"x", 0, b""), {"type": 0x40, "fileID": "x", "chunkID": 0, "data": ""})
big = bytes((i * 7) & 0xff for i in range(65535 - 11 - 64))
v("chunk of the largest frame (65535 bytes)", chunk(b"F" * 64, 4294967295, big),
  {"type": 0x40, "fileID": "F" * 64, "chunkID": 4294967295, "data": big.hex()})
v("cancel", cancel(fid), {"type": 0x80, "fileID": fid.decode()})
v("cancel, reason declined (extension)", cancel(fid, 1), {"type": 0x80, "fileID": fid.decode(), "reason": 1})
v("cancel, reason 0 written out", cancel(fid, 0), {"type": 0x80, "fileID": fid.decode(), "reencodeDiffers": True})
v("cancel, unknown reason 200", cancel(fid, 200), {"type": 0x80, "fileID": fid.decode(), "reason": 200})
v("complete (extension 0x11)", complete(fid), {"type": 0x11, "fileID": fid.decode()})
v("describe, sha256 all zero: digest follows", describe(fid, "hello.txt", 12, "text/plain", b"\0" * 32, 16384),
  {"type": 0x10, "fileID": fid.decode(), "name": "hello.txt", "size": 12, "mime": "text/plain",
   "sha256": "00" * 32, "chunkSize": 16384})
v("digest (extension 0x12)", digest(fid, sha_hello), {"type": 0x12, "fileID": fid.decode(), "sha256": sha_hello.hex()})
v("digest with a trailing extension field (ignored)", digest(b"x", b"\xab" * 32) + field(b"future"),
  {"type": 0x12, "fileID": "x", "sha256": "ab" * 32, "reencodeDiffers": True})

invalid = []
def bad(name, raw, err): invalid.append({"name": name, "hex": raw.hex(), "error": err})
bad("empty", b"", "empty")
bad("unknown type 0x00", bytes([0x00]) + field(fid), "unknown_type")
bad("unknown type 0x30", bytes([0x30]) + field(fid), "unknown_type")
bad("type byte only", bytes([0x80]), "truncated")
bad("dangling length byte", cancel(fid) + b"\x00", "truncated")
bad("field longer than frame", bytes([0x80, 0x00, 0x05]) + b"abc", "truncated")
bad("chunk missing data field", bytes([0x40]) + field(fid) + field(struct.pack(">I", 1)), "truncated")
bad("describe missing chunkSize", describe(fid, "a", 1, "b", b"\0" * 32, 1)[:-6], "truncated")
bad("empty fileID", cancel(b""), "invalid_field")
bad("cancel reason of 2 bytes", bytes([0x80]) + field(fid) + field(b"\x01\x00"), "invalid_field")
bad("fileID of 65 bytes", cancel(b"a" * 65), "invalid_field")
bad("describe size field of 4 bytes", bytes([0x10]) + field(fid) + field(b"a") + field(b"\0\0\0\1") + field(b"") + field(b"\0" * 32) + field(struct.pack(">I", 1)), "invalid_field")
bad("describe size 2^53", describe(fid, "a", 2**53, "b", b"\0" * 32, 1), "invalid_field")
bad("describe sha256 of 31 bytes", bytes([0x10]) + field(fid) + field(b"a") + field(struct.pack(">Q", 1)) + field(b"") + field(b"\0" * 31) + field(struct.pack(">I", 1)), "invalid_field")
bad("describe chunkSize 0", describe(fid, "a", 1, "b", b"\0" * 32, 0), "invalid_field")
bad("describe chunkSize too large", describe(fid, "a", 1, "b", b"\0" * 32, 65461), "invalid_field")
bad("describe name not UTF-8", bytes([0x10]) + field(fid) + field(b"\xff\xfe") + field(struct.pack(">Q", 1)) + field(b"") + field(b"\0" * 32) + field(struct.pack(">I", 1)), "invalid_field")
bad("fileID not UTF-8", cancel(b"\xc3\x28"), "invalid_field")
bad("describe name of 1025 bytes", describe(fid, "n" * 1025, 1, "b", b"\0" * 32, 1), "invalid_field")
bad("request no ranges", bytes([0x20]) + field(fid) + field(b""), "invalid_field")
bad("request ranges not a multiple of 8", bytes([0x20]) + field(fid) + field(b"\0" * 12), "invalid_field")
bad("request zero count", request(fid, [(5, 0)]), "invalid_field")
bad("request range past 2^32", request(fid, [(4294967295, 2)]), "invalid_field")
bad("chunkID of 2 bytes", bytes([0x40]) + field(fid) + field(b"\0\1") + field(b"x"), "invalid_field")
bad("digest missing sha256", bytes([0x12]) + field(fid), "truncated")
bad("digest sha256 of 31 bytes", digest(fid, b"\0" * 31), "invalid_field")
bad("digest sha256 of 33 bytes", digest(fid, b"\0" * 33), "invalid_field")
bad("digest empty fileID", digest(b"", sha_hello), "invalid_field")
bad("frame of 65536 bytes", chunk(b"F" * 64, 0, b"\0" * (65536 - 11 - 64)), "too_big")

with open(os.path.join(HERE, "frames.json"), "w") as f:
    json.dump({"comment": "Generated by gen.py. hex = wire bytes; frame = decoded fields (sha256/data as hex, ranges as [first,count]). Invalid frames name the error code both decoders must give.",
               "valid": valid, "invalid": invalid}, f, indent=1, ensure_ascii=False)
    f.write("\n")

SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n"
CAND = "candidate:1966762134 1 udp 2122260223 192.0.2.2 54321 typ host generation 0"
rv, ri = [], []
def ok(name, msg, js=None):
    rv.append({"name": name, "json": js if js is not None else json.dumps(msg, ensure_ascii=False, separators=(",", ":")), "message": msg})
def no(name, js, err):
    ri.append({"name": name, "json": js if isinstance(js, str) else json.dumps(js, separators=(",", ":")), "error": err})
base = {"from": "alice", "to": "bob", "sessionID": "s-1"}
def M(t, **kw): return dict({"type": t}, **base, **kw)
ok("offer", M("OFFER", sdp=SDP))
ok("answer", M("ANSWER", sdp=SDP))
ok("ok", M("OK"))
ok("candidate full", M("CANDIDATE", candidate={"candidate": CAND, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}))
ok("candidate mid only", M("CANDIDATE", candidate={"candidate": CAND, "sdpMid": "0"}))
ok("candidate end-of-candidates", M("CANDIDATE", candidate={"candidate": ""}))
ok("candidate with nulls (browser toJSON)", M("CANDIDATE", candidate={"candidate": CAND, "sdpMid": None, "sdpMLineIndex": 0, "usernameFragment": None}))
ok("shutdown", M("SHUTDOWN"))
ok("error offline (from the server)", {"type": "ERROR", "errorType": "OFFLINE", "from": "bob", "to": "alice", "sessionID": "s-1"})
ok("error with an unlisted errorType", M("ERROR", errorType="QUOTA_2"))
ok("whitespace around the object", M("OK"), js=' \n{"type":"OK","from":"alice","to":"bob","sessionID":"s-1"}\n ')
ok("sdpMLineIndex written as 1e0 (an integer value)", M("CANDIDATE", candidate={"candidate": CAND, "sdpMLineIndex": 1}),
   js='{"type":"CANDIDATE","from":"alice","to":"bob","sessionID":"s-1","candidate":{"candidate":"%s","sdpMLineIndex":1e0}}' % CAND)
ok("user ids with dots and dashes", {"type": "OK", "from": "a.b-c_d", "to": "0bob", "sessionID": "A.b:c_d-9"})

no("not json", "OFFER", "malformed")
no("json array", "[1]", "malformed")
no("json string", '"x"', "malformed")
no("truncated json", '{"type":"OK"', "malformed")
no("trailing garbage", '{"type":"OK","from":"alice","to":"bob","sessionID":"s-1"}x', "malformed")
no("unknown field", dict(M("OK"), extra=1), "unknown_field")
no("field names are case-sensitive", {"type": "OFFER", "from": "alice", "to": "bob", "sessionID": "s-1", "SDP": SDP}, "unknown_field")
no("unknown candidate field", M("CANDIDATE", candidate={"candidate": CAND, "sdpMid": "0", "foo": 1}), "unknown_field")
no("missing type", base, "missing_field")
no("unknown type", M("PING"), "unknown_type")
no("lower-case type", M("offer", sdp=SDP), "unknown_type")
no("missing from", {"type": "OK", "to": "bob", "sessionID": "s-1"}, "missing_field")
no("missing to", {"type": "OK", "from": "alice", "sessionID": "s-1"}, "missing_field")
no("missing sessionID", {"type": "OK", "from": "alice", "to": "bob"}, "missing_field")
no("offer without sdp", M("OFFER"), "missing_field")
no("offer with empty sdp", M("OFFER", sdp=""), "missing_field")
no("candidate without candidate", M("CANDIDATE"), "missing_field")
no("candidate without mid or index", M("CANDIDATE", candidate={"candidate": CAND}), "missing_field")
no("error without errorType", M("ERROR"), "missing_field")
no("type not a string", dict(base, type=1), "invalid_field")
no("sdp null on OK", dict(M("OK"), sdp=None), "invalid_field")
no("candidate null", dict(M("CANDIDATE"), candidate=None), "invalid_field")
no("from not a string", {"type": "OK", "from": None, "to": "bob", "sessionID": "s-1"}, "invalid_field")
no("upper-case user id", {"type": "OK", "from": "Alice", "to": "bob", "sessionID": "s-1"}, "invalid_field")
no("from equals to", {"type": "OK", "from": "bob", "to": "bob", "sessionID": "s-1"}, "invalid_field")
no("sessionID with a slash", {"type": "OK", "from": "alice", "to": "bob", "sessionID": "a/b"}, "invalid_field")
no("sessionID of 65 chars", {"type": "OK", "from": "alice", "to": "bob", "sessionID": "s" * 65}, "invalid_field")
no("sdp not starting v=0", M("OFFER", sdp="hello"), "invalid_field")
no("sdpMLineIndex negative", M("CANDIDATE", candidate={"candidate": CAND, "sdpMLineIndex": -1}), "invalid_field")
no("sdpMLineIndex too big", M("CANDIDATE", candidate={"candidate": CAND, "sdpMLineIndex": 65536}), "invalid_field")
no("sdpMLineIndex fractional", M("CANDIDATE", candidate={"candidate": CAND, "sdpMLineIndex": 0.5}), "invalid_field")
no("leading non-JSON whitespace", "\u00a0" + json.dumps(M("OK")), "malformed")
no("sdpMLineIndex a string", M("CANDIDATE", candidate={"candidate": CAND, "sdpMLineIndex": "0"}), "invalid_field")
no("candidate not an object", M("CANDIDATE", candidate=CAND), "invalid_field")
no("errorType lower-case", M("ERROR", errorType="offline"), "invalid_field")
no("sdp on OK", M("OK", sdp=SDP), "unexpected_field")
no("empty sdp on OK", M("OK", sdp=""), "unexpected_field")
no("candidate on OFFER", M("OFFER", sdp=SDP, candidate={"candidate": ""}), "unexpected_field")
no("errorType on SHUTDOWN", M("SHUTDOWN", errorType="TIMEOUT"), "unexpected_field")
no("too large", json.dumps(M("OFFER", sdp="v=0\r\n" + "a" * 70000)), "too_large")

with open(os.path.join(HERE, "roap.json"), "w") as f:
    json.dump({"comment": "Generated by gen.py. valid: json decodes to message (then re-encodes to an equivalent object). invalid: json must be refused with error (a stable code).",
               "valid": rv, "invalid": ri}, f, indent=1, ensure_ascii=False)
    f.write("\n")
