//! A minimal presence watcher over UDP: SUBSCRIBEs to one extension's hint as an endpoint
//! without authentication, answers every NOTIFY with 200 and reports when each arrived (an
//! `Instant` taken right after `recv`, so latencies are measured on one clock).
use std::net::UdpSocket;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// One NOTIFY as received.
pub struct Notify {
    pub at: Instant,
    pub body: String,
}

pub struct Watcher {
    notifies: Receiver<Notify>,
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

fn ok_response(req: &str) -> String {
    let mut r = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for line in header(req, name) {
            r.push_str(line);
            r.push_str("\r\n");
        }
    }
    r.push_str("Content-Length: 0\r\n\r\n");
    r
}

impl Watcher {
    /// SUBSCRIBEs (Event: presence, pidf) as `endpoint` to `exten` on Asterisk's SIP port and
    /// waits for the 200. The first NOTIFY (the current state) is consumed here too.
    pub fn subscribe(sip_port: u16, endpoint: &str, exten: &str) -> Result<Watcher, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let local = sock.local_addr().map_err(|e| e.to_string())?.port();
        let target = format!("127.0.0.1:{sip_port}");
        let subscribe = format!(
            "SUBSCRIBE sip:{exten}@127.0.0.1:{sip_port} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-bench-{local};rport\r\n\
             From: <sip:{endpoint}@127.0.0.1:{sip_port}>;tag=bench{local}\r\n\
             To: <sip:{exten}@127.0.0.1:{sip_port}>\r\n\
             Call-ID: bench-watch-{local}@127.0.0.1\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:{endpoint}@127.0.0.1:{local}>\r\n\
             Event: presence\r\n\
             Accept: application/pidf+xml\r\n\
             Expires: 3600\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: deviceuser-bench\r\n\
             Content-Length: 0\r\n\r\n"
        );
        sock.send_to(subscribe.as_bytes(), &target)
            .map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let (status_tx, status_rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let at = Instant::now();
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("SIP/2.0 ") {
                    let _ = status_tx.send(msg.lines().next().unwrap_or("").to_string());
                    continue;
                }
                let _ = sock.send_to(ok_response(&msg).as_bytes(), from);
                if msg.starts_with("NOTIFY ") {
                    let body = msg
                        .split_once("\r\n\r\n")
                        .map_or(String::new(), |(_, b)| b.to_string());
                    if tx.send(Notify { at, body }).is_err() {
                        return;
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match status_rx.recv_timeout(left) {
                Ok(s) if s.starts_with("SIP/2.0 1") => continue,
                Ok(s) if s.starts_with("SIP/2.0 2") => break,
                Ok(s) => return Err(format!("SUBSCRIBE to {exten} refused: {s}")),
                Err(_) => return Err(format!("no answer to SUBSCRIBE to {exten}")),
            }
        }
        let w = Watcher { notifies: rx };
        w.next(Duration::from_secs(5))
            .ok_or_else(|| format!("no initial NOTIFY for {exten}"))?;
        Ok(w)
    }

    /// The next NOTIFY, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Notify> {
        self.notifies.recv_timeout(timeout).ok()
    }

    /// Drops NOTIFYs already received.
    pub fn drain(&self) {
        while self.notifies.try_recv().is_ok() {}
    }
}

/// `open` or `closed` from a pidf body.
pub fn basic(body: &str) -> &str {
    body.split_once("<basic>")
        .and_then(|(_, r)| r.split_once("</basic>"))
        .map_or("", |(b, _)| b)
}
