//! `storage = realtime`: bindings in a database table shared by several nodes, through
//! Asterisk's realtime (the families of [`deviceuser_core::realtime`], mapped in
//! `extconfig.conf`), and which of the other nodes are up.
//!
//! The table is the truth; each node's binding table is its cache, the read path of the
//! provider, the functions and the CLI. When the cache can be behind the database:
//! - never for what this node commits: a login or logout is written to the database, under
//!   the table's writer lock, before the cache changes and before anyone is told; if the
//!   database refuses it, nothing changes and the caller gets an error;
//! - for what other nodes commit: until the next full read of the table, at most
//!   `realtime_refresh` seconds (plus the read itself) while the database answers; and at
//!   once for the rows a commit of this node touches, since a write against a stale row is
//!   refused, the table is read again and the decision made again;
//! - while the database does not answer: from the failure until the first full read after
//!   it answers again. Nothing is written meanwhile: logins and logouts are refused.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deviceuser_core::config::USER_STATE_PREFIX;
use deviceuser_core::logtext::value;
use deviceuser_core::realtime::{
    decode_binding_row, decode_node_row, lockout_from_failures, pin_failures_horizon, plan_writes,
    Liveness, NodeRow, RowWrite, BINDINGS, MARKER_DEVICE, NODES, PIN_FAILURES,
};
use deviceuser_core::{
    Binding, Changes, DeviceMode, General, MultipleLogins, Snapshot, StoreError,
};
use snapcell::SnapshotCell;

use crate::host::devstate::{self, DeviceState, Eid};
use crate::host::{log, realtime};

/// The bindings and nodes tables, as this node reads and writes them.
pub struct Store {
    node: String,
    eid: String,
    /// This node's heartbeat: starts at the load time in milliseconds (so a restart is a
    /// new beat), then one more per beat.
    beat: AtomicU64,
}

impl Store {
    /// Checks that both families are mapped (nothing is read yet: the database may be down).
    pub fn new(node: &str) -> Result<Store, String> {
        for family in [BINDINGS, NODES] {
            if !realtime::is_mapped(family) {
                return Err(format!(
                    "storage = realtime, but extconfig.conf maps no realtime family {family} \
                     (e.g. {family} => pgsql,general,{family})"
                ));
            }
        }
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(Store {
            node: node.to_string(),
            eid: Eid::own().to_string(),
            beat: AtomicU64::new(ms),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Every binding in the table. An answer without rows is told from a failure by the
    /// marker row, which is created when missing.
    pub fn read(&self) -> Result<Vec<Binding>, String> {
        let rows = match realtime::load(BINDINGS, &[("device LIKE", "%")]) {
            Some(rows) => rows,
            None => {
                let marker = [("device", MARKER_DEVICE)];
                match realtime::update(BINDINGS, &marker, &[("since", "0")]) {
                    Err(e) => return Err(e),
                    Ok(0) => {
                        realtime::store(BINDINGS, &[("device", MARKER_DEVICE), ("since", "0")])?;
                        realtime::load(BINDINGS, &[("device LIKE", "%")])
                            .ok_or("reading the bindings table failed")?
                    }
                    Ok(_) => return Err("reading the bindings table failed".into()),
                }
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for fields in rows {
            match decode_binding_row(&fields) {
                Ok(Some(b)) => out.push(b),
                Ok(None) => {}
                Err(e) => log::warning(&format!("{BINDINGS}: ignoring a row: {e}")),
            }
        }
        Ok(out)
    }

    /// Writes one commit, row by row, each a compare-and-set against what this node's table
    /// held (see [`plan_writes`]). A write that changes no row, or that the database refuses
    /// while it answers reads, is a conflict: another node changed the row.
    pub fn write(&self, changes: &Changes, policy: MultipleLogins) -> Result<(), StoreError> {
        for w in plan_writes(changes, policy) {
            let flag = |x: bool| if x { "1" } else { "0" };
            let result = match &w {
                RowWrite::Delete { device, user } => {
                    realtime::destroy(BINDINGS, "device", device, &[("userid", user)])
                }
                RowWrite::Update {
                    user,
                    new,
                    exclusive,
                } => realtime::update(
                    BINDINGS,
                    &[("device", &new.device), ("userid", user)],
                    &[
                        ("userid", &new.user),
                        ("since", &new.since.to_string()),
                        ("exclusive", flag(*exclusive)),
                        ("node", &self.node),
                    ],
                ),
                RowWrite::Insert { new, exclusive } => realtime::store(
                    BINDINGS,
                    &[
                        ("device", &new.device),
                        ("userid", &new.user),
                        ("since", &new.since.to_string()),
                        ("exclusive", flag(*exclusive)),
                        ("node", &self.node),
                    ],
                ),
            };
            match result {
                Ok(n) if n > 0 => {}
                Ok(_) => {
                    return Err(StoreError::Conflict(format!(
                        "device {} changed",
                        value(w.device())
                    )))
                }
                Err(e) => {
                    return Err(match self.read() {
                        Ok(_) => StoreError::Conflict(format!(
                            "the database refused the row of device {}",
                            value(w.device())
                        )),
                        Err(_) => StoreError::Unavailable(e),
                    })
                }
            }
        }
        Ok(())
    }

    /// Inserts rows for bindings the table lacks (a device given to its default user at
    /// load); one already there is left alone.
    fn insert_missing(&self, bindings: &[Binding]) {
        for b in bindings {
            let _ = realtime::store(
                BINDINGS,
                &[
                    ("device", &b.device),
                    ("userid", &b.user),
                    ("since", &b.since.to_string()),
                    ("exclusive", "0"),
                    ("node", &self.node),
                ],
            );
        }
    }

    /// One heartbeat: this node's row gets the next beat (upsert: update, else store).
    pub fn heartbeat(&self) -> Result<(), String> {
        let beat = (self.beat.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let set = [("eid", self.eid.as_str()), ("beat", beat.as_str())];
        match realtime::update(NODES, &[("node", &self.node)], &set)? {
            0 => realtime::store(NODES, &[("node", &self.node), set[0], set[1]]).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Every node's heartbeat row (this node's is there after a heartbeat: no answer is a
    /// failure).
    pub fn nodes(&self) -> Result<Vec<NodeRow>, String> {
        let rows = realtime::load(NODES, &[("node LIKE", "%")])
            .ok_or_else(|| "reading the nodes table failed".to_string())?;
        Ok(rows.iter().filter_map(|f| decode_node_row(f)).collect())
    }
}

/// A node of several: the store, the other nodes' liveness and when the table was last
/// read.
pub struct Cluster {
    pub store: Store,
    liveness: Mutex<Liveness>,
    /// Nodes down now: read by `DEVICEUSER_DIAL` without waiting.
    down: SnapshotCell<Vec<String>>,
    /// Whether a full read has succeeded since load.
    synced: AtomicBool,
    last_sync: Mutex<Option<Instant>>,
    /// Whether the database failed at the last try (to log outages once).
    failing: AtomicBool,
    /// The rows last reported as not applicable (to report each once).
    dropped: Mutex<BTreeSet<String>>,
    started: Instant,
    /// Whether wrong PINs are shared ([`PIN_FAILURES`] mapped).
    shared_lockout: bool,
    /// Since when the heartbeat fails (this node cannot reach the database).
    unreachable_since: Mutex<Option<Instant>>,
}

impl Cluster {
    pub fn new(store: Store) -> Arc<Cluster> {
        let shared_lockout = realtime::is_mapped(PIN_FAILURES);
        if !shared_lockout {
            log::notice(&format!(
                "no realtime family {PIN_FAILURES} in extconfig.conf: wrong PINs are counted \
                 per node"
            ));
        }
        Arc::new(Cluster {
            shared_lockout,
            unreachable_since: Mutex::new(None),
            store,
            liveness: Mutex::new(Liveness::new()),
            down: SnapshotCell::new(Arc::new(Vec::new())),
            synced: AtomicBool::new(false),
            last_sync: Mutex::new(None),
            failing: AtomicBool::new(false),
            dropped: Mutex::new(BTreeSet::new()),
            started: Instant::now(),
        })
    }

    /// The nodes that are down now.
    pub fn down_nodes(&self) -> Arc<Vec<String>> {
        self.down.load()
    }

    /// The rows to read for the table: the whole table. At the first read after load, the
    /// devices of this node that have a default user and no row get one (as a restart
    /// gives them back to their default user with AstDB) before the table is read again.
    pub fn read_for_sync(&self, snap: &Snapshot) -> Result<Vec<Binding>, String> {
        let rows = self.store.read()?;
        if self.synced.load(Ordering::Acquire) {
            return Ok(rows);
        }
        let present: BTreeSet<&str> = rows.iter().map(|b| b.device.as_str()).collect();
        let missing: Vec<Binding> = snap
            .config()
            .devices
            .values()
            .filter(|d| !d.remote && d.mode == DeviceMode::Adhoc && d.default_user.is_some())
            .filter(|d| !present.contains(d.id.as_str()))
            .filter_map(|d| snap.user_on(&d.id).cloned())
            .collect();
        if missing.is_empty() {
            return Ok(rows);
        }
        self.store.insert_missing(&missing);
        self.store.read()
    }

    /// After a sync: what happened, logged once per change of situation.
    pub fn synced(&self, result: &Result<Vec<(Binding, String)>, String>) {
        *self.last_sync.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match result {
            Ok(dropped) => {
                self.synced.store(true, Ordering::Release);
                self.answered();
                let now: BTreeSet<String> = dropped
                    .iter()
                    .map(|(b, why)| {
                        format!(
                            "user {} on device {}: {why}",
                            value(&b.user),
                            value(&b.device)
                        )
                    })
                    .collect();
                let mut last = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
                for d in now.difference(&last) {
                    log::warning(&format!("{BINDINGS}: row not applied here: {d}"));
                }
                *last = now;
            }
            Err(e) => self.failed(e),
        }
    }

    /// Whether the table is due for a full read.
    pub fn sync_due(&self, every: Duration) -> bool {
        self.last_sync
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|t| t.elapsed() >= every)
    }

    /// Whether the database failed at the last try.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The database answered.
    pub fn answered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            log::notice("realtime storage answers again");
        }
    }

    /// The database failed: logged once per outage.
    pub fn failed(&self, e: &str) {
        if !self.failing.swap(true, Ordering::AcqRel) {
            log::error(&format!(
                "realtime storage unavailable ({e}): logins and logouts are refused, bindings \
                 are served as last read until it answers"
            ));
        }
    }

    /// With shared wrong PINs: whether the user is locked out by the wrong PINs of every
    /// node (`Err`: seconds left). When the database does not answer, it says nothing
    /// (`Ok`): this node's own count still applies.
    pub fn lockout_check(&self, user: &str, now: u64, g: &General) -> Result<(), u64> {
        if !self.shared_lockout || g.max_login_failures == 0 {
            return Ok(());
        }
        let since = now.saturating_sub(pin_failures_horizon(g)).to_string();
        let rows = realtime::load(PIN_FAILURES, &[("userid", user), ("failed_at >", &since)]);
        let times: Vec<u64> = (rows.unwrap_or_default().iter())
            .filter_map(|r| {
                r.iter()
                    .find(|(k, _)| k == "failed_at")
                    .and_then(|(_, v)| v.parse().ok())
            })
            .collect();
        lockout_from_failures(times, now, g)
    }

    /// Records a wrong PIN for every node; true if the user is locked out now.
    pub fn pin_failure(&self, user: &str, now: u64, g: &General) -> bool {
        if !self.shared_lockout || g.max_login_failures == 0 {
            return false;
        }
        let at = now.to_string();
        let stored = realtime::store(
            PIN_FAILURES,
            &[
                ("userid", user),
                ("failed_at", &at),
                ("node", self.store.node()),
            ],
        );
        if let Err(e) = stored {
            log::warning(&format!(
                "{PIN_FAILURES}: a wrong PIN of user {} is counted on this node only ({e})",
                value(user)
            ));
            return false;
        }
        self.lockout_check(user, now, g).is_err()
    }

    /// A right PIN: the user's wrong PINs are forgotten on every node.
    pub fn pin_success(&self, user: &str) {
        if self.shared_lockout {
            let _ = realtime::destroy(PIN_FAILURES, "userid", user, &[]);
        }
    }

    /// One heartbeat and one look at the other nodes. A node that just went down: every
    /// `DeviceUser:` state cached for it shows UNAVAILABLE here (Asterisk keeps a dead
    /// peer's states forever), and its devices are not dialled until it beats again.
    ///
    /// After this node could not reach the database, the others' timeouts start again (the
    /// beats it missed say nothing about them). Returns true when that lasted
    /// `node_timeout` or more: the others may have taken this node for down and shown its
    /// users unavailable, so its states must be published again.
    pub fn beat(&self, node_timeout: Duration) -> bool {
        let rows = self.store.heartbeat().and_then(|()| self.store.nodes());
        let mut unreachable = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                unreachable.get_or_insert_with(Instant::now);
                self.failed(&e);
                return false;
            }
        };
        let outage = unreachable.take().map(|t| t.elapsed());
        drop(unreachable);
        self.answered();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let mut liveness = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
        if outage.is_some() {
            liveness.restart_timers(now_ms);
        }
        let republish = outage.is_some_and(|d| d >= node_timeout);
        let t = liveness.observe(
            self.store.node(),
            &rows,
            now_ms,
            node_timeout.as_millis() as u64,
        );
        if t.down.is_empty() && t.up.is_empty() {
            return republish;
        }
        self.down.store(Arc::new(liveness.down()));
        drop(liveness);
        for (node, eid) in t.down {
            let users = match Eid::parse(&eid) {
                Some(eid) => {
                    let devices = devstate::cached_devices_of(&eid, USER_STATE_PREFIX);
                    for d in &devices {
                        devstate::publish_as(d, DeviceState::UNAVAILABLE, &eid);
                    }
                    devices.len()
                }
                None => 0,
            };
            log::notice(&format!(
                "node {} is down (no heartbeat for {} s): its {users} user state(s) show unavailable, its devices are not dialled",
                value(&node),
                node_timeout.as_secs()
            ));
        }
        for node in t.up {
            log::notice(&format!("node {} is up again", value(&node)));
        }
        republish
    }
}
