#!/usr/bin/env python3
"""Capturing SMTP server used as sluis's next hop in the integration tests.

Usage: capture_smtp.py OUTDIR [--port N] [--tls CERT KEY] [--auth USER:PASS]
                         [--auth-without-tls]

Listens on 127.0.0.1 on an ephemeral port (or --port N) and prints `PORT <n>` (flushed) once it
accepts connections. Every accepted message is written to OUTDIR as `<n>.eml`
(the exact bytes received after dot-unstuffing) plus `<n>.json` with the envelope
(mail_from, which is "" for MAIL FROM:<>, rcpt_tos, mail_options, rcpt_options,
helo, peer, tls: whether the session was encrypted with STARTTLS, auth_user: the
user name the client authenticated as, or null). Both files are written under a temporary name and renamed, the JSON
last, so a reader that sees a `.json` file also sees the complete `.eml` file.

Recipients whose local part starts with `reject` get `550 5.1.1` at RCPT, those
starting with `defer` get `451 4.3.0`. While a file named `DEFER_ALL` exists in
OUTDIR every recipient gets `451 4.3.0`; while `REJECT_ALL` exists every recipient
gets `550 5.1.1`. Every RCPT outcome is appended to OUTDIR/rcpt.log as `CODE ADDRESS`.

--tls CERT KEY: offer STARTTLS with that certificate and refuse MAIL before it (530).
--auth USER:PASS: offer AUTH (PLAIN, LOGIN) and require it before MAIL (530); by default
AUTH is only offered and accepted once TLS is active, --auth-without-tls also offers it
in the clear. Every AUTH command the client sends (whatever the server's configuration,
even when AUTH is not offered) is appended to OUTDIR/auth.log as `AUTH tls=0|1 ARGS`,
and each credential check as `OK USER` or `FAIL USER`.
"""

import argparse
import asyncio
import itertools
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def append(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


class LoggingSMTP(SMTP):
    """Records every AUTH command line as it arrives, before aiosmtpd decides anything."""

    def __init__(self, handler, **kw):
        super().__init__(handler, **kw)
        self._auth_log = os.path.join(handler.outdir, "auth.log")

    def _cb_client_connected(self, reader, writer):
        super()._cb_client_connected(reader, writer)
        readuntil = reader.readuntil

        # aiosmtpd reads command lines with readuntil() and DATA lines with
        # readuntil(b"\r\n"): only the former are logged.
        async def spy(separator=b"\n"):
            line = await readuntil(separator)
            if separator == b"\n" and line[:5].upper() in (b"AUTH ", b"AUTH\r"):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                tls = 1 if self._tls_protocol else 0
                append(self._auth_log, "AUTH tls=%d %s" % (tls, text[5:]))
            return line

        reader.readuntil = spy


class Capture:
    def __init__(self, outdir):
        self.outdir = outdir
        self.counter = itertools.count(1)

    def _flag(self, name):
        return os.path.exists(os.path.join(self.outdir, name))

    def _log(self, code, address):
        with open(os.path.join(self.outdir, "rcpt.log"), "a") as f:
            f.write("%s %s\n" % (code, address))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0].lower()
        if self._flag("REJECT_ALL") or local.startswith("reject"):
            self._log(550, address)
            return "550 5.1.1 <%s>: recipient rejected by capture server" % address
        if self._flag("DEFER_ALL") or local.startswith("defer"):
            self._log(451, address)
            return "451 4.3.0 <%s>: try again later" % address
        self._log(250, address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        base = "%06d-%d" % (n, os.getpid())
        meta = {
            # aiosmtpd reports the null reverse-path as "<>": store it as ""
            "mail_from": "" if envelope.mail_from in (None, "<>") else envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "helo": session.host_name,
            "peer": session.peer[0] if session.peer else None,
            "tls": session.ssl is not None,
            "auth_user": session.auth_data if session.authenticated else None,
        }
        eml = os.path.join(self.outdir, base + ".eml")
        with open(eml + ".tmp", "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(eml + ".tmp", eml)
        js = os.path.join(self.outdir, base + ".json")
        with open(js + ".tmp", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(js + ".tmp", js)
        return "250 2.0.0 OK captured %s" % base


def authenticator_for(outdir, user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == user and auth_data.password.decode("utf-8", "replace") == password
        append(os.path.join(outdir, "auth.log"), "%s %s" % ("OK" if ok else "FAIL", login))
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    return authenticator


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", metavar="USER:PASS")
    ap.add_argument("--auth-without-tls", action="store_true")
    args = ap.parse_args()
    outdir = args.outdir
    os.makedirs(outdir, exist_ok=True)
    handler = Capture(outdir)
    loop = asyncio.get_running_loop()
    opts = {}
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        opts.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)
        opts.update(
            authenticator=authenticator_for(outdir, user, password),
            auth_required=True,
            auth_require_tls=not args.auth_without_tls,
        )

    def factory():
        return LoggingSMTP(
            handler,
            data_size_limit=None,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="capture.test",
            command_call_limit=None,
            **opts,
        )

    server = await loop.create_server(
        factory, host="127.0.0.1", port=args.port, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
