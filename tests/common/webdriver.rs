//! A small W3C WebDriver client for Debian's chromium driven by chromedriver (headless), for the
//! portal's browser tests: navigate, find, click, type, read the page, save screenshots, and
//! let downloads land in a folder.

use super::http::Client;
use base64::Engine;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Browser {
    driver: Child,
    http: Client,
    session: String,
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where screenshots go: `$SLUIS_ARTIFACTS` or `target/test-artifacts` in the repository.
pub fn artifacts() -> PathBuf {
    let p = std::env::var("SLUIS_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts"));
    std::fs::create_dir_all(&p).unwrap();
    p
}

impl Browser {
    pub fn start(downloads: &Path, lang: &str) -> Browser {
        let port = super::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (Debian package chromium-driver)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        super::poll(Duration::from_secs(30), "chromedriver to listen", || {
            std::net::TcpStream::connect(addr).ok()
        });
        let mut http = Client::new(addr);
        http.origin = None;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         format!("--lang={lang}"),
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false,
                    "intl.accept_languages": lang,
                }
            }
        }}});
        let r = call(&mut http, "POST", "/session", Some(caps));
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        let mut b = Browser {
            driver,
            http,
            session,
            downloads: downloads.to_path_buf(),
            _profile: profile,
        };
        b.cdp(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
        );
        b
    }

    fn cmd(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let r = call(&mut self.http, method, &p, body);
        if r["value"].get("error").is_some() {
            panic!("webdriver {method} {path}: {r}");
        }
        r["value"].clone()
    }

    pub fn cdp(&mut self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
    }

    /// Renders as a phone (`Some((width, height))`, mobile viewport) or back at the window's
    /// desktop size (`None`).
    pub fn viewport(&mut self, phone: Option<(u32, u32)>) {
        match phone {
            Some((width, height)) => self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": true}),
            ),
            None => self.cdp("Emulation.clearDeviceMetricsOverride", json!({})),
        };
    }

    pub fn goto(&mut self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn source(&mut self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn url(&mut self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn find(&mut self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub fn click(&mut self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub fn type_into(&mut self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The visible text of the page (read in one step, so a navigation cannot intervene).
    pub fn text(&mut self) -> String {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body ? document.body.innerText : '';", "args": []})),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The page's text once it contains `needle`: a click on a submit button or a link can
    /// return before the next page is there (a busy machine, a server that answers a wrong
    /// password slowly).
    pub fn text_with(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never said {needle:?}; it says: {t}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn screenshot(&mut self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for a finished download called `name` (Chromium writes `.crdownload` first).
    pub fn downloaded(&self, name: &str) -> Vec<u8> {
        let p = self.downloads.join(name);
        super::poll(
            Duration::from_secs(120),
            &format!("download {name}"),
            || {
                let partial = std::fs::read_dir(&self.downloads)
                    .ok()?
                    .filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"));
                if partial {
                    return None;
                }
                std::fs::read(&p).ok()
            },
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let p = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(&mut self.http, "DELETE", &p, None)
        }));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn call(http: &mut Client, method: &str, path: &str, body: Option<Value>) -> Value {
    let b = body.map(|v| v.to_string()).unwrap_or_default();
    let headers = [("Content-Type", "application/json")];
    let r = http.request(method, path, &headers, b.as_bytes());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("webdriver answer {}: {e}", r.text()))
}
