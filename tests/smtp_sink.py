"""A local SMTP sink for tests/notify.rs: aiosmtpd's Controller on 127.0.0.1, on a port the
system gives out. Prints "smtp listening on 127.0.0.1:PORT" once it accepts connections, writes
each message it receives to DIR (as NNNN.eml, renamed into place once written, with the
envelope and the login it came with in X-Sink-* lines before the message), and runs until its
standard input closes.

usage: smtp_sink.py DIR [USER:PASSWORD [CERT KEY]]
  USER:PASSWORD: AUTH PLAIN/LOGIN is offered and only that login is accepted;
  CERT KEY: STARTTLS is offered with that certificate and required before AUTH and MAIL.
Each message says in X-Sink-TLS whether it came over TLS.
"""

import itertools
import os
import ssl
import sys

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:
    sys.exit("smtp_sink.py needs aiosmtpd: python3 -m pip install aiosmtpd")


class Save:
    def __init__(self, directory):
        self.directory = directory
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        number = next(self.numbers)
        login = session.auth_data.login.decode() if session.authenticated else ""
        head = (
            f"X-Sink-From: {envelope.mail_from}\r\n"
            f"X-Sink-To: {','.join(envelope.rcpt_tos)}\r\n"
            f"X-Sink-Login: {login}\r\n"
            f"X-Sink-TLS: {'yes' if session.ssl is not None else 'no'}\r\n"
        ).encode()
        partial = os.path.join(self.directory, f".{number:04}.partial")
        with open(partial, "wb") as out:
            out.write(head + envelope.original_content)
        os.rename(partial, os.path.join(self.directory, f"{number:04}.eml"))
        return "250 OK"


class Login:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == self.user and auth_data.password == self.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class AnyPort(Controller):
    """A Controller bound to port 0: it learns its port before its first self-test."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main():
    directory = sys.argv[1]
    options = {}
    if len(sys.argv) > 2:
        user, password = sys.argv[2].split(":", 1)
        options = dict(authenticator=Login(user, password), auth_require_tls=False)
    if len(sys.argv) > 4:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
    controller = AnyPort(Save(directory), hostname="127.0.0.1", port=0, **options)
    controller.start()
    print(f"smtp listening on 127.0.0.1:{controller.port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
