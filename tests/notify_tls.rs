//! Notifications over TLS, to servers on loopback with a throw-away CA
//! (made with openssl): an https webhook that checks the body's HMAC
//! signature, and an SMTP relay that requires STARTTLS and a login (Python's
//! ssl module on the server side), delivered as the agent does, through
//! the `baton-notify` helper. Needs openssl and python3; without them the
//! test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_agent::events::EventLog;
use baton_config::{Email, Notifier, Notify, SmtpTls, Webhook};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("this test needs openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const WEBHOOK: &str = r#"
import http.server, ssl, sys, hmac, hashlib
port_file, log, cert, key, secret = sys.argv[1:6]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        want = 'sha256=' + hmac.new(open(secret, 'rb').read(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, self.headers.get('X-Baton-Signature', ''))
        open(log, 'ab').write((b'signed ' if ok else b'unsigned ') + body)
        self.send_response(200 if ok else 401); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
open(port_file, 'w').write(str(s.server_address[1]))
s.serve_forever()
"#;

const SMTP: &str = r#"
import socketserver, ssl, sys, base64
port_file, log, cert, key = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
class H(socketserver.StreamRequestHandler):
    def handle(self):
        conn, tls, user, data = self.connection, False, None, None
        r, w = self.rfile, self.wfile
        def say(s):
            w.write((s + '\r\n').encode()); w.flush()
        say('220 test ESMTP')
        while True:
            line = r.readline()
            if not line: return
            text = line.decode(errors='replace').rstrip('\r\n')
            if data is not None:
                if text == '.':
                    open(log, 'a').write('tls=%s user=%s\n' % (tls, user) + '\n'.join(data) + '\n----\n')
                    data = None; say('250 queued')
                else: data.append(text)
                continue
            cmd = text[:4].upper()
            if cmd == 'EHLO':
                say('250-test'); say('250-AUTH PLAIN LOGIN' if tls else '250-STARTTLS'); say('250 OK')
            elif cmd == 'STAR':
                say('220 go ahead')
                conn = ctx.wrap_socket(conn, server_side=True)
                r, w, tls = conn.makefile('rb'), conn.makefile('wb'), True
            elif cmd == 'AUTH':
                parts = text.split()
                if parts[1].upper() == 'PLAIN':
                    blob = parts[2] if len(parts) > 2 else (say('334 '), r.readline().strip())[1]
                    _, u, p = base64.b64decode(blob).split(b'\0')
                else:
                    say('334 VXNlcm5hbWU6'); u = base64.b64decode(r.readline().strip())
                    say('334 UGFzc3dvcmQ6'); p = base64.b64decode(r.readline().strip())
                if p == b'hunter2-hunter2':
                    user = u.decode(); say('235 ok')
                else:
                    say('535 no')
            elif cmd == 'MAIL' and not (tls and user): say('530 TLS and a login first')
            elif cmd == 'DATA': data = []; say('354 go on')
            elif cmd == 'QUIT': say('221 bye'); return
            else: say('250 ok')
socketserver.TCPServer.allow_reuse_address = True
s = socketserver.ThreadingTCPServer(('127.0.0.1', 0), H)
open(port_file, 'w').write(str(s.server_address[1]))
s.serve_forever()
"#;

fn python(script: &str, args: &[&Path]) -> Server {
    Server(Command::new("python3").arg("-c").arg(script).args(args).spawn().expect("this test needs python3"))
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn port(file: &Path) -> u16 {
    assert!(wait(Duration::from_secs(10), || file.exists()), "the server did not start");
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

#[test]
fn a_signed_https_webhook_and_a_mail_over_starttls_with_a_login_arrive() {
    let dir = Scratch(std::env::temp_dir().join(format!("baton-notify-tls-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = &dir.0;
    // A CA, then a certificate for 127.0.0.1 signed by it.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=baton test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.pem",
        ],
    );
    let secret = d.join("hook-secret");
    std::fs::write(&secret, [9u8; 40]).unwrap();
    let password = d.join("smtp-password");
    std::fs::write(&password, "hunter2-hunter2\n").unwrap();
    let (cert, key) = (d.join("server.pem"), d.join("server.key"));
    let (hook_port, hook_log) = (d.join("hook.port"), d.join("hook.log"));
    let (smtp_port, mail_log) = (d.join("smtp.port"), d.join("mail.log"));
    let _hook = python(WEBHOOK, &[&hook_port, &hook_log, &cert, &key, &secret]);
    let _smtp = python(SMTP, &[&smtp_port, &mail_log, &cert, &key]);
    let notify = Notify {
        exec: None,
        webhook: Some(Notifier {
            target: Webhook {
                url: format!("https://127.0.0.1:{}/hook", port(&hook_port)),
                secret_file: Some(secret),
                ca_file: Some(d.join("ca.pem")),
            },
            events: vec![],
        }),
        email: Some(Notifier {
            target: Email {
                to: vec!["ops@test.invalid".into()],
                from: "baton@test.invalid".into(),
                smtp: format!("127.0.0.1:{}", port(&smtp_port)),
                tls: SmtpTls::StartTls,
                username: Some("baton".into()),
                password_file: Some(password),
                ca_file: Some(d.join("ca.pem")),
            },
            events: vec![],
        }),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let log = Arc::new(EventLog::open(d, "alpha"));
        baton_agent::notify::start(&notify, Path::new(env!("CARGO_BIN_EXE_baton-notify")), &log);
        log.record("takeover", Some("web"), "web started on alpha".into(), Some(120), None);
        let arrived = |file: &Path, what: &str| std::fs::read_to_string(file).is_ok_and(|t| t.contains(what));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20)
            && !(arrived(&hook_log, "\"kind\":\"takeover\"") && arrived(&mail_log, "----"))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let hook = std::fs::read_to_string(&hook_log).unwrap_or_default();
    assert!(hook.starts_with("signed ") && hook.contains("web started on alpha"), "webhook: {hook:?}");
    let mail = std::fs::read_to_string(&mail_log).unwrap_or_default();
    assert!(mail.starts_with("tls=True user=baton"), "mail over STARTTLS with a login: {mail:?}");
    assert!(mail.contains("Subject: baton: takeover web on alpha"), "{mail}");
}
