# A minimal D-Bus client for homed_bad_input.rs: one connection, up to IN_FLIGHT pipelined
# AuthenticateHome calls, printing how many calls got each reply; or one CreateHome call with
# a record too large for a command line; or a service that owns a name and never answers.
import os, socket, struct, sys

def pad(buf, n):
    return buf + b"\0" * ((-len(buf)) % n)

def string(buf, s, code="s"):
    b = s.encode()
    if code == "g":
        return buf + bytes([len(b)]) + b + b"\0"
    buf = pad(buf, 4)
    return buf + struct.pack("<I", len(b)) + b + b"\0"

def message(serial, path, iface, member, dest, sig, args):
    body = b""
    for a in args:
        if isinstance(a, int):
            body = pad(body, 4) + struct.pack("<I", a)
        else:
            body = string(body, a)
    fields = b""
    for code, typ, val in [(1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest)] + ([(8, "g", sig)] if sig else []):
        fields = pad(fields, 8)
        fields += bytes([code])
        fields = string(fields, typ, "g")
        fields = string(fields, val, typ)
    head = b"l" + bytes([1, 0, 1]) + struct.pack("<III", len(body), serial, len(fields))
    return pad(head + fields, 8) + body

class Conn:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect("/run/dbus/system_bus_socket")
        self.s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            line += self.s.recv(1)
        assert line.startswith(b"OK"), line
        self.s.sendall(b"BEGIN\r\n")
        self.buf = b""
        self.serial = 1
        self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "org.freedesktop.DBus", "", [])
        self.read()

    def call(self, path, iface, member, dest, sig, args):
        self.serial += 1
        self.s.sendall(message(self.serial, path, iface, member, dest, sig, args))

    def read(self):
        while True:
            if len(self.buf) >= 16:
                body_len, serial, flen = struct.unpack("<III", self.buf[4:16])
                hlen = 16 + flen + ((-(16 + flen)) % 8)
                total = hlen + body_len
                if len(self.buf) >= total:
                    msg, self.buf = self.buf[:total], self.buf[total:]
                    mtype = msg[1]
                    if mtype == 4:  # signal
                        continue
                    name = ""
                    i = 16
                    while i < 16 + flen:
                        i += (-i) % 8
                        code = msg[i]; slen = msg[i + 1]; typ = msg[i + 2:i + 2 + slen].decode(); i += 3 + slen
                        if typ in ("s", "o"):
                            i += (-i) % 4
                            (n,) = struct.unpack("<I", msg[i:i + 4]); val = msg[i + 4:i + 4 + n].decode(); i += 5 + n
                            if code == 4:
                                name = val
                        elif typ == "g":
                            n = msg[i]; i += 2 + n
                        elif typ == "u":
                            i += (-i) % 4; i += 4
                    return "ok" if mtype == 2 else name
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

if sys.argv[1] == "own":
    # own NAME: takes NAME on the bus and then answers no call at all (a wedged service).
    import time
    c = Conn()
    c.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "org.freedesktop.DBus", "su", [sys.argv[2], 4])
    print("OWNED", c.read(), flush=True)
    time.sleep(300)
    sys.exit(0)

if sys.argv[1] == "create":
    # create FILE: one CreateHome call with the record in FILE.
    c = Conn()
    c.call("/org/freedesktop/home1", "org.freedesktop.home1.Manager", "CreateHome", "org.freedesktop.home1", "s", [open(sys.argv[2]).read()])
    print("REPLY", c.read())
    sys.exit(0)

# auth USER PASSWORD TOTAL IN_FLIGHT
user, password, total, in_flight = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = Conn()
sent = done = 0
results = {}
secret = '{"password":["%s"]}' % password
while done < total:
    while sent < total and sent - done < in_flight:
        c.call("/org/freedesktop/home1", "org.freedesktop.home1.Manager", "AuthenticateHome", "org.freedesktop.home1", "ss", [user, secret])
        sent += 1
    r = c.read()
    results[r] = results.get(r, 0) + 1
    done += 1
for k, v in sorted(results.items()):
    print("RESULT %s %d" % (k, v))
