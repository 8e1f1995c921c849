//! A presence watcher: `sipp` (from the `sip-tester` package) SUBSCRIBEs to one extension's
//! hint as an endpoint without authentication and answers every NOTIFY with 200. NOTIFYs are
//! read from sipp's message trace, each with the time sipp logged it as received (the wall
//! clock, in microseconds), so a latency is that time minus the wall-clock time the driver
//! sent the action.
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One NOTIFY as sipp received it.
pub struct Notify {
    /// When sipp logged it as received.
    pub at: SystemTime,
    pub body: String,
}

pub struct Watcher {
    notifies: Receiver<Notify>,
    child: Child,
    stop: Arc<AtomicBool>,
}

/// SUBSCRIBE (Event: presence, pidf) without authentication, then 200 to every NOTIFY.
const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="deviceuser-kit presence watcher">
  <send retrans="500">
    <![CDATA[

      SUBSCRIBE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[from_user]@[remote_ip]:[remote_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 SUBSCRIBE
      Contact: <sip:[from_user]@[local_ip]:[local_port]>
      Event: presence
      Accept: application/pidf+xml
      Expires: 3600
      Max-Forwards: 70
      User-Agent: deviceuser-kit-sipp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" />
  <label id="1" />
  <recv request="NOTIFY" />
  <!-- A NOTIFY arriving before the SUBSCRIBE's 200 comes here too (sipp's jump on an
       unexpected message): it is answered, and the loop goes on. -->
  <label id="_unexp.main" />
  <send next="1">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

/// The header line sipp writes before each traced message.
const MARK: &str = "----------------------------------------------- ";

/// `2026-11-26 10:52:51.562401` (sipp's local time; the bench runs in UTC or any zone, so
/// this is turned into an offset from the same clock by [`local_offset`]).
fn parse_stamp(s: &str) -> Option<(i64, u32)> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.')?;
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let micros: u32 = format!("{frac:0<6}")[..6].parse().ok()?;
    Some((
        days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se,
        micros,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the complete entries of `text` (an entry is complete once the next header line
/// follows it); returns the NOTIFYs received and how many bytes were consumed.
fn notifies_in(text: &str, offset_s: i64) -> (Vec<Notify>, usize) {
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut starts: Vec<usize> = text.match_indices(MARK).map(|(i, _)| i).collect();
    starts.push(usize::MAX);
    for w in starts.windows(2) {
        let (start, next) = (w[0], w[1]);
        if next == usize::MAX {
            break;
        }
        consumed = next;
        let entry = &text[start + MARK.len()..next];
        let Some((stamp, rest)) = entry.split_once('\n') else {
            continue;
        };
        let Some((what, msg)) = rest.split_once("\n\n") else {
            continue;
        };
        if !what.contains("message received") || !msg.starts_with("NOTIFY ") {
            continue;
        }
        let Some((secs, micros)) = parse_stamp(stamp) else {
            continue;
        };
        let Ok(secs) = u64::try_from(secs - offset_s) else {
            continue;
        };
        let body = msg
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        out.push(Notify {
            at: UNIX_EPOCH + Duration::new(secs, micros * 1000),
            body,
        });
    }
    (out, consumed)
}

/// Seconds east of UTC of the local time zone sipp's stamps are in, found from a stamp sipp
/// wrote: the difference to the file's own time, rounded to the quarter hour.
fn local_offset(stamp: &str, written: SystemTime) -> Option<i64> {
    let (local, _) = parse_stamp(stamp)?;
    let utc = written.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(((local - utc) as f64 / 900.0).round() as i64 * 900)
}

impl Watcher {
    /// Starts sipp in `dir`, SUBSCRIBEd as `endpoint` to `exten` on Asterisk's SIP port, and
    /// waits for the first NOTIFY (the current state), which is consumed here.
    pub fn subscribe(
        dir: &Path,
        sip_port: u16,
        endpoint: &str,
        exten: &str,
    ) -> Result<Watcher, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let scenario = dir.join("sipp-watcher.xml");
        fs::write(&scenario, SCENARIO).map_err(|e| e.to_string())?;
        let trace = dir.join("sipp-watcher-messages.log");
        let _ = fs::remove_file(&trace);
        let screen =
            File::create(dir.join("sipp-watcher-screen.log")).map_err(|e| e.to_string())?;
        let port = crate::free_port();
        let child = Command::new("sipp")
            .arg(format!("127.0.0.1:{sip_port}"))
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
            .args([
                "-s",
                exten,
                "-key",
                "from_user",
                endpoint,
                "-m",
                "1",
                "-nostdin",
            ])
            .args(["-trace_msg", "-message_file"])
            .arg(&trace)
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("sipp-watcher-errors.log"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(screen.try_clone().map_err(|e| e.to_string())?)
            .stderr(screen)
            .spawn()
            .map_err(|e| format!("cannot start sipp (scripts/provision.sh installs it): {e}"))?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_tail = Arc::clone(&stop);
        thread::spawn(move || follow(&trace, &stop_tail, &tx));
        let mut w = Watcher {
            notifies: rx,
            child,
            stop,
        };
        if w.next(Duration::from_secs(10)).is_none() {
            let screen =
                fs::read_to_string(dir.join("sipp-watcher-screen.log")).unwrap_or_default();
            let errors =
                fs::read_to_string(dir.join("sipp-watcher-errors.log")).unwrap_or_default();
            let exited = w.child.try_wait().ok().flatten();
            return Err(format!(
                "sipp watcher of {exten}: no initial NOTIFY in 10 s (sipp exit: {exited:?}; errors: {}; screen: {})",
                errors.trim(),
                screen.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            ));
        }
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

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows sipp's message trace and sends each NOTIFY received, in order.
fn follow(trace: &Path, stop: &AtomicBool, tx: &mpsc::Sender<Notify>) {
    let mut file: Option<File> = None;
    let mut pending = String::new();
    let mut offset_s: Option<i64> = None;
    let mut buf = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if file.is_none() {
            file = File::open(trace).ok();
        }
        buf.clear();
        // A read continues where the last one stopped: sipp only appends.
        let grew = file
            .as_mut()
            .and_then(|f| f.read_to_end(&mut buf).ok())
            .is_some_and(|n| n > 0);
        if !grew {
            thread::sleep(Duration::from_micros(500));
            continue;
        }
        pending.push_str(&String::from_utf8_lossy(&buf));
        if offset_s.is_none() {
            let stamp = pending
                .find(MARK)
                .and_then(|i| pending[i + MARK.len()..].lines().next());
            offset_s = stamp.and_then(|s| local_offset(s, SystemTime::now()));
        }
        let (found, used) = notifies_in(&pending, offset_s.unwrap_or(0));
        pending.drain(..used);
        for n in found {
            if tx.send(n).is_err() {
                return;
            }
        }
    }
}

/// `open` or `closed` from a pidf body.
pub fn basic(body: &str) -> &str {
    body.split_once("<basic>")
        .and_then(|(_, r)| r.split_once("</basic>"))
        .map_or("", |(b, _)| b)
}

/// Time from `sent` (the wall clock when the action left) to `n`'s arrival at sipp.
pub fn latency(sent: SystemTime, n: &Notify) -> Duration {
    n.at.duration_since(sent).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_entries() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 26), 20_783);
        let (s, us) = parse_stamp("2026-11-26 10:52:51.562401").unwrap();
        assert_eq!(
            (s, us),
            (20_783 * 86_400 + 10 * 3600 + 52 * 60 + 51, 562_401)
        );
        let text = format!(
            "{MARK}2026-11-26 10:52:51.562401\nUDP message received [9] bytes :\n\n\
             NOTIFY sip:w@x SIP/2.0\r\nEvent: presence\r\n\r\n<basic>open</basic>\n\n\
             {MARK}2026-11-26 10:52:51.563592\nUDP message sent (9 bytes):\n\nSIP/2.0 200 OK\r\n\r\n\n"
        );
        let (found, used) = notifies_in(&text, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(basic(&found[0].body), "open");
        assert_eq!(
            found[0].at.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(s as u64, 562_401_000)
        );
        // The last entry (the 200 sent) is not complete yet: kept for the next read.
        assert_eq!(&text[used..used + MARK.len()], MARK);
    }
}
