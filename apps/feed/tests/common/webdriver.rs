//! Firefox and WebKit for the tests, driven over W3C WebDriver (classic,
//! JSON over HTTP): `geckodriver` for Firefox ESR, `WebKitWebDriver` for
//! WebKitGTK's MiniBrowser. Only what the tests use: open a session, load a
//! URL, run a script (awaiting its promise), quit.

use super::browser::{installed, which};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WebDriver {
    driver: Child,
    /// The X server WebKitGTK draws on (it needs a display, even headless).
    display: Option<Child>,
    http: reqwest::Client,
    session: String,
    _turn: bgsync_testkit::chromium::Turn,
}

impl WebDriver {
    /// Firefox ESR, headless, through geckodriver.
    pub async fn firefox() -> Self {
        let firefox = installed(&["firefox-esr", "firefox"], "firefox-esr", "PATH");
        let capabilities = json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": firefox,
                "args": ["-headless"],
                "prefs": { "dom.serviceWorkers.testing.enabled": true, "browser.shell.checkDefaultBrowser": false },
            },
        });
        Self::start(geckodriver(), &["--port"], capabilities, &[]).await
    }

    /// WebKitGTK's MiniBrowser through WebKitWebDriver, on a virtual X
    /// display (GTK will not start without one).
    pub async fn webkit() -> Self {
        let driver = installed(&["WebKitWebDriver"], "webkit2gtk-driver", "PATH");
        let xvfb = installed(&["Xvfb"], "xvfb", "PATH");
        let mut display = Command::new(xvfb)
            .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0", "1280x800x24"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        // Xvfb writes the display number it chose once it is ready.
        let mut number = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(display.stdout.take().unwrap()), &mut number).unwrap();
        let capabilities = json!({
            "browserName": "MiniBrowser",
            "webkitgtk:browserOptions": { "args": ["--automation"] },
        });
        let env = [("DISPLAY", format!(":{}", number.trim()))];
        let mut this = Self::start(driver, &["--port"], capabilities, &env).await;
        this.display = Some(display);
        this
    }

    async fn start(program: PathBuf, port_flag: &[&str], capabilities: Value, env: &[(&str, String)]) -> Self {
        let turn = super::browser::one_at_a_time().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(&program);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        match port_flag {
            [flag] => command.arg(format!("{flag}={port}")),
            _ => unreachable!(),
        };
        let quiet = std::env::var_os("BGSYNC_TEST_LOG").is_none();
        if quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let driver = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "{} did not answer on port {port}", program.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": capabilities } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{} could not start a browser: {answer}", program.display()))
            .to_owned();
        let session = format!("{base}/session/{session}");
        Self { driver, display: None, http, session, _turn: turn }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let answer: Value =
            self.http.post(format!("{}/{path}", self.session)).json(&body).send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path} {body}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command("url", json!({ "url": url })).await;
    }

    /// Evaluates the expression `js` (a promise is awaited) and returns its
    /// value.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        let value = self.command("execute/sync", json!({ "script": format!("return ({js});"), "args": [] })).await;
        serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{js} gave {value}: {e}"))
    }

    /// Waits until the expression `condition` is truthy.
    pub async fn wait_for(&self, what: &str, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(45);
        while !self.eval::<bool>(&format!("!!({condition})")).await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fills the app's form and submits it as a user would.
    pub async fn submit_post(&self, title: &str, location: &str) {
        let js = format!(
            "(() => {{ document.querySelector('#title').value = {}; document.querySelector('#location').value = {}; \
             document.querySelector('#post-button').click(); return true; }})()",
            serde_json::to_string(title).unwrap(),
            serde_json::to_string(location).unwrap()
        );
        assert!(self.eval::<bool>(&js).await);
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(display) = &mut self.display {
            let _ = display.kill();
            let _ = display.wait();
        }
    }
}

/// geckodriver from the PATH or `~/.cargo/bin`; installed with
/// `cargo install geckodriver` when missing (once, a few minutes).
fn geckodriver() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("BGSYNC_GECKODRIVER") {
            return PathBuf::from(path);
        }
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        let in_cargo_home = || cargo_home.as_ref().map(|h| h.join("bin/geckodriver")).filter(|p| p.is_file());
        if let Some(path) = which("geckodriver").or_else(in_cargo_home) {
            return path;
        }
        eprintln!("geckodriver is missing: installing it with `cargo install geckodriver --locked` (once)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let ok = Command::new(cargo)
            .args(["install", "geckodriver", "--locked"])
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .is_ok_and(|s| s.success());
        match (ok, which("geckodriver").or_else(in_cargo_home)) {
            (true, Some(path)) => path,
            _ => panic!("geckodriver not found: `cargo install geckodriver`, or set BGSYNC_GECKODRIVER to its path"),
        }
    })
    .clone()
}
