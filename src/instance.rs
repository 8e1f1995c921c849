//! The loaded module: one [`Instance`], created by `load` and shut down by `unload`.
//!
//! It owns everything the module holds while loaded: the shared [`State`] (table, config,
//! statistics, lockout, journal, published states), the commit [`Pipeline`] and its
//! executor, the device-state follower, and the parts that run ([`Running`]: registrations,
//! the policy thread, the provider), which unload drops in their declaration order. Every
//! change of bindings or DND goes through the operations here, which run the pipeline:
//! adapters (apps, functions, CLI, AMI, the policy timer) cannot skip it.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use deviceuser_core::config::reload_refusal;
use deviceuser_core::config::shown;
use deviceuser_core::logtext::{quoted, value};
use deviceuser_core::table::reload_drop_reason;
use deviceuser_core::{
    BindingTable, Changes, LoginError, LoginMode, LogoutError, Reason, Snapshot, Storage,
    StoreError, StoreRefusal,
};

use crate::access::Access;
use crate::ari::{AriFeed, AriSink};
use crate::cluster::{Cluster, Store};
use crate::deferred::Executor;
use crate::effects::{bound_dials, Effects};
use crate::followups::{FollowUpSink, FollowUps};
use crate::host::ari::{Callbacks as AriCallbacks, EventSource};
use crate::host::channel::Channel;
use crate::host::devstate::follow::{Change as DeviceChange, Follower};
use crate::host::devstate::provider::Provider;
use crate::host::devstate::DeviceState;
use crate::host::http::Linked;
use crate::host::log;
use crate::host::manager::fully_booted;
use crate::host::prometheus::{Registration, ScrapeCallback};
use crate::host::register::Registered;
use crate::host::thread::Worker;
use crate::pipeline::{Change, Commit, Origin, Pipeline};
use crate::sinks::{
    AnnounceSink, CelSink, CommitLogSink, FeedSink, FollowSink, JournalSink, MetricsSink,
    PersistSink, PublishSink, RealtimeSink,
};
use crate::state::{active_users, now, user_state, State};
use crate::{config_file, restore};

/// Device state provider label: hints name `DeviceUser:<user>`.
pub const PROVIDER_LABEL: &std::ffi::CStr = c"DeviceUser";

/// How many times a login or logout is decided again after another node changed a row it
/// writes (each time after reading the table again).
const CONFLICT_RETRIES: usize = 3;

pub struct Instance {
    state: Arc<State>,
    pipeline: Pipeline,
    /// With `storage = realtime`: the shared database and the other nodes.
    cluster: Option<Arc<Cluster>>,
    follower: Arc<Follower>,
    /// Queue membership and message waiting, behind the commits.
    follow_ups: Arc<FollowUps>,
    /// ARI applications' subscriptions to the module's events.
    ari: Arc<AriFeed>,
    /// What registers with optional modules (res_prometheus, res_stasis) once they are
    /// loaded: see [`Instance::tend_registrations`].
    sources: Mutex<Sources>,
    /// Login and logout prompts running on channels: unload is refused while any is.
    prompts: AtomicUsize,
    /// Questions the provider answered since load.
    provided: AtomicU64,
    /// The administration console's sessions and edit lock.
    access: Access,
    running: Mutex<Option<Running>>,
}

/// What runs while the module is loaded. Unload drops it: fields drop in declaration order,
/// which is the unload order. The fields are held for their `Drop` alone.
#[allow(dead_code)]
struct Running {
    /// The console's HTTP URIs: no new request comes in, open live feeds are closed, and
    /// requests in flight are waited for.
    console: Option<ConsoleLinks>,
    /// The metrics callback: res_prometheus calls no more (and no scrape is in progress).
    metrics: Option<Registration>,
    /// The ARI event source: no new subscription comes in.
    event_source: Option<EventSource>,
    /// Applications, functions, CLI commands, AMI actions: no new call comes in.
    registered: Option<Registered>,
    /// The policy timer: no automatic logout starts.
    policy: Option<Worker>,
    /// The follow-up thread: no queue or MWI action starts (what is queued is left to the
    /// next load's check).
    follow_ups: StopFollowUps,
    /// Device-state subscriptions: no device change comes in.
    follower: CloseFollower,
    /// The provider (Asterisk waits for calls in flight).
    provider: Option<Provider>,
    /// The commit executor: what is queued is applied, then its thread is joined.
    executor: StopExecutor,
    /// The journal closed, the module's hints removed, no stale state left published.
    finish: Finish,
}

struct ConsoleLinks {
    links: Linked,
    state: Arc<State>,
}
impl Drop for ConsoleLinks {
    fn drop(&mut self) {
        self.links.unlink();
        self.state.feed().close_all();
        // Dropping the links waits for the requests and feeds still inside the module.
    }
}

struct CloseFollower(Arc<Follower>);
impl Drop for CloseFollower {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Callbacks for optional modules, registered once they are loaded.
#[derive(Default)]
struct Sources {
    metrics: Option<ScrapeCallback>,
    ari: Option<AriCallbacks>,
}

struct StopFollowUps(Arc<FollowUps>);
impl Drop for StopFollowUps {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct StopExecutor(Arc<Executor<crate::effects::Op>>);
impl Drop for StopExecutor {
    fn drop(&mut self) {
        self.0.stop();
    }
}

struct Finish(Arc<State>);
impl Drop for Finish {
    fn drop(&mut self) {
        self.0.journal.close();
        let snap = self.0.snapshot();
        self.0.hints.clear();
        self.0
            .publish_users_state(active_users(&snap).into_iter(), DeviceState::UNAVAILABLE);
    }
}

/// Counts a running prompt while alive.
pub struct Prompt<'a>(&'a AtomicUsize);
impl Drop for Prompt<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Instance {
    /// Reads the config, restores bindings, opens the journal, builds the pipeline and starts
    /// following bound devices. Nothing is registered with Asterisk yet: see [`attach`].
    ///
    /// [`attach`]: Instance::attach
    pub fn load() -> Result<Arc<Instance>, String> {
        let config = config_file::read()?;
        let now = now();
        let cluster = match (config.general.storage, &config.general.node) {
            (Storage::Realtime, Some(node)) => Some(Cluster::new(Store::new(node)?)),
            _ => None,
        };
        let table = BindingTable::new(config, now);
        let state = match &cluster {
            None => {
                let (restored, restored_changes) = restore::restore(&table, now);
                let state = State::new(table);
                // Restored logins count apart from new ones, so `show stats` accounts for
                // every binding `show bindings` lists.
                state.stats().restored(&restored_changes);
                if let Err(e) = state.journal.open(&state.full_state()) {
                    log::error(&format!(
                        "{e}: a kill -9 may lose the last second of changes"
                    ));
                }
                let snap = state.snapshot();
                log::verbose(
                    2,
                    &format!(
                        "{} devices, {} users, {} bindings ({restored} restored from AstDB)",
                        snap.config().devices.len(),
                        snap.config().users.len(),
                        snap.binding_count(),
                    ),
                );
                state
            }
            Some(c) => {
                restore::restore_dnd(&table);
                let state = State::new(table);
                state.publisher.set_cluster(true);
                let snap = state.snapshot();
                log::verbose(
                    2,
                    &format!(
                        "{} devices, {} users; node {}, bindings in the realtime family {}",
                        snap.config().devices.len(),
                        snap.config().users.len(),
                        value(c.store.node()),
                        deviceuser_core::realtime::BINDINGS,
                    ),
                );
                state
            }
        };
        let for_changes = Arc::clone(&state);
        let follower = Follower::start(Box::new(move |c: &DeviceChange<'_>| {
            device_changed(&for_changes, c.device, c.state)
        }))?;
        let effects = Effects {
            state: Arc::clone(&state),
            follower: Arc::clone(&follower),
        };
        let executor = Arc::new(Executor::start(
            c"devuser-commit",
            Box::new(move |ops| effects.apply(ops)),
        ));
        let mut pipeline = Pipeline::new(Arc::clone(&executor));
        match &cluster {
            Some(c) => pipeline.add(Box::new(RealtimeSink {
                state: Arc::clone(&state),
                cluster: Arc::clone(c),
            })),
            None => pipeline.add(Box::new(JournalSink(Arc::clone(&state)))),
        }
        pipeline.add(Box::new(AnnounceSink(Arc::clone(&state))));
        pipeline.add(Box::new(FeedSink(Arc::clone(&state))));
        pipeline.add(Box::new(CelSink));
        pipeline.add(Box::new(CommitLogSink {
            state: Arc::clone(&state),
            seq: AtomicU64::new(0),
        }));
        pipeline.add(Box::new(FollowSink {
            state: Arc::clone(&state),
            follower: Arc::clone(&follower),
        }));
        pipeline.add(Box::new(PersistSink {
            dnd_only: cluster.is_some(),
        }));
        pipeline.add(Box::new(PublishSink));
        let follow_ups = FollowUps::start(Arc::clone(&state))?;
        pipeline.add(Box::new(FollowUpSink {
            state: Arc::clone(&state),
            follow_ups: Arc::clone(&follow_ups),
        }));
        pipeline.add(Box::new(MetricsSink(Arc::clone(&state))));
        let ari = Arc::new(AriFeed::new(Arc::clone(&state)));
        pipeline.add(Box::new(AriSink {
            feed: Arc::clone(&ari),
            follow_ups: Arc::clone(&follow_ups),
        }));
        let running = Running {
            console: None,
            metrics: None,
            event_source: None,
            registered: None,
            policy: None,
            follow_ups: StopFollowUps(Arc::clone(&follow_ups)),
            follower: CloseFollower(Arc::clone(&follower)),
            provider: None,
            executor: StopExecutor(executor),
            finish: Finish(Arc::clone(&state)),
        };
        let inst = Arc::new(Instance {
            state,
            pipeline,
            cluster,
            follower,
            follow_ups,
            ari,
            sources: Mutex::new(Sources::default()),
            prompts: AtomicUsize::new(0),
            provided: AtomicU64::new(0),
            access: Access::new()?,
            running: Mutex::new(Some(running)),
        });
        if inst.cluster.is_some() {
            // The bindings as the database has them; if it does not answer, the module runs
            // with the default bindings until it does (logins are refused meanwhile).
            if let Ok(changes) = inst.sync() {
                // This node's devices' logins count as restored, as from AstDB; the other
                // nodes count theirs.
                let snap = inst.snapshot();
                let local = |b: &deviceuser_core::Binding| {
                    snap.config().device(&b.device).is_some_and(|d| !d.remote)
                };
                inst.state.stats().restored(&Changes {
                    removed: Vec::new(),
                    added: (changes.added.iter())
                        .filter(|(b, _)| local(b))
                        .cloned()
                        .collect(),
                });
                log::verbose(
                    2,
                    &format!(
                        "{} bindings as the database holds them",
                        inst.snapshot().binding_count()
                    ),
                );
            }
        }
        Ok(inst)
    }

    /// Keeps what load registered with Asterisk (in the order it was made: provider,
    /// registrations, policy thread), for unload to drop in [`Running`]'s order. Then adds
    /// the owned hints.
    pub fn attach(
        &self,
        provider: Provider,
        registered: Registered,
        policy: Worker,
        console: Linked,
    ) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            r.provider = Some(provider);
            r.registered = Some(registered);
            r.policy = Some(policy);
            r.console = Some(ConsoleLinks {
                links: console,
                state: Arc::clone(&self.state),
            });
        }
        self.state.hints.sync(&self.snapshot());
    }

    /// The callbacks that answer res_prometheus' scrapes and ARI subscriptions; registered
    /// by [`tend_registrations`](Instance::tend_registrations).
    pub fn set_sources(&self, metrics: ScrapeCallback, ari: AriCallbacks) {
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = Sources {
            metrics: Some(metrics),
            ari: Some(ari),
        };
    }

    /// ARI applications' subscriptions.
    pub fn ari(&self) -> &AriFeed {
        &self.ari
    }

    /// Registers the metrics callback with res_prometheus and the ARI event source with
    /// res_stasis once Asterisk has booted and they are loaded; called every second by the
    /// policy thread.
    pub fn tend_registrations(&self) {
        let (metrics, ari) = {
            let s = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            (s.metrics, s.ari)
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = running.as_mut() else { return };
        let metrics = metrics.filter(|_| r.metrics.is_none());
        let ari = ari.filter(|_| r.event_source.is_none());
        if (metrics.is_none() && ari.is_none()) || !fully_booted() {
            return;
        }
        if let Some(reg) = metrics.and_then(|cb| Registration::register(c"res_deviceuser", cb)) {
            r.metrics = Some(reg);
            log::verbose(2, "metrics registered with res_prometheus");
        }
        if let Some(src) = ari.and_then(|cb| EventSource::register(c"deviceUser:", cb)) {
            r.event_source = Some(src);
            log::verbose(2, "ARI event source deviceUser: registered");
        }
    }

    /// Unload (or a load that failed part way): drops what runs, in [`Running`]'s order.
    pub fn shutdown(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(running);
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.snapshot()
    }

    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    pub fn executor(&self) -> &Executor<crate::effects::Op> {
        self.pipeline.executor()
    }

    pub fn follow_ups(&self) -> &FollowUps {
        &self.follow_ups
    }

    /// Marks a login or logout prompt as running until the value is dropped.
    pub fn prompt(&self) -> Prompt<'_> {
        self.prompts.fetch_add(1, Ordering::SeqCst);
        Prompt(&self.prompts)
    }

    /// Prompts running now.
    pub fn prompts(&self) -> usize {
        self.prompts.load(Ordering::SeqCst)
    }

    fn commit(&self, origin: Origin, channel: Option<&Channel>, change: Change<'_>) {
        self.pipeline.apply(&Commit {
            origin,
            channel,
            change,
            now: now(),
        });
    }

    /// The durable stage of a commit decided but not published yet.
    fn prepare(
        &self,
        origin: Origin,
        channel: Option<&Channel>,
        changes: &Changes,
    ) -> Result<(), StoreError> {
        self.pipeline.prepare(&Commit {
            origin,
            channel,
            change: Change::Bindings(changes),
            now: now(),
        })
    }

    /// Runs a durable operation; when another node changed a row it writes, reads the table
    /// again and decides again, up to [`CONFLICT_RETRIES`] times.
    fn durably<E: StoreRefusal>(
        &self,
        mut op: impl FnMut() -> Result<Changes, E>,
    ) -> Result<Changes, E> {
        let mut retries = 0;
        loop {
            match op() {
                Err(e) if e.is_conflict() && retries < CONFLICT_RETRIES => {
                    retries += 1;
                    let _ = self.sync();
                }
                r => return r,
            }
        }
    }

    pub fn login(
        &self,
        origin: Origin,
        channel: Option<&Channel>,
        user: &str,
        device: &str,
        mode: LoginMode,
    ) -> Result<Changes, LoginError> {
        self.durably(|| {
            self.state.table.login_durable(
                user,
                device,
                mode,
                now(),
                |_, c| self.prepare(origin, channel, c),
                |c| self.commit(origin, channel, Change::Bindings(c)),
            )
        })
    }

    pub fn logout_device(
        &self,
        origin: Origin,
        channel: Option<&Channel>,
        device: &str,
        reason: Reason,
    ) -> Result<Changes, LogoutError> {
        self.durably(|| {
            self.state.table.logout_device_durable(
                device,
                reason,
                now(),
                |_, c| self.prepare(origin, channel, c),
                |c| self.commit(origin, channel, Change::Bindings(c)),
            )
        })
    }

    pub fn logout_user(
        &self,
        origin: Origin,
        channel: Option<&Channel>,
        user: &str,
        reason: Reason,
    ) -> Result<Changes, LogoutError> {
        self.durably(|| {
            self.state.table.logout_user_durable(
                user,
                reason,
                now(),
                |_, c| self.prepare(origin, channel, c),
                |c| self.commit(origin, channel, Change::Bindings(c)),
            )
        })
    }

    /// With `storage = realtime`: the shared database and the other nodes.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// With `storage = realtime`: reads the whole bindings table and makes the table what it
    /// holds (what other nodes committed comes in as [`Origin::Sync`] commits). Nothing to do
    /// with AstDB.
    pub fn sync(&self) -> Result<Changes, String> {
        let Some(cluster) = &self.cluster else {
            return Ok(Changes::default());
        };
        let r = self.state.table.sync(
            |snap| cluster.read_for_sync(snap),
            |c| self.commit(Origin::Sync, None, Change::Bindings(c)),
        );
        cluster.synced(&r.as_ref().map(|(_, d)| d.clone()).map_err(Clone::clone));
        r.map(|(c, _)| c)
    }

    /// With `storage = realtime`, once a second (policy thread): a heartbeat, a look at the
    /// other nodes, and every `realtime_refresh` seconds a full read of the table.
    pub fn cluster_tick(&self) {
        let Some(cluster) = &self.cluster else { return };
        let general = self.snapshot().config().general.clone();
        if cluster.beat(std::time::Duration::from_secs(general.node_timeout)) {
            log::notice("the database answers again after node_timeout or more: publishing every user's state again");
            self.state.republish_users(active_users(&self.snapshot()));
        }
        if cluster.sync_due(std::time::Duration::from_secs(general.realtime_refresh)) {
            let _ = self.sync();
        }
    }

    /// Ends every login on an adhoc device (default users' too); no device goes back to its
    /// default user.
    pub fn logout_all(&self, origin: Origin, reason: Reason) -> Result<Changes, LogoutError> {
        self.state
            .table
            .logout_all(reason, |c| self.commit(origin, None, Change::Bindings(c)))
    }

    /// Turns a user's do-not-disturb on or off: persisted, published (BUSY while on),
    /// announced. Ok(false) if it already was so.
    pub fn set_dnd(
        &self,
        origin: Origin,
        channel: Option<&Channel>,
        user: &str,
        on: bool,
    ) -> Result<bool, String> {
        self.state
            .table
            .set_dnd_with(user, on, |user, on| {
                self.commit(origin, channel, Change::Dnd { user, on })
            })
            .map_err(|e| e.to_string())
    }

    /// An administrator lifts a user's PIN lockout: `Ok(Some(seconds that were left))`,
    /// `Ok(None)` if the user was not locked out (their failures are forgotten anyway), or
    /// an error for an unknown user. Logged, with who did it.
    pub fn unlock(&self, origin: Origin, user: &str) -> Result<Option<u64>, String> {
        if self.snapshot().config().user(user).is_none() {
            return Err(format!("no such user {}", quoted(&shown(user))));
        }
        let left = self.state.lockout().unlock(user, now());
        if let Some(left) = left {
            log::notice(&format!(
                "user {} unlocked by an administrator ({}) with {left} seconds of the lockout left",
                value(user),
                origin.as_str()
            ));
        }
        Ok(left)
    }

    /// `module reload`: a bad file keeps the running config; bindings the new config still
    /// allows stay.
    pub fn reload(&self) -> Result<(), String> {
        let config = config_file::read().map_err(|e| {
            log::error(&format!("{e}; keeping the running configuration"));
            e
        })?;
        let old = self.snapshot();
        if let Some(why) = reload_refusal(old.config(), &config) {
            log::error(&format!("{why}; keeping the running configuration"));
            return Err(why);
        }
        let changes = self.state.table.reconfigure(config, now(), |c| {
            // Rows of this node's devices that the new config drops or adds: written as far
            // as the database answers (each node writes its own devices' rows; the next full
            // read settles the rest).
            let snap = self.snapshot();
            let local = |b: &deviceuser_core::Binding| {
                snap.config().device(&b.device).is_some_and(|d| !d.remote)
            };
            let own = Changes {
                removed: c
                    .removed
                    .iter()
                    .filter(|(b, _)| local(b))
                    .cloned()
                    .collect(),
                added: c.added.iter().filter(|(b, _)| local(b)).cloned().collect(),
            };
            if !own.is_empty() {
                if let Err(e) = self.prepare(Origin::Reload, None, &own) {
                    log::warning(&format!(
                        "reload: the database did not take every change: {e}"
                    ));
                }
            }
            self.commit(Origin::Reload, None, Change::Bindings(c))
        });
        let new = self.snapshot();
        for (b, _) in &changes.removed {
            log::warning(&format!(
                "reload: user {} logged out of device {} ({})",
                value(&b.user),
                value(&b.device),
                reload_drop_reason(old.config(), new.config(), b)
            ));
        }
        self.state.stats().retain_configured(new.config());
        self.state.unregistered().retain_configured(new.config());
        self.state.hints.sync(&new);
        self.watch_bound_devices();
        // A device's id may dial something else now: ask Asterisk until the next changes (under
        // the publish lock, as a change is handled, which then sees the new configuration).
        {
            let _publishing = self.state.publisher.lock();
            self.state.seen.clear();
        }
        // Queues, queue options and mailboxes may have changed for users whose bindings did not.
        self.follow_ups.check_all();
        // Users whose bindings changed, and everyone still active (a device's dial string may
        // have changed under an unchanged binding).
        let mut users = active_users(&new);
        users.extend(changes.affected_users());
        users.sort();
        users.dedup();
        self.state.publish_users(users.iter(), false);
        // Users that disappeared show as unavailable rather than keeping a stale state.
        self.state.forget_users(
            (old.config().users.keys())
                .filter(|u| new.config().user(u).is_none())
                .map(str::to_string),
        );
        self.access
            .sessions()
            .reconfigure(|u| new.config().console_users.get(u).map(|c| c.role));
        self.state
            .feed()
            .send(|| vec![deviceuser_core::console::render::config_event()]);
        log::verbose(2, &format!("reloaded {}", config_file::CONFIG_FILE));
        Ok(())
    }

    /// Follows the state of exactly the bound devices (after load and reload). The set is
    /// read under the follower's lock, so a login committed meanwhile (which follows its
    /// device under that lock) is in it or follows its device after.
    pub fn watch_bound_devices(&self) {
        self.follower.watch_only(|| bound_dials(&self.snapshot()));
    }

    /// Publishes the state of every user that is on a device or in DND. A user without
    /// either reads UNAVAILABLE from the provider; publishing creates a device state topic
    /// per name in Asterisk, which costs memory and time for every configured user.
    pub fn publish_active_users(&self) {
        self.state
            .publish_users(active_users(&self.snapshot()).iter(), false);
    }

    /// The provider's answer for `DeviceUser:<user>`. A snapshot of its own: computing the
    /// state calls back into Asterisk (`ast_device_state`), and no writer waits on that.
    pub fn provide(&self, user: &str) -> DeviceState {
        self.provided.fetch_add(1, Ordering::Relaxed);
        user_state(&self.snapshot(), user, &self.state.seen)
    }

    /// Questions the provider answered since load (the hint engine asks once per state it
    /// handles for a hint naming the user).
    pub fn provided(&self) -> u64 {
        self.provided.load(Ordering::Relaxed)
    }
}

/// A followed (bound) device's state changed: publish its user's state again. One
/// snapshot, taken under the publish lock, so the state published is never older than the
/// last one.
fn device_changed(state: &State, dial: &str, device_state: DeviceState) {
    let mut published = state.publisher.lock();
    let snap = state.snapshot();
    let Some(dev) = snap.config().device_for_dial(dial) else {
        return;
    };
    if snap.config().has_unregister_policy() {
        state
            .unregistered()
            .seen(&dev.id, device_state == DeviceState::UNAVAILABLE, now());
    }
    let Some(b) = snap.user_on(&dev.id) else {
        return;
    };
    state.seen.set(&dev.id, device_state);
    let s = user_state(&snap, &b.user, &state.seen);
    published.publish(&b.user, s, false);
}
