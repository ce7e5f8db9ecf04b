//! A real headless Chromium for the tests, driven over the DevTools
//! protocol, with the operations the tests need: open the app, read its
//! IndexedDB, take the worker offline, stop workers, and dispatch sync
//! events.

use chromiumoxide::cdp::browser_protocol::service_worker::{
    DisableParams as ServiceWorkerDisable, DispatchPeriodicSyncEventParams, DispatchSyncEventParams,
    EnableParams as ServiceWorkerEnable, EventWorkerRegistrationUpdated, RegistrationId, StopAllWorkersParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    AttachToTargetParams, EventReceivedMessageFromTarget, GetTargetsParams, SetAutoAttachParams, TargetId,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::types::{Command, Method, MethodId};
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

use crate::eventually;
use crate::watchdog::Watchdog;

/// Chromium's flags for tests (DESIGN.md): headless, no network of its own,
/// and Background Sync retries after 5 s and 10 s instead of 5 and 15 min.
const FLAGS: &[&str] = &[
    "headless",
    "no-sandbox",
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-extensions",
    "log-level=3",
    "force-fieldtrials=BackgroundSync/Test",
    "force-fieldtrial-params=BackgroundSync.Test:initial_retry_delay_sec/5/retry_delay_factor/2/max_sync_attempts/3",
];

/// How long [`Chromium::close`] waits for the browser to take the request
/// and then to exit.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// One browser at a time: two Chromiums on two cores make timings flaky.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Waits for this test's turn to run a browser (any engine). A turn held
/// longer than its limit ([`crate::watchdog`]) ends the test binary.
pub async fn one_at_a_time() -> Turn {
    let guard = ONE_AT_A_TIME.lock().await;
    Turn {
        _watchdog: crate::watchdog::turn_limit().map(|limit| Watchdog::arm(limit, "held its turn to run a browser")),
        _guard: guard,
    }
}

/// A test's turn to run a browser, from [`one_at_a_time`]: it ends when
/// this is dropped.
pub struct Turn {
    _watchdog: Option<Watchdog>,
    _guard: MutexGuard<'static, ()>,
}

pub struct Chromium {
    pub browser: Browser,
    /// The DevTools session on the worker. Chromium counts offline
    /// emulation per session and only goes back online when the session
    /// that went offline says so, so one session is kept and reused.
    worker_session: Mutex<Option<String>>,
    handler: tokio::task::JoinHandle<()>,
    /// A JavaScript condition that holds once the app's page has started.
    ready: String,
    _profile: Option<tempfile::TempDir>,
    _turn: Turn,
}

impl Chromium {
    /// Starts Chromium on a fresh profile; `ready` is the JavaScript
    /// condition that holds once the app's page has started.
    pub async fn launch(ready: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let path = profile.path().to_owned();
        Self::launch_with(&path, Some(profile), ready).await
    }

    /// Starts Chromium on the profile in `dir` (kept after the browser is
    /// gone, so a test can start another one on it).
    pub async fn launch_on(dir: &std::path::Path, ready: &str) -> Self {
        Self::launch_with(dir, None, ready).await
    }

    async fn launch_with(dir: &std::path::Path, profile: Option<tempfile::TempDir>, ready: &str) -> Self {
        let turn = one_at_a_time().await;
        let config = BrowserConfig::builder()
            .chrome_executable(executable())
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(dir)
            .args(FLAGS.iter().copied())
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let ready = ready.to_owned();
        Self { browser, worker_session: Mutex::new(None), handler, ready, _profile: profile, _turn: turn }
    }

    /// Opens the app and waits until its worker controls the page (so the
    /// app shell is cached) and the Rust page code has rendered.
    pub async fn open_app(&self, url: &str) -> Page {
        let page = self.new_page(url).await;
        self.wait_until_ready(&page).await;
        page
    }

    /// Waits until the worker controls `page` and the app's page has started.
    pub async fn wait_until_ready(&self, page: &Page) {
        let page = page.clone();
        let controlled = tokio::time::timeout(
            Duration::from_secs(30),
            wait_for(&page, "the worker to control the page", "navigator.serviceWorker.controller !== null"),
        )
        .await;
        if controlled.is_err() {
            let state: serde_json::Value = eval(
                &page,
                "navigator.serviceWorker.getRegistration().then(r => ({ url: location.href, \
                 installing: r?.installing?.state ?? null, waiting: r?.waiting?.state ?? null, \
                 active: r?.active?.state ?? null, registered: !!r }))",
            )
            .await;
            panic!("the worker does not control the page: {state}");
        }
        wait_for(&page, "the page to start", &self.ready).await;
    }

    /// Opens the app in a page where `SyncManager` does not exist, as in
    /// browsers without Background Sync.
    pub async fn open_app_without_background_sync(&self, url: &str) -> Page {
        let page = self.new_page("about:blank").await;
        page.evaluate_on_new_document("delete window.SyncManager").await.unwrap();
        page.goto(url).await.unwrap();
        self.wait_until_ready(&page).await;
        page
    }

    /// Opens the app in a page with neither service workers nor Background
    /// Sync: the page itself queues and replays.
    pub async fn open_app_without_service_worker(&self, url: &str) -> Page {
        let page = self.new_page("about:blank").await;
        page.evaluate_on_new_document("delete window.SyncManager; delete Navigator.prototype.serviceWorker;")
            .await
            .unwrap();
        page.goto(url).await.unwrap();
        wait_for(&page, "the page to start", &self.ready).await;
        page
    }

    /// The service worker's DevTools target.
    async fn worker_target(&self) -> TargetId {
        let targets = self.browser.execute(GetTargetsParams::default()).await.unwrap();
        targets
            .result
            .target_infos
            .iter()
            .find(|t| t.r#type == "service_worker" && t.url.ends_with("/sw.js"))
            .map(|t| t.target_id.clone())
            .expect("a running service worker")
    }

    /// The DevTools session of the app's service worker (attached once).
    async fn worker_session(&self) -> String {
        let mut slot = self.worker_session.lock().await;
        if slot.is_none() {
            let target = self.worker_target().await;
            let attached = self
                .browser
                .execute(AttachToTargetParams::builder().target_id(target).flatten(false).build().unwrap())
                .await
                .unwrap();
            *slot = Some(attached.result.session_id.inner().clone());
        }
        slot.clone().unwrap()
    }

    /// Takes the worker (not the page) offline, or back online. Clearing
    /// it is what makes Chromium fire pending syncs.
    pub async fn set_worker_offline(&self, offline: bool) {
        self.worker_call("Network.enable", serde_json::json!({})).await;
        let conditions = serde_json::json!({
            "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1
        });
        self.worker_call("Network.emulateNetworkConditions", conditions).await;
    }

    /// Sets the storage quota of `origin` to `bytes` (`None`: back to the
    /// browser's own), as a full disk would leave it. To start with a
    /// small quota, call it before the origin stores anything (from a blank
    /// page, then load the app); raising it later applies at once.
    pub async fn override_quota(&self, page: &Page, origin: &str, bytes: Option<f64>) {
        use chromiumoxide::cdp::browser_protocol::storage::OverrideQuotaForOriginParams;
        let mut params = OverrideQuotaForOriginParams::new(origin);
        params.quota_size = bytes;
        page.execute(params).await.unwrap();
    }

    /// The worker's live JavaScript heap, in bytes: DevTools'
    /// `HeapProfiler.collectGarbage`, then `Runtime.getHeapUsage`'s
    /// `usedSize`, in the worker's own session (without the collection,
    /// garbage not yet collected counts too). The wasm module's memory is
    /// not in it: the worker's status reports that (`wasmMemoryBytes`).
    pub async fn worker_js_heap(&self) -> f64 {
        self.worker_call("HeapProfiler.collectGarbage", serde_json::json!({})).await;
        let answer = self.worker_call("Runtime.getHeapUsage", serde_json::json!({})).await;
        answer["result"]["usedSize"].as_f64().unwrap_or_else(|| panic!("no heap usage in {answer}"))
    }

    /// Evaluates `expression` in the service worker (awaiting a promise it
    /// returns) and returns its value as JSON; panics with the exception if
    /// it threw.
    pub async fn worker_eval(&self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expression, "awaitPromise": true, "returnByValue": true });
        let answer = self.worker_call("Runtime.evaluate", params).await;
        if let Some(thrown) = answer["result"].get("exceptionDetails") {
            panic!("the worker threw evaluating {expression}: {thrown}");
        }
        answer["result"]["result"]["value"].clone()
    }

    /// Calls DevTools' `method` with `params` in the worker's own session;
    /// returns its answer.
    async fn worker_call(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000);
        let session = self.worker_session().await;
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut answers = self.browser.event_listener::<EventReceivedMessageFromTarget>().await.unwrap();
        let message = serde_json::json!({ "id": id, "method": method, "params": params });
        self.browser.execute(SendMessageToTarget { message: message.to_string(), session_id: session }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = answers.next().await {
                let answer: serde_json::Value = serde_json::from_str(&event.message).unwrap_or_default();
                if answer["id"] == id {
                    return answer;
                }
            }
            serde_json::Value::Null
        })
        .await
        .unwrap_or_else(|_| panic!("the worker did not answer {method}"))
    }

    /// Opens a tab that is not the app, for DevTools calls that need a page
    /// session while no page of the app is open.
    pub async fn blank_page(&self) -> Page {
        self.new_page("about:blank").await
    }

    /// A new tab at `url`. chromiumoxide makes each page session auto-attach
    /// to related targets paused until a debugger resumes them; it then
    /// detaches from service workers, which races with resuming them and
    /// leaves a worker that never starts now and then. Pages here do not
    /// auto-attach: the tests reach the worker through its own session.
    pub async fn new_page(&self, url: &str) -> Page {
        let page = self.browser.new_page("about:blank").await.unwrap();
        let mut params = SetAutoAttachParams::new(false, false);
        params.flatten = Some(true);
        page.execute(params).await.unwrap();
        if url != "about:blank" {
            page.goto(url).await.unwrap();
        }
        page
    }

    /// The browser's process id (`None` once it was collected).
    pub fn pid(&mut self) -> Option<u32> {
        self.browser.get_mut_child().and_then(|child| child.as_mut_inner().id())
    }

    /// Kills the browser process with SIGKILL, as a crash or the system
    /// does: nothing gets to shut down cleanly.
    pub async fn kill(mut self) {
        let _ = self.browser.kill().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }

    /// Closes the browser (DevTools' `Browser.close`) and waits for its
    /// process to exit; one that has not exited 10 s after being asked is
    /// killed. (A test run once hung with a test idle beside its live
    /// browser, most likely in this wait, which had no limit, holding every
    /// other test's turn to run one.)
    pub async fn close(mut self) {
        let asked = tokio::time::timeout(CLOSE_WAIT, self.browser.close()).await;
        let exited = asked.is_ok() && tokio::time::timeout(CLOSE_WAIT, self.browser.wait()).await.is_ok();
        if !exited {
            eprintln!("Chromium did not exit within {CLOSE_WAIT:?} of being closed: killed");
            let _ = self.browser.kill().await;
            let _ = self.browser.wait().await;
        }
        self.handler.abort();
    }
}

/// `Target.sendMessageToTarget`, deprecated in the protocol and so missing
/// from chromiumoxide's generated types, but the way to reach a worker's
/// own session (DESIGN.md).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct SendMessageToTarget {
    message: String,
    session_id: String,
}

impl Method for SendMessageToTarget {
    fn identifier(&self) -> MethodId {
        "Target.sendMessageToTarget".into()
    }
}

impl Command for SendMessageToTarget {
    type Response = serde_json::Value;
}

/// Stops every service worker, as the browser does to an idle one.
pub async fn stop_all_workers(page: &Page) {
    page.execute(ServiceWorkerEnable::default()).await.unwrap();
    page.execute(StopAllWorkersParams::default()).await.unwrap();
}

/// The id of the worker registration for `origin`, from a page session.
async fn registration_id(page: &Page, origin: &str) -> RegistrationId {
    let mut updates = page.event_listener::<EventWorkerRegistrationUpdated>().await.unwrap();
    // Enabling reports every registration, but only once per session: start
    // afresh in case the domain was enabled before.
    page.execute(ServiceWorkerDisable::default()).await.unwrap();
    page.execute(ServiceWorkerEnable::default()).await.unwrap();
    let scope = format!("{origin}/");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(update) = updates.next().await {
            if let Some(r) = update.registrations.iter().find(|r| r.scope_url == scope && !r.is_deleted) {
                return r.registration_id.clone();
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("the worker registration is reported")
}

/// Fires `sync` with `tag` at the worker registered for `origin`, from any
/// page session (fire-and-forget: the caller watches for the effect).
pub async fn dispatch_sync(page: &Page, origin: &str, tag: &str) {
    let registration = registration_id(page, origin).await;
    page.execute(DispatchSyncEventParams::new(origin, registration, tag, false)).await.unwrap();
}

/// Fires `periodicsync` with `tag`, as Chromium does on its own schedule
/// (at most about twice a day: never waited for in a test).
pub async fn dispatch_periodic_sync(page: &Page, origin: &str, tag: &str) {
    let registration = registration_id(page, origin).await;
    page.execute(DispatchPeriodicSyncEventParams::new(origin, registration, tag)).await.unwrap();
}

/// Evaluates `js` in the page, awaiting a promise, and returns its value.
pub async fn eval<T: DeserializeOwned>(page: &Page, js: &str) -> T {
    let params = EvaluateParams::builder().expression(js).await_promise(true).return_by_value(true).build().unwrap();
    let result = page.evaluate_expression(params).await.unwrap_or_else(|e| panic!("{js}: {e}"));
    result.into_value().unwrap_or_else(|e| panic!("{js}: {e}"))
}

pub async fn wait_for(page: &Page, what: &str, condition: &str) {
    eventually(what, Duration::from_secs(30), || async {
        eval::<bool>(page, &format!("Boolean({condition})")).await.then_some(())
    })
    .await
}

/// The entries of the queue `store`, read from IndexedDB directly.
pub async fn queued_in(page: &Page, store: &str) -> Vec<serde_json::Value> {
    let js = r#"new Promise((resolve, reject) => {
            const open = indexedDB.open("bgsync");
            open.onupgradeneeded = () => open.transaction.abort();
            open.onerror = () => resolve([]);
            open.onsuccess = () => {
                const db = open.result;
                if (!db.objectStoreNames.contains("entries")) { db.close(); return resolve([]); }
                const range = IDBKeyRange.bound(["STORE"], ["STORE", []]);
                const all = db.transaction("entries").objectStore("entries").getAll(range);
                all.onsuccess = () => { db.close(); resolve(all.result); };
                all.onerror = () => reject(all.error);
            };
        })"#;
    eval(page, &js.replace("STORE", store)).await
}

/// Chromium's path: `BGSYNC_CHROMIUM`, else Debian's `chromium`. A machine
/// without it gets it from apt when the tests run as root (as CI does);
/// otherwise the tests stop with one line saying how to install it.
pub fn executable() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("BGSYNC_CHROMIUM") {
            return PathBuf::from(path);
        }
        installed(&["chromium", "chromium-browser"], "chromium chromium-driver", "BGSYNC_CHROMIUM")
    })
    .clone()
}

/// The first of `names` on the PATH; when none is and the tests run as
/// root on Debian, installs the Debian `packages` with apt-get first.
/// Panics with what to do otherwise (`env`: the variable that names the
/// program's path instead).
pub fn installed(names: &[&str], packages: &str, env: &str) -> PathBuf {
    let found = || names.iter().find_map(|n| which(n));
    if let Some(path) = found() {
        return path;
    }
    // One install at a time in this process (tests run side by side, and
    // a second apt-get fails on the first one's lock), and waiting for the
    // lock of another process's apt-get rather than failing on it.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = found() {
        return path;
    }
    let root = Process::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root && which("apt-get").is_some() {
        eprintln!("{} is missing: installing Debian's {packages} with apt-get", names[0]);
        let ok = Process::new("sh")
            .args([
                "-c",
                &format!(
                    "apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive \
                     apt-get -o DPkg::Lock::Timeout=600 install -y -q {packages}"
                ),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if let (true, Some(path)) = (ok, found()) {
            return path;
        }
    }
    panic!("{} not found: install it (Debian: `sudo apt-get install {packages}`) or set {env} to its path", names[0]);
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| PathBuf::from(dir).join(name)).find(|p| p.is_file())
}
